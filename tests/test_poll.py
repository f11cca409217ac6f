"""Poll delivery's loop (DESIGN §14) against a scripted platform client: cursor order,
exactly-once across a restart, a pruned cursor, replies that say a task failed, and a
stdlib HTTP fake platform for the wire (``run`` with the echo adapter)."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from runtime_adapter.errors import CursorPruned, PlatformUnavailable
from runtime_adapter.health import Health
from runtime_adapter.poll import CURSOR_FILE, Cursor, PollLoop, reply_of
from runtime_adapter.testing import free_port

from .harness import Process, wait_for

pytestmark = pytest.mark.anyio


def row(
    row_id: str, text: str, *, context: str | None = None, source: str | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "user", "parts": [{"kind": "text", "text": text}]}
    if context:
        message["contextId"] = context
    return {
        "id": row_id,
        "activity_type": "a2a_receive",
        "source_id": source,
        "request_body": {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "message/send",
            "params": {"message": message},
        },
    }


def completed(text: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "kind": "task",
            "status": {"state": "completed"},
            "artifacts": [{"parts": [{"kind": "text", "text": text}]}],
        },
    }


class Platform:
    """The client side of the loop: rows to hand out, replies recorded, faults."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.pulls: list[dict[str, Any]] = []
        self.notified: list[str] = []
        self.peers: list[tuple[str, dict[str, Any]]] = []
        self.pruned: set[str] = set()
        self.down = 0  # the next pulls that fail
        self.workspace_id = "ws-poll"

    async def activity(
        self, *, since_id: str | None = None, since_secs: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        self.pulls.append({"since_id": since_id, "since_secs": since_secs})
        if self.down:
            self.down -= 1
            raise PlatformUnavailable("down", endpoint="platform", status=503)
        if since_id in self.pruned:
            raise CursorPruned("gone", endpoint="platform", status=410)
        ids = [r["id"] for r in self.rows]
        start = ids.index(since_id) + 1 if since_id in ids else 0
        return self.rows[start : start + limit]

    async def notify(self, text: str) -> None:
        self.notified.append(text)

    async def reply_to_peer(self, source_id: str, body: dict[str, Any]) -> None:
        self.peers.append((source_id, body))


class Agent:
    """The adapter's routes: answers each message with its text, after ``slow`` seconds
    for texts that say so; records the order of starts and ends."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.running = 0
        self.most = 0

    async def __call__(self, body: dict[str, Any], caller: str) -> dict[str, Any]:
        text = body["params"]["message"]["parts"][0]["text"]
        self.calls.append((text, caller))
        self.running += 1
        self.most = max(self.most, self.running)
        self.events.append(f"start {text}")
        try:
            await anyio.sleep(0.3 if "slow" in text else 0.01)
        finally:
            self.running -= 1
        self.events.append(f"end {text}")
        if "fail" in text:
            return {
                "jsonrpc": "2.0",
                "id": 1,
                "result": {
                    "kind": "task",
                    "status": {
                        "state": "failed",
                        "message": {
                            "parts": [{"kind": "text", "text": "failed: auth_failed: 401"}]
                        },
                    },
                },
            }
        return completed(f"answer to {text}")


def loop(platform: Platform, agent: Agent, root: Path) -> PollLoop:
    return PollLoop(platform, Health(), call=agent, cursor=Cursor(root), interval=0.05, cap=0.2)  # type: ignore[arg-type]


async def run_until(poll: PollLoop, condition: Any) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(poll.run)
        with anyio.fail_after(10):
            while not condition():  # noqa: ASYNC110 - a condition on plain state
                await anyio.sleep(0.01)
        await poll.stop()
        group.cancel_scope.cancel()


async def test_contexts_run_side_by_side_and_each_keeps_its_order(tmp_path: Path) -> None:
    platform, agent = Platform(), Agent()
    platform.rows = [
        row("1", "a1 slow", context="A", source="peer-1"),
        row("2", "b1 slow", context="B"),
        row("3", "a2", context="A", source="peer-1"),
        row("4", "b2", context="B"),
    ]
    poll = loop(platform, agent, tmp_path)
    await run_until(poll, lambda: len(platform.notified) == 2 and len(platform.peers) == 2)
    assert agent.most >= 2  # a1 and b1 at once
    assert agent.events.index("end a1 slow") < agent.events.index("start a2")
    assert agent.events.index("end b1 slow") < agent.events.index("start b2")
    assert platform.notified == ["answer to b1 slow", "answer to b2"]
    assert [body["params"]["message"]["parts"][0]["text"] for _, body in platform.peers] == [
        "answer to a1 slow",
        "answer to a2",
    ]
    source, body = platform.peers[0]
    assert source == "peer-1"
    message = body["params"]["message"]
    assert (body["method"], message["role"], message["contextId"]) == ("message/send", "agent", "A")
    assert ("a1 slow", "workspace:peer-1") in agent.calls
    assert ("b1 slow", "platform") in agent.calls
    saved = json.loads((tmp_path / CURSOR_FILE).read_text())
    assert saved["since_id"] == "4"
    assert stat.S_IMODE((tmp_path / CURSOR_FILE).stat().st_mode) == 0o600


async def test_the_cursor_waits_for_every_earlier_row_and_a_restart_repeats_nothing(
    tmp_path: Path,
) -> None:
    platform, agent = Platform(), Agent()
    platform.rows = [row("1", "one slow", context="A"), row("2", "two", context="B")]
    poll = loop(platform, agent, tmp_path)
    await run_until(poll, lambda: len(platform.notified) == 1)  # "two" answered, "one" not
    assert platform.notified == ["answer to two"]
    saved = json.loads((tmp_path / CURSOR_FILE).read_text())
    assert saved["since_id"] is None  # row 1 is not done: the cursor may not pass it
    assert "2" in saved["handled"]

    # the next process: row 1 is run, row 2 is not answered again
    again = loop(platform, agent, tmp_path)
    platform.rows.append(row("3", "three", context="B"))
    await run_until(again, lambda: len(platform.notified) == 3)
    # contexts A and B run side by side: B's "three" may come before A's "one"
    assert sorted(platform.notified) == ["answer to one slow", "answer to three", "answer to two"]
    assert [text for text, _ in agent.calls].count("two") == 1


async def test_a_reply_saved_but_not_sent_is_sent_by_the_next_process_without_a_turn(
    tmp_path: Path,
) -> None:
    platform, agent = Platform(), Agent()
    platform.rows = [row("1", "one")]
    cursor = Cursor(tmp_path)
    cursor.pending["1"] = reply_of(
        platform.rows[0]["request_body"], completed("saved answer"), None
    )
    cursor.save()
    poll = loop(platform, agent, tmp_path)
    await run_until(poll, lambda: platform.notified and len(platform.pulls) > 2)
    assert platform.notified == ["saved answer"]
    assert agent.calls == []  # the turn was not run again


class SlowToAnswer(Platform):
    """A platform that takes each notify at once and answers it ``answer_after`` later
    (``None``: never): the reply is the platform's before the runtime hears so."""

    def __init__(self, answer_after: float | None) -> None:
        super().__init__()
        self.answer_after = answer_after

    async def notify(self, text: str) -> None:
        self.notified.append(text)
        await anyio.sleep(3600 if self.answer_after is None else self.answer_after)


@pytest.mark.parametrize("answer_after", [0.3, None], ids=["answered", "never-answered"])
async def test_a_shutdown_during_a_replys_post_neither_repeats_nor_loses_it(
    tmp_path: Path, answer_after: float | None
) -> None:
    """SIGTERM while a reply's POST is under way (seen in a loaded run: the note came
    twice after a restart). Answered within the grace: recorded, never sent again. Never
    answered: the shutdown is not held past the grace, and the reply stays pending."""
    platform, agent = SlowToAnswer(answer_after), Agent()
    platform.rows = [row("1", "one")]
    poll = loop(platform, agent, tmp_path)
    async with anyio.create_task_group() as group:
        group.start_soon(poll.run)
        with anyio.fail_after(10):
            while not platform.notified:  # noqa: ASYNC110 - a condition on plain state
                await anyio.sleep(0.01)
        started = anyio.current_time()
        await poll.stop()
        took = anyio.current_time() - started
        group.cancel_scope.cancel()
    saved = json.loads((tmp_path / CURSOR_FILE).read_text())
    if answer_after is not None:
        assert "1" in saved["handled"]
        assert saved["pending"] == {}
    else:
        assert took < 5  # the grace (1.5 s) and the save, not the POST's own deadline
        assert list(saved["pending"]) == ["1"]

    platform.answer_after = 0.0  # the next process
    again = loop(platform, agent, tmp_path)
    await run_until(again, lambda: len(platform.pulls) > 3)
    expected = 1 if answer_after is not None else 2  # sent again only if never answered
    assert platform.notified == ["answer to one"] * expected
    assert [text for text, _ in agent.calls] == ["one"]  # the turn ran once


async def test_a_pruned_cursor_asks_for_ten_minutes_and_skips_what_was_handled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="runtime_adapter.poll")
    platform, agent = Platform(), Agent()
    cursor = Cursor(tmp_path)
    cursor.since_id = "1"
    cursor.remember("1")
    cursor.remember("2")  # handled, though the cursor could not pass it yet
    cursor.save()
    platform.pruned = {"1"}
    platform.rows = [row("2", "two"), row("3", "three")]
    poll = loop(platform, agent, tmp_path)
    await run_until(poll, lambda: platform.notified)
    assert platform.pulls[:2] == [
        {"since_id": "1", "since_secs": None},
        {"since_id": None, "since_secs": 600},
    ]
    assert platform.notified == ["answer to three"]
    assert [text for text, _ in agent.calls] == ["three"]
    said = [r.getMessage() for r in caplog.records if r.name == "runtime_adapter.poll"]
    assert any("handled already, skipped: 2" in line for line in said), said
    assert any("cannot be fetched" in line for line in said), said


