"""The platform client's exact wire (respx) and its boundary: every httpx exception
and every non-2xx status becomes one of the package's PlatformError types."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import respx

from runtime_adapter import __version__
from runtime_adapter.errors import (
    PlatformAuthError,
    PlatformError,
    PlatformRejected,
    PlatformUnavailable,
    WorkspaceUnknown,
)
from runtime_adapter.health import Health
from runtime_adapter.heartbeat import RuntimeStatus, heartbeat_body
from runtime_adapter.platform import PlatformClient, parse_retry_after
from runtime_adapter.tokens import TokenStore

pytestmark = pytest.mark.anyio

BASE = "https://platform.example"
WS = "ws-7f3e"
CARD = {"name": "agent", "version": "1.0.0"}


def store(tmp_path: Path, token: str | None = "tok-current-1234") -> TokenStore:
    if token is not None:
        (tmp_path / ".auth_token").write_text(token + "\n")
    tokens = TokenStore(tmp_path)
    tokens.refresh()
    return tokens


def client(tokens: TokenStore, transport: httpx.AsyncBaseTransport | None = None) -> PlatformClient:
    return PlatformClient(BASE, WS, tokens, transport=transport)


@respx.mock(base_url=BASE, assert_all_called=True)
async def test_register_body_and_headers_and_issued_token_saved(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    route = respx_mock.post("/registry/register").respond(
        200, json={"status": "registered", "auth_token": "tok-issued-5678"}
    )
    tokens = store(tmp_path, token=None)
    async with client(tokens) as platform:
        issued = await platform.register("http://10.0.0.7:8000", CARD)
    request = route.calls.last.request
    assert json.loads(request.content) == {
        "id": WS,
        "url": "http://10.0.0.7:8000",
        "agent_card": CARD,
    }
    assert "authorization" not in request.headers  # no token yet: register without one
    assert request.headers["x-workspace-id"] == WS
    assert request.headers["user-agent"] == f"runtime-adapter/{__version__}"
    assert request.headers["content-type"] == "application/json"
    assert issued is True
    assert (tmp_path / ".auth_token").read_text() == "tok-issued-5678\n"
    assert (tmp_path / ".auth_token").stat().st_mode & 0o777 == 0o600


@respx.mock(base_url=BASE, assert_all_called=True)
async def test_heartbeat_body_is_full_with_integer_fields(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    route = respx_mock.post("/registry/heartbeat").respond(200, json={"status": "ok"})
    health = Health()
    body = heartbeat_body(WS, CARD, health, RuntimeStatus(active_tasks=2, current_task="fix"), 12.9)
    async with client(store(tmp_path)) as platform:
        await platform.heartbeat(body)
    request = route.calls.last.request
    sent = json.loads(request.content)
    assert sent == {
        "workspace_id": WS,
        "agent_card": CARD,
        "error_rate": 0.0,
        "sample_error": "",
        "sample_error_detail": None,
        "runtime_state": "",
        "active_tasks": 2,
        "current_task": "fix",
        "uptime_seconds": 12,
        "runtime_metadata": {},
    }
    assert type(sent["uptime_seconds"]) is int
    assert type(sent["active_tasks"]) is int
    assert request.headers["authorization"] == "Bearer tok-current-1234"
    assert request.headers["x-workspace-id"] == WS


@respx.mock(base_url=BASE, assert_all_called=True)
async def test_update_card_body_and_404_ignored(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    route = respx_mock.post("/registry/update-card").mock(
        side_effect=[httpx.Response(200, json={}), httpx.Response(404, json={"error": "no route"})]
    )
    async with client(store(tmp_path)) as platform:
        assert await platform.update_card(CARD) is True
        assert await platform.update_card(CARD) is False
    assert json.loads(route.calls[0].request.content) == {"workspace_id": WS, "agent_card": CARD}
    assert route.calls[0].request.headers["authorization"] == "Bearer tok-current-1234"


@respx.mock(base_url=BASE)
async def test_401_reloads_the_rotated_token_file_and_retries_once(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    tokens = store(tmp_path)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer tok-rotated-9999":
            return httpx.Response(200, json={"status": "ok"})
        (tmp_path / ".auth_token").write_text("tok-rotated-9999\n")  # the provisioner rotates
        return httpx.Response(401, json={"error": "invalid workspace auth token"})

    route = respx_mock.post("/registry/heartbeat").mock(side_effect=answer)
    async with client(tokens) as platform:
        await platform.heartbeat({"workspace_id": WS})
    assert route.call_count == 2
    assert tokens.token == "tok-rotated-9999"


@respx.mock(base_url=BASE)
async def test_401_twice_is_an_auth_error_after_exactly_two_requests(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    route = respx_mock.post("/registry/heartbeat").respond(
        401, json={"error": "invalid workspace auth token"}
    )
    async with client(store(tmp_path)) as platform:
        with pytest.raises(PlatformAuthError) as caught:
            await platform.heartbeat({"workspace_id": WS})
    assert route.call_count == 2
    assert (caught.value.status, caught.value.kind) == (401, "auth_failed")
    assert "tok-current" not in str(caught.value)


EXCEPTIONS = [
    (httpx.ConnectTimeout("t"), PlatformUnavailable, "timeout"),
    (httpx.ReadTimeout("t"), PlatformUnavailable, "timeout"),
    (httpx.WriteTimeout("t"), PlatformUnavailable, "timeout"),
    (httpx.PoolTimeout("t"), PlatformUnavailable, "timeout"),
    (httpx.ConnectError("refused"), PlatformUnavailable, "network_error"),
    (httpx.ReadError("reset"), PlatformUnavailable, "network_error"),
    (httpx.WriteError("broken pipe"), PlatformUnavailable, "network_error"),
    (httpx.RemoteProtocolError("dropped"), PlatformUnavailable, "network_error"),
    (httpx.LocalProtocolError("bad"), PlatformUnavailable, "network_error"),
    (httpx.ProxyError("proxy"), PlatformUnavailable, "network_error"),
    (httpx.UnsupportedProtocol("gopher"), PlatformUnavailable, "network_error"),
    (httpx.CloseError("close"), PlatformUnavailable, "network_error"),
]


@pytest.mark.parametrize(("raised", "expected", "kind"), EXCEPTIONS)
async def test_every_httpx_exception_maps_to_our_type(
    tmp_path: Path, raised: Exception, expected: type[PlatformError], kind: str
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise raised

    async with client(store(tmp_path), httpx.MockTransport(fail)) as platform:
        with pytest.raises(expected) as caught:
            await platform.heartbeat({"workspace_id": WS})
    assert (type(caught.value), caught.value.kind, caught.value.status) == (expected, kind, None)
    assert caught.value.endpoint == "platform.example"


def test_the_mapping_covers_every_httpx_transport_error() -> None:
    covered = {type(raised) for raised, _, _ in EXCEPTIONS}
    leaves = set()
    pending: list[type[BaseException]] = [httpx.TransportError]
    while pending:
        cls = pending.pop()
        subclasses = cls.__subclasses__()
        pending.extend(subclasses)
        if not subclasses and cls.__module__.startswith("httpx"):
            leaves.add(cls)
    assert leaves - covered == set()


@pytest.mark.parametrize(
    ("status", "headers", "expected", "kind", "retry_after"),
    [
        (500, {}, PlatformUnavailable, "upstream_error", None),
        (503, {"Retry-After": "7"}, PlatformUnavailable, "upstream_error", 7.0),
        (429, {"Retry-After": "3"}, PlatformUnavailable, "rate_limited", 3.0),
        (408, {}, PlatformUnavailable, "timeout", None),
        (404, {}, WorkspaceUnknown, "upstream_error", None),
        (400, {}, PlatformRejected, "upstream_error", None),
        (422, {}, PlatformRejected, "upstream_error", None),
    ],
)
async def test_statuses_map_to_our_types(
    tmp_path: Path,
    status: int,
    headers: dict[str, str],
    expected: type[PlatformError],
    kind: str,
    retry_after: float | None,
) -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(status, headers=headers, json={"error": "nope"})
    )
    async with client(store(tmp_path), transport) as platform:
        with pytest.raises(expected) as caught:
            await platform.heartbeat({"workspace_id": WS})
    assert (caught.value.kind, caught.value.status, caught.value.retry_after) == (
        kind,
        status,
        retry_after,
    )


async def test_unknown_workspace_text_and_refused_register(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/registry/register":
            return httpx.Response(400, json={"error": "url_validate_failed: private address"})
        return httpx.Response(400, json={"error": "unknown workspace"})

    async with client(store(tmp_path), httpx.MockTransport(answer)) as platform:
        with pytest.raises(WorkspaceUnknown):
            await platform.heartbeat({"workspace_id": WS})
        with pytest.raises(PlatformRejected) as caught:
            await platform.register("http://10.0.0.7:8000", CARD)
    assert caught.value.kind == "registration_failed"
    assert caught.value.message == "/registry/register: url_validate_failed: private address"


def test_retry_after_seconds_and_http_date() -> None:
    now = 1_800_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 42, UTC), usegmt=True)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(date, now=now) == 42.0
    assert (
        parse_retry_after(
            format_datetime(datetime.fromtimestamp(now - 5, UTC), usegmt=True), now=now
        )
        == 0.0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
