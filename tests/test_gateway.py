"""The LLM gateway (DESIGN §13) in-process, against the fake LLM.

The invariants: a request without the gateway's token is refused and never
forwarded; the upstream gets the real credential in the arm's scheme and
the agent never sees it, not even echoed back in an error or split across
a stream's chunks; one upstream answer is one observation (401/403 a
failure at once, 2xx a success, the probe's own request neither).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime_adapter import fingerprint
from runtime_adapter.envplan import EnvPlan, agent_plan, key_variables
from runtime_adapter.gateway import Gateway, Outcomes, StreamScrub
from runtime_adapter.providers import builtin_arms
from runtime_adapter.testing import FakeLLM, serve_in_thread

from .helpers import plan

pytestmark = pytest.mark.anyio

KEY = "mm-gateway-secret-9f3e1a77"
ANTHROPIC_KEY = "sk-ant-api03-gatewaytest0123456789"
OAUTH = "sk-ant-oat01-gatewaytest0123456789"


class Seen:
    def __init__(self) -> None:
        self.successes = 0
        self.failures: list[tuple[int, str]] = []

    def outcomes(self) -> Outcomes:
        def success() -> None:
            self.successes += 1

        return Outcomes(success=success, failure=lambda s, m: self.failures.append((s, m)))


def gateway_for(direct: EnvPlan, llm: FakeLLM, seen: Seen | None = None) -> Gateway:
    return Gateway(
        lambda: direct,
        outcomes=(seen or Seen()).outcomes(),
        token="gateway-token-for-tests",
        transport=httpx.ASGITransport(app=llm.app),
    )


async def post(gateway: Gateway, body: dict[str, Any], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="http://gw"
    ) as client:
        return await client.post("/v1/messages", json=body, headers=headers)


BEARER = {"authorization": "Bearer gateway-token-for-tests"}
ASK = {"model": "MiniMax-M2.7", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def minimax() -> EnvPlan:
    return plan({"model": "MiniMax-M2.7"}, {"MINIMAX_API_KEY": KEY})


async def test_without_the_token_nothing_is_forwarded() -> None:
    llm = FakeLLM()
    gateway = gateway_for(minimax(), llm)
    for headers in ({}, {"authorization": "Bearer wrong"}, {"x-api-key": "wrong"}):
        answer = await post(gateway, ASK, **headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "authentication_error"
    assert llm.requests == []


@pytest.mark.parametrize(
    ("config", "env", "authorization", "api_key", "beta"),
    [
        ({"model": "MiniMax-M2.7"}, {"MINIMAX_API_KEY": KEY}, KEY, None, False),
        (
            {"model": "claude-sonnet-5"},
            {"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
            None,
            ANTHROPIC_KEY,
            False,
        ),
        ({"model": "sonnet"}, {"CLAUDE_CODE_OAUTH_TOKEN": OAUTH}, OAUTH, None, True),
    ],
    ids=["bearer", "x-api-key", "oauth"],
)
async def test_the_upstream_gets_the_real_credential_in_the_arms_scheme(
    config: dict[str, str],
    env: dict[str, str],
    authorization: str | None,
    api_key: str | None,
    beta: bool,
) -> None:
    llm = FakeLLM()
    direct = plan(config, {**env, "ANTHROPIC_BASE_URL": "http://upstream/anthropic"})
    gateway = gateway_for(direct, llm)
    answer = await post(gateway, {**ASK, "model": config["model"]}, **BEARER)
    assert answer.status_code == 200
    [seen] = llm.requests
    assert seen.path.endswith("/v1/messages")
    assert seen.authorization == (f"Bearer {fingerprint(authorization)}" if authorization else None)
    assert seen.api_key == (fingerprint(api_key) if api_key else None)
    assert ("oauth-2025-04-20" in seen.headers.get("anthropic-beta", "")) is beta
    assert "x-runtime-adapter-probe" not in seen.headers


def test_the_agents_plan_holds_no_credential() -> None:
    direct = minimax()
    agent = agent_plan(direct, url="http://127.0.0.1:1234", token="gw")
    values = agent.values()
    assert values["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1234"
    assert values["ANTHROPIC_AUTH_TOKEN"] == "gw"
    assert KEY not in json.dumps(values)
    assert values["ANTHROPIC_MODEL"] == direct.values()["ANTHROPIC_MODEL"]
    assert "ENABLE_TOOL_SEARCH" not in values  # a third-party arm: as the CLI decides
    anthropic = plan({"model": "claude-sonnet-5"}, {"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    through = agent_plan(anthropic, url="http://127.0.0.1:1234", token="gw").values()
    assert through["ENABLE_TOOL_SEARCH"] == "true"  # as at Anthropic's own URL
    assert "ANTHROPIC_API_KEY" not in through
    assert {"MINIMAX_API_KEY", "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"} <= set(
        key_variables(builtin_arms())
    )


async def test_an_echoed_key_in_an_error_is_redacted_and_a_401_is_reported_once() -> None:
    llm = FakeLLM(refuse_key=True, echo_credential=True)
    seen = Seen()
    gateway = gateway_for(minimax(), llm, seen)
    answer = await post(gateway, ASK, **BEARER)
    assert answer.status_code == 401
    assert KEY not in answer.text
    assert fingerprint(KEY) in answer.text
    assert seen.failures == [(401, f"invalid api key: {fingerprint(KEY)}")]
    assert seen.successes == 0


async def test_retried_overloads_are_not_failures() -> None:
    llm = FakeLLM()
    llm.fail_first(3, 529)
    seen = Seen()
    gateway = gateway_for(minimax(), llm, seen)
    statuses = [(await post(gateway, ASK, **BEARER)).status_code for _ in range(4)]
    assert statuses == [529, 529, 529, 200]
    assert (seen.successes, seen.failures) == (1, [])
    assert [call.outcome for call in gateway.calls] == ["error", "error", "error", "ok"]


async def test_the_agent_cannot_hide_its_refusals_behind_the_old_probe_marker() -> None:
    """The runtime's probe never goes through the gateway; a header the agent can send
    must not make its 401 unobserved."""
    llm = FakeLLM(refuse_key=True)
    seen = Seen()
    gateway = gateway_for(minimax(), llm, seen)
    answer = await post(gateway, ASK, **BEARER, **{"x-runtime-adapter-probe": "1"})
    assert answer.status_code == 401
    assert [status for status, _ in seen.failures] == [401]
    assert "x-runtime-adapter-probe" not in llm.requests[0].headers


async def test_a_streamed_answer_quoting_the_key_is_scrubbed() -> None:
    llm = FakeLLM(reply=f"the key is {KEY}")
    gateway = gateway_for(minimax(), llm)
    answer = await post(gateway, {**ASK, "stream": True}, **BEARER)
    assert answer.status_code == 200
    assert KEY not in answer.text
    assert fingerprint(KEY) in answer.text
    assert "event: message_stop" in answer.text


async def test_a_model_the_arm_does_not_serve_is_sent_as_the_plans() -> None:
    llm = FakeLLM()
    gateway = gateway_for(minimax(), llm)
    await post(gateway, {**ASK, "model": "claude-haiku-4-5"}, **BEARER)
    await post(gateway, {**ASK, "model": "claude-opus-5"}, **BEARER)
    await post(gateway, {**ASK, "model": "MiniMax-M3"}, **BEARER)  # a family member
    small = minimax().arm
    assert small is not None
    assert [r.model for r in llm.requests] == [
        small.small_model or "MiniMax-M2.7",
        "MiniMax-M2.7",
        "MiniMax-M3",
    ]


@given(
    st.text(alphabet="ab", max_size=60),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=30),
)
def test_a_secret_split_anywhere_in_a_stream_is_replaced(text: str, cuts: list[int]) -> None:
    secret = "abbaab"
    data = (text + secret + text).encode()
    scrub = StreamScrub([secret])
    out, at = b"", 0
    for size in cuts:
        out += scrub.feed(data[at : at + size])
        at += size
    out += scrub.feed(data[at:]) + scrub.flush()
    assert secret.encode() not in out
    assert out == data.replace(secret.encode(), fingerprint(secret).encode())


def test_a_stream_without_a_secret_passes_at_once() -> None:
    scrub = StreamScrub([KEY])
    assert scrub.feed(b'data: {"text": "hello"}\n\n') == b'data: {"text": "hello"}\n\n'


# -- an abandoned call is closed upstream (DESIGN §13) ---------------------------------


async def _abandon(gateway_url: str, body: dict[str, Any], llm: FakeLLM, *, read: int) -> float:
    """Send ``body`` and go away once the provider has it (``read`` = 0) or once that
    many bytes of the answer arrived; the wall-clock time the client left."""
    async with httpx.AsyncClient(timeout=60) as client:
        with anyio.CancelScope() as scope:
            async with client.stream(
                "POST", f"{gateway_url}/v1/messages", json=body, headers=BEARER
            ) as answer:
                got = 0
                async for chunk in answer.aiter_raw():
                    got += len(chunk)
                    if got >= read:
                        break
            scope.cancel()
    return time.time()


@pytest.fixture
def served() -> Iterator[tuple[FakeLLM, Gateway, str, Seen]]:
    llm, seen = FakeLLM(), Seen()
    with serve_in_thread(llm.app) as llm_url:
        direct = plan(
            {"model": "MiniMax-M2.7"}, {"MINIMAX_API_KEY": KEY, "MINIMAX_BASE_URL": llm_url}
        )
        gateway = Gateway(
            lambda: direct,
            outcomes=seen.outcomes(),
            token="gateway-token-for-tests",
            # no connection kept between calls: the server's loop ends with the test
            transport=httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0)),
        )
        with serve_in_thread(gateway.app) as gateway_url:
            yield llm, gateway, gateway_url, seen


async def test_a_client_gone_before_the_answer_closes_the_upstream_call_within_a_second(
    served: tuple[FakeLLM, Gateway, str, Seen],
) -> None:
    llm, gateway, url, seen = served
    llm.delay = 30  # the provider thinks for half a minute
    async with anyio.create_task_group() as group:
        left: list[float] = []

        async def ask() -> None:
            left.append(await _abandon_when(url, llm))

        group.start_soon(ask)
    assert await _wait(lambda: llm.disconnects)
    assert llm.disconnects[0] - left[0] < 1.0
    assert [call.outcome for call in gateway.calls] == ["abandoned"]
    assert (seen.successes, seen.failures) == (0, [])


async def _abandon_when(url: str, llm: FakeLLM) -> float:
    """Send a non-streamed message and go away once the provider is working on it."""
    async with httpx.AsyncClient(timeout=60) as client, anyio.create_task_group() as group:
        group.start_soon(lambda: client.post(f"{url}/v1/messages", json=ASK, headers=BEARER))
        assert await _wait(lambda: llm.in_flight >= 1)
        group.cancel_scope.cancel()
    return time.time()


async def test_a_stream_read_half_way_closes_the_upstream_call_within_a_second(
    served: tuple[FakeLLM, Gateway, str, Seen],
) -> None:
    llm, gateway, url, seen = served
    llm.deltas, llm.pace = 200, 0.1  # a 20 s answer
    left = await _abandon(url, {**ASK, "stream": True}, llm, read=1)
    assert await _wait(lambda: llm.disconnects)
    assert llm.disconnects[0] - left < 1.0
    assert await _wait(lambda: gateway.calls and gateway.calls[-1].outcome == "abandoned")
    assert (seen.successes, seen.failures) == (0, [])
    # the gateway goes on serving: a whole answer is a success
    llm.deltas, llm.pace = 1, 0.0
    async with httpx.AsyncClient(timeout=30) as client:
        whole = await client.post(f"{url}/v1/messages", json=ASK, headers=BEARER)
    assert whole.status_code == 200
    assert await _wait(lambda: seen.successes == 1)
    assert gateway.calls[-1].outcome == "ok"


async def _wait(condition: Callable[[], Any], within: float = 10.0) -> Any:
    """``condition()`` once it is truthy (the servers run in other threads: polled)."""
    deadline = time.monotonic() + within
    value = condition()
    while not value and time.monotonic() < deadline:
        await anyio.sleep(0.02)
        value = condition()
    return value


# -- the gateway forwards only what an LLM call needs (DESIGN §13) ---------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/files"),
        ("POST", "/v1/messages/batches"),
        ("DELETE", "/v1/messages"),
        ("GET", "/v1/organizations/me/api_keys"),
        ("POST", "/v1/%2e%2e/admin/v1/messages"),
        ("POST", "/v1/messages%2F..%2F..%2Fadmin"),
        ("POST", "/v1/messages/"),
    ],
)
async def test_only_the_llm_endpoints_are_forwarded(method: str, path: str) -> None:
    llm = FakeLLM()
    gateway = gateway_for(minimax(), llm)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="http://gw"
    ) as client:
        answer = await client.request(method, httpx.URL("http://gw" + path), headers=BEARER)
    assert answer.status_code == 403
    assert "/v1/messages" in answer.json()["error"]["message"]  # what is allowed
    assert llm.requests == []
    assert gateway.refused == 1


async def test_the_allowed_routes_reach_the_upstream_under_the_base_path() -> None:
    llm = FakeLLM()
    gateway = gateway_for(plan({"model": "MiniMax-M2.7"}, {"MINIMAX_API_KEY": KEY}), llm)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="http://gw"
    ) as client:
        counted = await client.post("/v1/messages/count_tokens", json=ASK, headers=BEARER)
        models = await client.get("/v1/models", params={"limit": "5"}, headers=BEARER)
    assert counted.status_code == 200
    assert models.status_code == 404  # the fake has no model list: it was asked, though
    assert gateway.refused == 0


async def test_a_chunked_body_past_the_limit_is_refused_before_it_is_read_whole() -> None:
    llm = FakeLLM()
    gateway = Gateway(
        minimax,
        token="gateway-token-for-tests",
        transport=httpx.ASGITransport(app=llm.app),
        max_request=64 * 1024,
    )
    sent = 0

    async def body() -> Any:
        nonlocal sent
        for _ in range(1000):  # 64 MiB if it were all read
            sent += 1
            yield b"x" * 65536

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="http://gw"
    ) as client:
        answer = await client.post("/v1/messages", content=body(), headers=BEARER)
    assert answer.status_code == 413
    assert sent <= 3  # read no further than the limit
    assert llm.requests == []


async def test_only_allowlisted_headers_go_upstream() -> None:
    llm = FakeLLM()
    gateway = gateway_for(minimax(), llm)
    await post(
        gateway,
        ASK,
        **BEARER,
        **{
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "fine-grained-tool-streaming-2025-05-14",
            "x-stainless-retry-count": "0",
            "cookie": "session=agent",
            "x-forwarded-for": "10.0.0.1",
            "x-forwarded-host": "evil.example",
            "x-custom-exfil": "data",
            "x-api-key": "agent-chosen",
        },
    )
    [seen] = llm.requests
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["anthropic-beta"] == "fine-grained-tool-streaming-2025-05-14"
    assert seen.headers["x-stainless-retry-count"] == "0"
    for dropped in ("cookie", "x-forwarded-for", "x-forwarded-host", "x-custom-exfil"):
        assert dropped not in seen.headers
    assert seen.api_key is None  # bearer arm: the agent's x-api-key is not forwarded
    assert seen.authorization == f"Bearer {fingerprint(KEY)}"