async def test_a_row_of_another_activity_type_is_skipped_never_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    platform, agent = Platform(), Agent()
    foreign = {**row("1", "rm -rf"), "activity_type": "a2a_send"}
    platform.rows = [foreign, row("2", "two")]
    poll = loop(platform, agent, tmp_path)
    await run_until(poll, lambda: platform.notified)
    assert [text for text, _ in agent.calls] == ["two"]
    assert platform.notified == ["answer to two"]
    assert any("row 1 is activity 'a2a_send'" in r.getMessage() for r in caplog.records)


async def test_pull_failures_back_off_and_nothing_is_lost(tmp_path: Path) -> None:
    platform, agent = Platform(), Agent()
    platform.down = 6
    platform.rows = [row("1", "one")]
    slept: list[float] = []
    poll = loop(platform, agent, tmp_path)
    poll.cap = 5.0

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await anyio.sleep(0.001)

    poll.sleep = sleep
    await run_until(poll, lambda: platform.notified)
    assert platform.notified == ["answer to one"]
    failed = slept[:6]
    assert 0.5 <= failed[0] <= 1.5  # the blip
    # then from the interval (0.05 s), doubling, jittered down by at most a fifth
    for n, wait in enumerate(failed[1:], start=2):
        assert 0.05 * 2 ** (n - 2) * 0.8 <= wait <= 0.05 * 2 ** (n - 2), failed
    assert poll.health.current() is None  # the success cleared the poll error


