"""The real anthropic SDK, built with no arguments under an applied plan, sends the
projected credential with the right header to the right base URL.

Observed on the wire by a recording server, not by reading the plan back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from unittest import mock

import anthropic
import pytest

from runtime_adapter import apply_plan, fingerprint
from runtime_adapter.testing import FakeLLM, serve_in_thread

from .helpers import plan


@pytest.fixture
def fake() -> Iterator[tuple[FakeLLM, str]]:
    llm = FakeLLM(reply="pong")
    with serve_in_thread(llm.app) as url:
        yield llm, url


@pytest.mark.parametrize(
    ("model", "env", "token", "base_path", "header"),
    [
        pytest.param(
            "MiniMax-M2",
            {"MINIMAX_API_KEY": "mm-secret-1\n", "ANTHROPIC_API_KEY": "sk-ant-leak"},
            None,
            "/anthropic",
            "bearer",
            id="minimax-bearer",
        ),
        pytest.param(
            "claude-sonnet-5",
            {"ANTHROPIC_API_KEY": "sk-ant-secret-2", "ANTHROPIC_AUTH_TOKEN": "stale-mm"},
            None,
            "/corp-proxy",
            "x-api-key",
            id="anthropic-x-api-key",
        ),
        pytest.param(
            "moonshot/kimi-k2.6",
            {"MOONSHOT_API_KEY": "not-for-platform"},
            "ws-token-3",
            "/llm/proxy",
            "bearer",
            id="platform-bearer-workspace-token",
        ),
    ],
)
def test_sdk_sends_projected_credential_to_projected_base_url(
    fake: tuple[FakeLLM, str],
    model: str,
    env: dict[str, str],
    token: str | None,
    base_path: str,
    header: str,
) -> None:
    llm, url = fake
    base_variable = {"MiniMax-M2": "MINIMAX_BASE_URL", "claude-sonnet-5": "ANTHROPIC_BASE_URL"}
    environ = dict(env)
    environ[base_variable.get(model, "LLM_PROXY_URL")] = url + base_path
    result = plan({"model": model}, environ, token=token)
    expected_secret = result.target()[
        "ANTHROPIC_AUTH_TOKEN" if header == "bearer" else "ANTHROPIC_API_KEY"
    ]
    assert expected_secret is not None

    with mock.patch.dict(os.environ, environ, clear=False):
        apply_plan(result, os.environ)
        with anthropic.Anthropic(max_retries=0, timeout=10) as client:
            reply = client.messages.create(
                model=os.environ["ANTHROPIC_MODEL"],
                max_tokens=8,
                messages=[{"role": "user", "content": "ping"}],
            )
    assert reply.content[0].type == "text"
    assert reply.content[0].text == "pong"

    (request,) = llm.requests
    assert request.path == f"{base_path}/v1/messages"
    assert request.model == model
    if header == "bearer":
        assert (request.authorization, request.api_key) == (
            f"Bearer {fingerprint(expected_secret)}",
            None,
        )
    else:
        # anthropic>=2 sends ANTHROPIC_API_KEY as "Authorization: Bearer"; older releases
        # (and the Claude Code CLI) as "x-api-key". Either way: that key, in one header.
        seen = {request.authorization, request.api_key} - {None}
        assert seen <= {f"Bearer {fingerprint(expected_secret)}", fingerprint(expected_secret)}
        assert len(seen) == 1
