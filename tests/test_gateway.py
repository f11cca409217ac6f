"""The LLM gateway (DESIGN §13) in-process, against the fake LLM.

The invariants: a request without the gateway's token is refused and never
forwarded; the upstream gets the real credential in the arm's scheme and
the agent never sees it, not even echoed back in an error or split across
a stream's chunks; one upstream answer is one observation (401/403 a
failure at once, 2xx a success, the probe's own request neither).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime_adapter import fingerprint
from runtime_adapter.envplan import EnvPlan, agent_plan, key_variables
from runtime_adapter.gateway import PROBE_HEADER, Gateway, Outcomes, StreamScrub
from runtime_adapter.providers import builtin_arms
from runtime_adapter.testing import FakeLLM

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
    assert PROBE_HEADER not in seen.headers


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


async def test_retried_overloads_are_not_failures_and_the_probe_is_not_counted() -> None:
    llm = FakeLLM()
    llm.fail_first(3, 529)
    seen = Seen()
    gateway = gateway_for(minimax(), llm, seen)
    statuses = [(await post(gateway, ASK, **BEARER)).status_code for _ in range(4)]
    assert statuses == [529, 529, 529, 200]
    assert (seen.successes, seen.failures) == (1, [])
    await post(gateway, ASK, **BEARER, **{PROBE_HEADER: "1"})
    assert seen.successes == 1


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