async def test_a_failed_task_or_a_refused_request_says_it_failed(tmp_path: Path) -> None:
    platform, agent = Platform(), Agent()
    platform.rows = [
        row("1", "please fail"),
        {"id": "2", "source_id": None, "request_body": "not json-rpc"},
        row("3", "fine"),
    ]
    poll = loop(platform, agent, tmp_path)
    await run_until(poll, lambda: len(platform.notified) == 2)
    assert sorted(platform.notified) == ["answer to fine", "failed: auth_failed: 401"]
    refused = reply_of(
        row("9", "x")["request_body"], {"error": {"code": -32602, "message": "too long"}}, None
    )
    assert (refused.text, refused.failed) == ("failed: too long", True)
    saved = json.loads((tmp_path / CURSOR_FILE).read_text())
    assert saved["since_id"] == "3"  # the skipped row is done too


# -- the wire, against a stdlib fake platform ----------------------------------------


class FakePlatform(BaseHTTPRequestHandler):
    """Register, heartbeat, one activity row, and the two reply routes; records all."""

    seen: ClassVar[list[dict[str, Any]]] = []
    rows: ClassVar[list[dict[str, Any]]] = []
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:
        return

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: Any) -> None:
        with self.lock:
            self.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )

    def do_GET(self) -> None:
        self._record(None)
        parts = urlsplit(self.path)
        if parts.path.endswith("/activity"):
            since = parse_qs(parts.query).get("since_id", [""])[0]
            with self.lock:
                rows = [r for r in self.rows if not since or r["id"] > since]
            self._answer(200, rows)
            return
        self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        self._record(body)
        if self.path == "/registry/register":
            self._answer(200, {"status": "registered", "auth_token": "tok-from-fake-platform"})
        else:
            self._answer(200, {"status": "ok"})


