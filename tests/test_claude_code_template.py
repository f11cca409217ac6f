"""The claude-code template on the exact wire: an A2A message (0.3 ``message/send`` and
1.0 ``SendMessage``, hand-written JSON as the Molecule proxy sends it) reaches the real
Claude Code CLI, which calls a fake LLM with the projected credential and model, and a
task comes back. A 401 the CLI meets fails the task and is in the next heartbeat as
``auth_failed`` from ``llm_call``. The A2A behaviours through a2a-sdk's own client are
in ``test_claude_code_a2a``."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime_adapter import fingerprint
from runtime_adapter.testing import (
    FakeLLM,
    PlatformEmulator,
    check_adapter,
    free_port,
    message_send,
    serve_in_thread,
)

from .harness import KEY, WS, Process, wait_for
from .test_claude_cli import CLI

TEMPLATE = Path(__file__).parent.parent / "templates" / "claude-code"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CLI is None or importlib.util.find_spec("claude_code_adapter") is None,
        reason="needs claude-agent-sdk with its bundled CLI and the template installed "
        "(pip install -e templates/claude-code)",
    ),
]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[Process, PlatformEmulator, FakeLLM]]:
    emulator = PlatformEmulator()
    llm = FakeLLM(reply="pong from the fake LLM")
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("config.yaml", "system-prompt.md"):
        (configs / name).write_text((TEMPLATE / name).read_text())
    home = tmp_path / "home"
    home.mkdir()
    with serve_in_thread(emulator.app) as platform_url, serve_in_thread(llm.app) as llm_url:
        port = free_port()
        process = Process(
            {
                "WORKSPACE_ID": WS,
                "PLATFORM_URL": platform_url,
                "WORKSPACE_CONFIG_PATH": str(configs),
                "PORT": str(port),
                "HOME": str(home),
                "MINIMAX_API_KEY": KEY,
                "MINIMAX_BASE_URL": llm_url + "/anthropic",
                "HEARTBEAT_INTERVAL_SECONDS": "30",
                "LOG_FORMAT": "json",
            },
            port,
        )
        try:
            wait_for(lambda: emulator.calls_to("/registry/heartbeat"), timeout=30)
            # the probe runs beside the boot, after an import of ~1 s: a test that makes
            # the fake refuse must not race it, so wait until it has been answered
            wait_for(lambda: llm.requests and llm.in_flight == 0, timeout=30)
            yield process, emulator, llm
        finally:
            assert process.stop() == 0, process.output[-3000:]
            assert KEY not in process.output


def rpc(process: Process, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    answer = httpx.post(
        f"http://127.0.0.1:{process.port}/", json=body, headers=headers, timeout=120
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


V03 = message_send("say hi", message_id="m-03")
V10 = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "SendMessage",
    "params": {
        "message": {"role": "ROLE_USER", "parts": [{"text": "say hi"}], "messageId": "m-10"}
    },
}


def test_the_template_conforms() -> None:
    import anyio
    from claude_code_adapter import ClaudeCodeAdapter

    anyio.run(check_adapter, ClaudeCodeAdapter)


@pytest.mark.unmeasured
def test_message_send_and_send_message_reach_the_real_cli_and_come_back(
    runtime: tuple[Process, PlatformEmulator, FakeLLM],
) -> None:
    process, emulator, llm = runtime
    # the 0.3 wire the Molecule proxy speaks: a task, completed, the answer as an artifact
    old = rpc(process, V03)["result"]
    assert (old["kind"], old["status"]["state"]) == ("task", "completed")
    assert old["artifacts"][0]["parts"] == [{"kind": "text", "text": "pong from the fake LLM"}]
    new = rpc(process, V10, **{"A2A-Version": "1.0"})["result"]["task"]
    assert new["status"]["state"] == "TASK_STATE_COMPLETED"
    assert new["artifacts"][0]["parts"] == [{"text": "pong from the fake LLM"}]
    turns = [r for r in llm.requests if r.stream]
    assert len(turns) >= 2
    assert {(r.path, r.model, r.authorization, r.api_key) for r in turns} == {
        ("/anthropic/v1/messages", "MiniMax-M2.7", f"Bearer {fingerprint(KEY)}", None)
    }
    view = emulator.view(WS)
    assert view is not None
    assert view["status"] == "online"


def test_a_401_in_a_turn_is_reported_from_llm_call_at_once(
    runtime: tuple[Process, PlatformEmulator, FakeLLM],
) -> None:
    process, emulator, llm = runtime
    beats_before = len(emulator.calls_to("/registry/heartbeat"))
    llm.refuse_key = True
    task = rpc(process, V03)["result"]
    assert (task["status"]["state"], task.get("artifacts")) == ("failed", None)
    assert task["status"]["message"]["parts"][0]["text"].startswith(
        "failed: auth_failed: the LLM refused the credential (401"
    )

    def reported() -> dict[str, Any] | None:
        for call in emulator.calls_to("/registry/heartbeat")[beats_before:]:
            detail = call.body.get("sample_error_detail") or {}
            if detail.get("kind") == "auth_failed":
                return dict(detail)
        return None

    detail = wait_for(reported, timeout=5)
    assert (detail["source"], detail["status"], detail["credential_env"]) == (
        "llm_call",
        401,
        "MINIMAX_API_KEY",
    )
    view = emulator.view(WS)
    assert view is not None
    assert view["runtime_state"] == "wedged"
