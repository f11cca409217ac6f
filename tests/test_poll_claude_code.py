"""Poll delivery end to end (DESIGN §14): ``run`` + the claude-code template + the real
CLI + the platform emulator's poll side. A message queued at the platform is answered
at the peer's ``/a2a`` or the user's ``/notify``; contexts side by side, each in order;
every row answered exactly once across a SIGTERM restart and a pruned cursor; a
platform down for 30 s delays the answer, never loses it."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime_adapter import fingerprint
from runtime_adapter.testing import last_user_text

from .harness import WS, Process, wait_for
from .test_claude_code_a2a import CLI_TESTS_TIMEOUT, Workspace, world_at

pytestmark = [pytest.mark.slow, CLI_TESTS_TIMEOUT]

PEER = "ws-peer-0001"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with world_at(tmp_path) as world:
        yield world


def start_polling(world: Workspace, **env: str) -> Process:
    """``run`` in poll mode, pulling every half second."""
    start: Any = world.start  # its keyword arguments are typed; these are variables
    process: Process = start(DELIVERY_MODE="poll", POLL_INTERVAL_SECONDS="0.5", **env)
    return process


def answers(body: dict[str, Any]) -> str:
    """The model: each question gets its own answer (side requests get a title)."""
    if not body.get("stream"):
        return "a title"
    lines = last_user_text(body).strip().splitlines() or [""]
    return f"ANSWER TO <{lines[-1].strip()}>"  # the prompt comes after any reminder


def peer_replies(world: Workspace) -> list[dict[str, Any]]:
    return (world.emulator.view(PEER) or {}).get("received") or []


def notes(world: Workspace) -> list[str]:
    return [n["message"] for n in (world.view().get("notifications") or [])]


def reply_texts(world: Workspace) -> list[str]:
    return [
        r["body"]["params"]["message"]["parts"][0]["text"] for r in peer_replies(world)
    ] + notes(world)


@pytest.mark.unmeasured
def test_a_peer_and_the_user_are_answered_through_the_platform(workspace: Workspace) -> None:
    workspace.llm.script = answers
    process = start_polling(workspace)
    view = workspace.view()
    assert view["delivery_mode"] == "poll"
    assert view["url"] is None
    assert view["agent_card"]["url"] == f"{workspace.platform_url}/workspaces/{WS}/a2a"
    register = workspace.emulator.calls_to("/registry/register")[-1]
    assert register.status == 200

    workspace.emulator.send_message(WS, "peer question one", source_id=PEER, context_id="ctx-p")
    wait_for(lambda: peer_replies(workspace), timeout=90)
    reply = peer_replies(workspace)[0]
    assert reply["from"] == WS
    message = reply["body"]["params"]["message"]
    assert reply["body"]["method"] == "message/send"
    assert (message["role"], message["contextId"]) == ("agent", "ctx-p")
    assert message["parts"][0]["text"] == "ANSWER TO <peer question one>"
    sent = workspace.emulator.calls_to(f"/workspaces/{PEER}/a2a")[-1]
    token = workspace.emulator.workspaces[WS].token
    assert token is not None
    assert sent.authorization == f"Bearer {fingerprint(token)}"

    # the user, through the platform's proxy route as the canvas sends it
    queued = httpx.post(
        f"{workspace.platform_url}/workspaces/{WS}/a2a",
        json={
            "jsonrpc": "2.0",
            "id": 7,
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "messageId": "m-user-1",
                    "role": "user",
                    "parts": [{"kind": "text", "text": "user question"}],
                }
            },
        },
        timeout=10,
    ).json()
    assert queued == {"status": "queued", "delivery_mode": "poll", "method": "message/send"}
    wait_for(lambda: notes(workspace), timeout=90)
    assert notes(workspace) == ["ANSWER TO <user question>"]
    assert stat.S_IMODE((workspace.root / "configs" / ".a2a_cursor").stat().st_mode) == 0o600
    assert process.alive()


def test_two_contexts_side_by_side_each_in_order(workspace: Workspace) -> None:
    workspace.llm.script = answers
    start_polling(workspace)
    workspace.llm.delay = 1.5  # each turn takes a while: two at once show
    for text, context in (("a1", "A"), ("b1", "B"), ("a2", "A"), ("b2", "B")):
        workspace.emulator.send_message(WS, f"question {text}", source_id=PEER, context_id=context)
    wait_for(lambda: len(peer_replies(workspace)) == 4, timeout=180)
    by_context: dict[str, list[str]] = {}
    for reply in peer_replies(workspace):
        message = reply["body"]["params"]["message"]
        by_context.setdefault(message["contextId"], []).append(message["parts"][0]["text"])
    assert by_context == {
        "A": ["ANSWER TO <question a1>", "ANSWER TO <question a2>"],
        "B": ["ANSWER TO <question b1>", "ANSWER TO <question b2>"],
    }
    assert workspace.llm.max_in_flight >= 2


@pytest.mark.unmeasured
def test_a_sigterm_between_two_rows_answers_each_exactly_once(workspace: Workspace) -> None:
    workspace.llm.script = answers
    first = start_polling(workspace)
    workspace.emulator.send_message(WS, "first row")
    wait_for(lambda: notes(workspace), timeout=90)
    workspace.llm.delay = 4  # the second row's turn is running at the SIGTERM
    workspace.emulator.send_message(WS, "second row")
    wait_for(lambda: workspace.llm.in_flight > 0, timeout=60)
    assert first.stop() == 0
    workspace.llm.delay = 0
    wait_for(lambda: workspace.llm.in_flight == 0, timeout=30)
    cursor = json.loads((workspace.root / "configs" / ".a2a_cursor").read_text())
    assert cursor["pending"] == {}  # the second row was cut short: not answered, not done

    start_polling(workspace)
    wait_for(lambda: len(notes(workspace)) >= 2, timeout=90)
    time.sleep(2)  # a few more pulls: nothing comes twice
    assert notes(workspace) == ["ANSWER TO <first row>", "ANSWER TO <second row>"]


def test_a_pruned_cursor_is_recovered_without_repeats(workspace: Workspace) -> None:
    workspace.llm.script = answers
    first = start_polling(workspace)
    workspace.emulator.send_message(WS, "before the prune")
    wait_for(lambda: notes(workspace), timeout=90)
    assert first.stop() == 0
    workspace.emulator.prune_activity(WS, keep=0)  # the cursor's row is gone: 410
    workspace.emulator.send_message(WS, "after the prune")
    process = start_polling(workspace)
    wait_for(lambda: len(notes(workspace)) >= 2, timeout=90)
    time.sleep(2)
    assert notes(workspace) == ["ANSWER TO <before the prune>", "ANSWER TO <after the prune>"]
    pulls = [c for c in workspace.emulator.calls if c.path.endswith("/activity")]
    assert 410 in {c.status for c in pulls}
    assert process.alive()


def test_the_platform_down_for_a_while_delays_the_answer_and_loses_nothing(
    workspace: Workspace,
) -> None:
    workspace.llm.script = answers
    start_polling(workspace, HEARTBEAT_BACKOFF_CAP_SECONDS="5")
    workspace.emulator.outage(12)
    down = time.monotonic()
    workspace.emulator.send_message(WS, "during the outage")
    wait_for(lambda: notes(workspace), timeout=90)
    took = time.monotonic() - down
    assert notes(workspace) == ["ANSWER TO <during the outage>"]
    assert 12 <= took <= 12 + 5 + 30  # after the outage; within a cap and a turn of it
    pulls = [c for c in workspace.emulator.calls if c.path.endswith("/activity")]
    failed = [c for c in pulls if c.status == 503]
    # backed off: at 0.5 s intervals 12 s would be ~24 pulls; growing waits to a 5 s cap
    assert 3 <= len(failed) <= 10, len(failed)
