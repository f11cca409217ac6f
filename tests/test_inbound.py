"""Who may call the adapter's routes and how much they may send (``inbound``), and the
platform_inbound_secret as the platform client keeps it (DESIGN §7, §12)."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
import respx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from runtime_adapter.advertise import checked_client, url_problem
from runtime_adapter.inbound import Callers, bearer_tokens, drain, guard, limit_body
from runtime_adapter.platform import PlatformClient
from runtime_adapter.testing import serve_in_thread
from runtime_adapter.tokens import TokenStore
from runtime_adapter.volume import INBOUND_SECRET_FILE

pytestmark = pytest.mark.anyio


async def echo(request: Request) -> Response:
    body = await request.body()
    user = request.user.display_name if "user" in request.scope else None
    return JSONResponse({"size": len(body), "user": user})


def app(callers: Callers, limit: int = 1024) -> httpx.AsyncClient:
    router = Router(routes=[Route("/", echo, methods=["POST"])])
    wrapped = drain(guard(limit_body(router, limit), callers))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://a2a")


def test_bearer_tokens_are_split_on_commas_and_lines() -> None:
    assert bearer_tokens(" a, b\nc,,\n") == ("a", "b", "c")
    assert bearer_tokens(None) == ()


async def test_bearer_mode_names_each_token_by_fingerprint_and_refuses_others() -> None:
    callers = Callers("bearer", tokens=("tok-alpha", "tok-beta"))
    async with app(callers) as http:
        ok = await http.post("/", content=b"{}", headers={"Authorization": "Bearer tok-beta"})
        assert ok.status_code == 200
        assert ok.json()["user"].startswith("bearer:sha256:")
        for headers in ({}, {"Authorization": "Bearer tok-gamma"}, {"Authorization": "Basic x"}):
            refused = await http.post("/", content=b"{}", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == 'Bearer realm="a2a"'
            assert refused.json()["error"]["code"] == -32600
            assert "tok-" not in refused.text


async def test_platform_mode_fails_closed_until_the_secret_is_known() -> None:
    secret: list[str] = []
    callers = Callers("platform", secret=lambda: secret[0] if secret else None)
    async with app(callers) as http:
        early = await http.post("/", headers={"Authorization": "Bearer anything"})
        assert early.status_code == 401
        assert "platform_inbound_secret" in early.json()["error"]["message"]
        secret.append("minted-secret")
        ok = await http.post("/", headers={"Authorization": "Bearer minted-secret"})
        assert ok.json()["user"] == "platform"


async def test_bodies_above_the_limit_are_413_declared_or_streamed() -> None:
    async def stream() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 512

    async with app(Callers(), limit=2048) as http:
        assert (await http.post("/", content=b"y" * 2048)).json()["size"] == 2048
        declared = await http.post("/", content=b"y" * 2049)
        streamed = await http.post("/", content=stream())
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert "A2A_MAX_REQUEST_BYTES" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("url", "mode", "refused"),
    [
        ("http://169.254.169.254/latest/meta-data/", "local", True),
        ("http://[fe80::1]/hook", "local", True),
        ("http://127.0.0.1:9/hook", "self-hosted", True),
        ("http://127.0.0.1:9/hook", "local", False),
        ("http://[::ffff:169.254.169.254]/", "saas", True),
        ("file:///etc/passwd", "local", True),
        ("http://203.0.113.9/hook", "saas", True),
        ("https://8.8.8.8/hook", "saas", False),
    ],
)
async def test_webhook_addresses_follow_the_advertised_url_rules(
    url: str, mode: str, refused: bool
) -> None:
    assert (await url_problem(url, mode) is not None) is refused


async def test_a_webhook_whose_dns_changes_after_the_check_is_refused_at_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the validator's lookup answers a public address, the connection's
    a metadata one. The client checks at connect time, so nothing is sent."""
    answers = iter(["93.184.216.34", "169.254.169.254"])
    looked_up: list[str] = []

    async def rebinding(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        looked_up.append(host)
        address = next(answers)
        return [(2, 1, 6, "", (address, port))]

    monkeypatch.setattr(anyio, "getaddrinfo", rebinding)
    assert await url_problem("http://hook.example/cb", "saas") is None  # passes the check
    async with checked_client("saas") as client:
        with pytest.raises(httpx.ConnectError, match=r"169\.254"):
            await client.post("http://hook.example/cb", json={"state": "completed"})
    assert looked_up == ["hook.example", "hook.example"]


async def test_the_checked_client_reaches_an_allowed_address_and_follows_no_redirect() -> None:
    """Loopback is allowed in ``local`` (dev): a real server answers through the client,
    and its redirect is returned, not followed."""

    async def hook(request: Request) -> Response:
        return Response(status_code=307, headers={"location": "http://169.254.169.254/"})

    with serve_in_thread(Router([Route("/cb", hook, methods=["POST"])])) as url:
        async with checked_client("local") as client:
            answer = await client.post(f"{url}/cb", json={})
        async with checked_client("saas") as client:
            with pytest.raises(httpx.ConnectError, match=r"127\.0\.0\.1"):
                await client.post(f"{url}/cb", json={})
    assert answer.status_code == 307


@respx.mock(base_url="https://platform.example")
async def test_a_minted_inbound_secret_is_saved_0600_and_taught_to_the_redactor(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    respx_mock.post("/registry/heartbeat").respond(
        200, json={"status": "ok", "platform_inbound_secret": "inbound-s3cret-91"}
    )
    taught: list[str] = []
    inbound = TokenStore(
        tmp_path, on_token=taught.append, file=INBOUND_SECRET_FILE, what="inbound secret"
    )
    async with PlatformClient(
        "https://platform.example", "ws-1", TokenStore(tmp_path), inbound=inbound
    ) as platform:
        await platform.heartbeat({"workspace_id": "ws-1"})
        await platform.heartbeat({"workspace_id": "ws-1"})  # the same one: saved once
    saved = tmp_path / INBOUND_SECRET_FILE
    assert saved.read_text() == "inbound-s3cret-91\n"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert taught == ["inbound-s3cret-91"]
    again = TokenStore(tmp_path, file=INBOUND_SECRET_FILE)
    again.refresh()  # a restart reads it back
    assert again.token == "inbound-s3cret-91"


@respx.mock(base_url="https://platform.example")
async def test_a_malformed_inbound_secret_is_ignored(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    respx_mock.post("/registry/heartbeat").respond(
        200, json={"status": "ok", "platform_inbound_secret": "two words"}
    )
    inbound = TokenStore(tmp_path, file=INBOUND_SECRET_FILE)
    async with PlatformClient(
        "https://platform.example", "ws-1", TokenStore(tmp_path), inbound=inbound
    ) as platform:
        await platform.heartbeat({"workspace_id": "ws-1"})
    assert inbound.token is None
    assert not (tmp_path / INBOUND_SECRET_FILE).exists()