@pytest.fixture
def fake_platform() -> Iterator[str]:
    FakePlatform.seen, FakePlatform.rows = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePlatform)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_poll_wire_against_a_stdlib_platform(fake_platform: str, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("name: poller\nruntime: echo\n")
    FakePlatform.rows = [
        row("000001", "hello peer", context="ctx-9", source="ws-peer"),
        row("000002", "hello user"),
    ]
    port = free_port()
    process = Process(
        {
            "WORKSPACE_ID": "ws-poller",
            "PLATFORM_URL": fake_platform,
            "WORKSPACE_CONFIG_PATH": str(tmp_path),
            "ADAPTER_MODULE": "runtime_adapter.testing.echo",
            "PORT": str(port),
            "DELIVERY_MODE": "poll",
            "POLL_INTERVAL_SECONDS": "0.3",
            "HEARTBEAT_INTERVAL_SECONDS": "1",
            "LOG_FORMAT": "json",
        },
        port,
    )

    def replies() -> list[dict[str, Any]]:
        return [s for s in FakePlatform.seen if s["path"].endswith(("/a2a", "/notify"))]

    def pulled_past_both() -> bool:
        return any("since_id=000002" in s["path"] for s in FakePlatform.seen)

    try:
        wait_for(lambda: len(replies()) == 2, timeout=30)
        wait_for(pulled_past_both, timeout=10)
        assert process.get("/health") is not None  # served locally
    finally:
        output = process.stop_and_output()
    register = next(s for s in FakePlatform.seen if s["path"] == "/registry/register")
    assert register["body"]["delivery_mode"] == "poll"
    assert "url" not in register["body"]
    assert register["headers"]["Origin"] == fake_platform
    pull = next(s for s in FakePlatform.seen if "/activity" in s["path"])
    query = parse_qs(urlsplit(pull["path"]).query)
    assert urlsplit(pull["path"]).path == "/workspaces/ws-poller/activity"
    assert query["type"] == ["a2a_receive"]
    assert query["limit"] == ["100"]
    # two contexts: their replies may come in either order
    (peer,) = [s for s in replies() if s["path"].endswith("/a2a")]
    (user,) = [s for s in replies() if s["path"].endswith("/notify")]
    assert peer["path"] == "/workspaces/ws-peer/a2a"
    assert peer["headers"]["X-Source-Workspace-Id"] == "ws-poller"
    assert peer["headers"]["Authorization"] == "Bearer tok-from-fake-platform"
    message = peer["body"]["params"]["message"]
    assert (peer["body"]["method"], message["role"], message["contextId"]) == (
        "message/send",
        "agent",
        "ctx-9",
    )
    assert "hello peer" in message["parts"][0]["text"]
    assert user["path"] == "/workspaces/ws-poller/notify"
    assert "hello user" in user["body"]["message"]
    assert "tok-from-fake-platform" not in output
