"""The real Claude Code CLI, started through ``runtime-adapter exec``, sends the
projected credential and model to the projected endpoint.

This is the MiniMax incident end to end: only MINIMAX_API_KEY is given, and
the CLI must send ``Authorization: Bearer <that key>``, no ``x-api-key``, and
the MiniMax model id. The fake answers 401, which the CLI retries silently
for minutes, so the CLI is stopped once the first request is recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime_adapter import fingerprint
from runtime_adapter.testing import FakeLLM, serve_in_thread

from .conftest import WriteVolume, clean_env


def bundled_cli() -> Path | None:
    try:
        import claude_agent_sdk
    except ImportError:
        return None
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return path if path.is_file() and os.access(path, os.X_OK) else None


CLI = bundled_cli()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CLI is None,
        reason="the claude-agent-sdk wheel with its bundled Claude Code CLI is not installed "
        "(pip install 'runtime-adapter[claude-code]')",
    ),
]


@pytest.fixture
def refusing_llm() -> Iterator[tuple[FakeLLM, str]]:
    llm = FakeLLM(refuse_key=True)
    with serve_in_thread(llm.app) as url:
        yield llm, url


@pytest.mark.parametrize(
    ("model", "key_variable", "base_variable", "header"),
    [
        ("MiniMax-M2", "MINIMAX_API_KEY", "MINIMAX_BASE_URL", "authorization"),
        ("claude-sonnet-5", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "x-api-key"),
    ],
)
def test_claude_cli_sends_the_projected_credential_and_model(
    refusing_llm: tuple[FakeLLM, str],
    volume: WriteVolume,
    tmp_path: Path,
    model: str,
    key_variable: str,
    base_variable: str,
    header: str,
) -> None:
    llm, url = refusing_llm
    key = "cli-secret-key-4d2e9b"
    root = volume(f"model: {model}\n")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **clean_env(),
        "HOME": str(home),
        "WORKSPACE_CONFIG_PATH": str(root),
        key_variable: key,
        base_variable: url + "/anthropic",
        # stale projection from another arm, which the plan must replace
        "ANTHROPIC_AUTH_TOKEN": "stale-token" if header == "x-api-key" else "",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime_adapter", "exec", "--", str(CLI), "-p", "say hi"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        first = llm.wait_for_request(timeout=60)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=10)
    assert first is not None, err.decode(errors="replace")[-2000:]
    assert key.encode() not in out + err
    assert first.path == "/anthropic/v1/messages"
    assert first.model == model
    if header == "authorization":
        assert (first.authorization, first.api_key) == (f"Bearer {fingerprint(key)}", None)
    else:
        assert (first.authorization, first.api_key) == (None, fingerprint(key))
