"""The claude-code template as an A2A caller sees it (DESIGN §12), driven by a2a-sdk's
own client against ``runtime-adapter run``, the real bundled Claude Code CLI and a
fake Anthropic-compatible LLM.

The invariants: a context is one conversation, even across a restart with an
empty ``$HOME``; every message is a task that ends completed, failed (never a
failure dressed as an answer) or canceled; a context keeps one live CLI between
its turns, and only while that CLI is idle, current and wanted: none outlives
the runtime.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)

from runtime_adapter import fingerprint
from runtime_adapter.testing import (
    FakeLLM,
    PlatformEmulator,
    ToolUse,
    free_port,
    last_user_text,
    serve_in_thread,
)

from .harness import KEY, WS, Process, wait_for
from .test_claude_cli import CLI
from .test_claude_code_template import TEMPLATE

# the hang guard, not a speed bound: a test here boots a runtime (twice for a restart)
# and runs real CLI turns, and a cold or busy machine took 49 s for one before its
# teardown's SIGTERM (a first run after a fresh clone, 3 workers on 2 cores)
CLI_TESTS_TIMEOUT = pytest.mark.timeout(120)

pytestmark = [
    pytest.mark.slow,
    CLI_TESTS_TIMEOUT,
    pytest.mark.anyio,
    # about the template and the real CLI: the runtime code they run is measured in
    # the runtime's own tests (the one boot only this module makes is marked measured)
    pytest.mark.unmeasured,
    pytest.mark.skipif(CLI is None, reason="needs claude-agent-sdk with its bundled CLI"),
]

TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
}


@dataclass
class Workspace:
    emulator: PlatformEmulator
    platform_url: str
    llm: FakeLLM
    llm_url: str
    root: Path
    processes: list[Process] = field(default_factory=list)

    def start(
        self,
        runtime_config: str = "",
        *,
        permission_mode: str | None = None,
        max_turns: int | None = None,
        push: bool = False,
        **env: str,
    ) -> Process:
        configs = self.root / "configs"
        configs.mkdir(exist_ok=True)
        (self.root / "workspace").mkdir(exist_ok=True)
        config = (
            (TEMPLATE / "config.yaml")
            .read_text()
            .replace("runtime_config:\n", "runtime_config:\n" + runtime_config, 1)
        )
        if max_turns is not None:
            config = config.replace("max_turns: 30", f"max_turns: {max_turns}")
        if push:
            config = config.replace("push_notifications: false", "push_notifications: true")
        if permission_mode is not None:  # the real tools run without asking (as root: sandbox)
            config = config.replace(
                "permission_mode: acceptEdits", f"permission_mode: {permission_mode}"
            )
            env.setdefault("IS_SANDBOX", "1")
        (configs / "config.yaml").write_text(config)
        (configs / "system-prompt.md").write_text((TEMPLATE / "system-prompt.md").read_text())
        home = self.root / f"home-{len(list(self.root.glob('home-*')))}"  # fresh, empty
        home.mkdir()
        port = free_port()
        process = Process(
            {
                "WORKSPACE_ID": WS,
                "PLATFORM_URL": self.platform_url,
                "WORKSPACE_CONFIG_PATH": str(configs),
                "WORKSPACE_DIR": str(self.root / "workspace"),
                "PORT": str(port),
                "HOME": str(home),
                "MINIMAX_API_KEY": KEY,
                "MINIMAX_BASE_URL": self.llm_url + "/anthropic",
                "HEARTBEAT_INTERVAL_SECONDS": "1",
                "LOG_FORMAT": "json",
                **env,
            },
            port,
        )
        self.processes.append(process)
        beats = len(self.emulator.calls_to("/registry/heartbeat"))
        wait_for(lambda: len(self.emulator.calls_to("/registry/heartbeat")) > beats, timeout=60)
        wait_for(lambda: process.get("/health") is not None, timeout=10)
        # the probe runs beside the boot (an import of ~1 s): a test that changes the
        # fake's answers next must not race it
        wait_for(lambda: self.llm.requests and self.llm.in_flight == 0, timeout=60)
        return process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.processes[-1].port}"

    def view(self) -> dict[str, Any]:
        return self.emulator.view(WS) or {}


@contextmanager
def world_at(root: Path) -> Iterator[Workspace]:
    """The emulator and the fake LLM on sockets, and after the test: every runtime
    stops on SIGTERM within 10 s, printed no key, and left no CLI behind."""
    emulator, llm = PlatformEmulator(), FakeLLM(reply="pong from the fake LLM")
    with serve_in_thread(emulator.app) as platform_url, serve_in_thread(llm.app) as llm_url:
        world = Workspace(emulator, platform_url, llm, llm_url, root)
        yield world
        for process in world.processes:
            assert process.stop() == 0, process.output[-3000:]
            assert process.stopped_within(10)
            assert KEY not in process.output
        assert not leftover_clis(world.root), "a CLI process outlived the runtime"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with world_at(tmp_path) as world:
        yield world


def cli_children(process: Process) -> list[int]:
    """Descendants of the runtime process that are the Claude Code CLI."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == process.popen.pid and b"claude" in command:
            found.append(int(entry.name))
    return found


def leftover_clis(root: Path) -> list[int]:
    """Any process on the machine whose CLAUDE_CONFIG_DIR is this workspace's session
    directory: a CLI that outlived its runtime would be re-parented, not gone."""
    marker = f"CLAUDE_CONFIG_DIR={root / 'configs' / '.claude-code'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@asynccontextmanager
async def client(url: str, *, streaming: bool = False) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(timeout=120) as http:
        factory = ClientFactory(ClientConfig(streaming=streaming, httpx_client=http))
        agent = await factory.create_from_url(url)
        try:
            yield agent
        finally:
            await agent.close()


def message(text: str, context_id: str) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id=str(uuid.uuid4()),
            context_id=context_id,
            role=Role.ROLE_USER,
            parts=[Part(text=text)],
        )
    )


async def send(
    url: str, text: str, context_id: str, *, streaming: bool = False
) -> list[StreamResponse]:
    request = message(text, context_id)
    async with client(url, streaming=streaming) as agent:
        return [event async for event in agent.send_message(request)]


def final_task(events: list[StreamResponse]) -> Task:
    tasks = [e.task for e in events if e.HasField("task")]
    assert tasks, events
    return tasks[-1]


def answer_text(task: Task) -> str:
    return "\n".join(part.text for artifact in task.artifacts for part in artifact.parts)


def turns(llm: FakeLLM) -> list[Any]:
    """The main-turn requests (the CLI streams them)."""
    return [r for r in llm.requests if r.stream]


async def test_a_context_is_one_conversation_even_after_a_restart_with_an_empty_home(
    workspace: Workspace,
) -> None:
    workspace.start()
    context = str(uuid.uuid4())
    first = final_task(await send(workspace.url, "remember the word zebra", context))
    assert first.status.state == TaskState.TASK_STATE_COMPLETED
    assert answer_text(first) == "pong from the fake LLM"
    await send(workspace.url, "which word?", context)
    second = turns(workspace.llm)[-1]
    said = [text for _, text in second.messages]
    assert any("remember the word zebra" in text for text in said), said
    assert any("pong from the fake LLM" in text for text in said)
    # a different context is a different conversation
    await send(workspace.url, "hello stranger", str(uuid.uuid4()))
    assert not any("zebra" in t for _, t in turns(workspace.llm)[-1].messages)

    assert workspace.processes[-1].stop() == 0
    workspace.start()  # same volumes, a fresh empty $HOME
    third = final_task(await send(workspace.url, "and now?", context))
    assert third.status.state == TaskState.TASK_STATE_COMPLETED
    said = [text for _, text in turns(workspace.llm)[-1].messages]
    assert any("remember the word zebra" in text for text in said), said
    # the task is there during and after: GetTask
    async with client(workspace.url) as agent:
        got = await agent.get_task(GetTaskRequest(id=third.id))
    assert got.status.state == TaskState.TASK_STATE_COMPLETED


@pytest.mark.parametrize(
    "form", ["claude_code_adapter", "claude_code_adapter:ClaudeCodeAdapter", "entry point"]
)
async def test_every_documented_adapter_module_form_answers(
    workspace: Workspace, form: str
) -> None:
    """DESIGN §10: ``ADAPTER_MODULE=pkg`` takes the adapter the package re-exports."""
    if form == "entry point":
        workspace.start()  # config.yaml's runtime: claude-code
    else:
        workspace.start(ADAPTER_MODULE=form)
    task = final_task(await send(workspace.url, "hello", str(uuid.uuid4())))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert answer_text(task) == "pong from the fake LLM"


async def test_a_refused_key_fails_the_task_and_reaches_the_platform_at_once(
    workspace: Workspace,
) -> None:
    process = workspace.start()
    workspace.llm.refuse_key = True
    started = time.monotonic()
    task = final_task(await send(workspace.url, "say hi", str(uuid.uuid4())))
    assert task.status.state == TaskState.TASK_STATE_FAILED
    reason = "\n".join(p.text for p in task.status.message.parts)
    assert "auth_failed" in reason
    assert not answer_text(task)  # a failure is never dressed as an answer

    def reported() -> bool:
        detail = workspace.view().get("last_sample_error_detail") or {}
        return detail.get("kind") == "auth_failed" and detail.get("source") == "llm_call"

    wait_for(reported, timeout=10)
    assert time.monotonic() - started < 15
    assert not cli_children(process)  # the CLI is not left retrying
    before = len(turns(workspace.llm))
    await anyio.sleep(2)
    assert len(turns(workspace.llm)) == before
    assert fingerprint(KEY) in str(workspace.view()["last_sample_error"])


async def slow_turn(workspace: Workspace, agent: Any, context: str) -> str:
    """A turn whose LLM call takes a minute, sent without waiting; its task id once the
    call is at the provider."""
    workspace.llm.delay = 60
    request = message("take your time", context)
    request.configuration.CopyFrom(SendMessageConfiguration(return_immediately=True))
    events = [event async for event in agent.send_message(request)]
    wait_for(lambda: workspace.llm.in_flight >= 1, timeout=30)
    return final_task(events).id


async def test_cancel_interrupts_a_slow_turn_and_the_context_goes_on(
    workspace: Workspace,
) -> None:
    process = workspace.start()
    context = str(uuid.uuid4())
    async with client(workspace.url) as agent:
        task_id = await slow_turn(workspace, agent, context)
        live = cli_children(process)
        assert len(live) == 1
        asked = time.monotonic()
        canceled = await agent.cancel_task(CancelTaskRequest(id=task_id))
        answered = time.time()
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        assert time.monotonic() - asked < 5
        # the provider's call is closed too (DESIGN §13): nobody pays for the answer;
        # the turn's CLI let go of it by the time the cancel was answered
        wait_for(lambda: workspace.llm.disconnects, timeout=10)
        assert workspace.llm.disconnects[0] - answered < 1.0
        # interrupted: no further LLM call, though the kept-alive CLI is still there
        before = len(workspace.llm.requests)
        await anyio.sleep(2)
        assert workspace.llm.requests[before:] == []
        got = await agent.get_task(GetTaskRequest(id=task_id))
    assert got.status.state == TaskState.TASK_STATE_CANCELED
    workspace.llm.delay = 0
    after = final_task(await send(workspace.url, "are you there?", context))
    assert after.status.state == TaskState.TASK_STATE_COMPLETED
    said = [text for _, text in turns(workspace.llm)[-1].messages]
    assert any("take your time" in text for text in said), said  # the same conversation
    assert cli_children(process) == live  # the same CLI, not a new one


async def test_a_cli_killed_mid_call_closes_the_providers_call_within_a_second(
    workspace: Workspace,
) -> None:
    process = workspace.start()
    async with client(workspace.url) as agent:
        task_id = await slow_turn(workspace, agent, str(uuid.uuid4()))
        calls = len(workspace.llm.requests)
        [cli] = cli_children(process)
        os.kill(cli, signal.SIGKILL)
        killed = time.time()
        wait_for(lambda: workspace.llm.disconnects, timeout=10)
        assert workspace.llm.disconnects[0] - killed < 1.0
        got = await _ended(agent, task_id)
    assert got.status.state == TaskState.TASK_STATE_FAILED  # never dressed as an answer
    assert len(workspace.llm.requests) == calls  # no further call of that turn
    # neither a success nor an error: an abandoned call is no news about the key (the
    # gateway's errors carry the HTTP status it saw; a CLI that died is the template's)
    detail = workspace.view().get("last_sample_error_detail") or {}
    assert detail.get("status") is None, detail


async def _ended(agent: Any, task_id: str, within: float = 30.0) -> Task:
    """The task once it is in a terminal state (asked every 0.2 s)."""
    deadline = time.monotonic() + within
    task: Task = await agent.get_task(GetTaskRequest(id=task_id))
    while task.status.state not in TERMINAL and time.monotonic() < deadline:
        await anyio.sleep(0.2)
        task = await agent.get_task(GetTaskRequest(id=task_id))
    return task


async def test_a_context_keeps_its_cli_and_another_context_gets_its_own(
    workspace: Workspace,
) -> None:
    process = workspace.start()
    context = str(uuid.uuid4())
    await send(workspace.url, "first", context)
    first = cli_children(process)
    await send(workspace.url, "second", context)
    assert cli_children(process) == first
    assert len(first) == 1
    await send(workspace.url, "elsewhere", str(uuid.uuid4()))
    both = cli_children(process)
    assert len(both) == 2
    assert first[0] in both


@pytest.mark.parametrize("noticed", [0.0, 1.0], ids=["at-once", "after-1s"])
async def test_a_kept_cli_killed_while_idle_is_replaced_and_the_message_answered(
    workspace: Workspace, noticed: float
) -> None:
    process = workspace.start()
    context = str(uuid.uuid4())
    await send(workspace.url, "remember the word zebra", context)
    [kept] = cli_children(process)
    os.kill(kept, signal.SIGKILL)  # the OOM killer, say
    wait_for(lambda: kept not in cli_children(process), timeout=5)
    # at once, the prompt's write still succeeds and the death shows at the first read
    # (what CI met); a second later the SDK knows of the exit and the write itself fails
    await anyio.sleep(noticed)
    task = final_task(await send(workspace.url, "which word?", context))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    said = [text for _, text in turns(workspace.llm)[-1].messages]
    assert any("remember the word zebra" in text for text in said), said


async def test_an_idle_cli_is_closed_and_the_next_message_resumes_the_session(
    workspace: Workspace,
) -> None:
    process = workspace.start("  keep_alive_seconds: 1\n")
    context = str(uuid.uuid4())
    await send(workspace.url, "remember the word zebra", context)
    assert cli_children(process)
    wait_for(lambda: not cli_children(process), timeout=6)
    task = final_task(await send(workspace.url, "which word?", context))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    said = [text for _, text in turns(workspace.llm)[-1].messages]
    assert any("remember the word zebra" in text for text in said), said


async def test_live_clis_are_capped_least_recently_used_first(workspace: Workspace) -> None:
    process = workspace.start("  max_concurrent_turns: 1\n  max_live_sessions: 1\n")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    await send(workspace.url, "one", first)
    kept = cli_children(process)
    await send(workspace.url, "two", second)
    wait_for(lambda: len(cli_children(process)) == 1, timeout=6)
    assert cli_children(process) != kept
    task = final_task(await send(workspace.url, "one again", first))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    said = [text for _, text in turns(workspace.llm)[-1].messages]
    assert any(text.endswith("one") for text in said), said  # resumed, not a new session


async def test_a_rotated_key_reaches_the_next_turn_of_a_live_context(
    workspace: Workspace,
) -> None:
    """DESIGN §13: a rotated key is used from the next request on, and the live CLI of
    the context goes on (its PID unchanged)."""
    secrets = workspace.root / "secrets"
    secrets.mkdir()
    (secrets / "MINIMAX_API_KEY").write_text(KEY)
    process = workspace.start(MINIMAX_API_KEY="", RUNTIME_SECRETS_DIR=str(secrets))
    context = str(uuid.uuid4())
    await send(workspace.url, "first", context)
    old = cli_children(process)
    assert turns(workspace.llm)[-1].authorization == f"Bearer {fingerprint(KEY)}"
    rotated = "mm-rotated-key-" + uuid.uuid4().hex
    (secrets / "MINIMAX_API_KEY").write_text(rotated)
    rotated_seen = f"Bearer {fingerprint(rotated)}"
    # the runtime re-plans and probes the new key; then the next turn
    wait_for(lambda: any(r.authorization == rotated_seen for r in workspace.llm.requests), 15)
    task = final_task(await send(workspace.url, "second", context))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert turns(workspace.llm)[-1].authorization == rotated_seen
    # the CLI holds only the gateway's token: it is kept, and the gateway sends the new key
    assert cli_children(process) == old
    assert rotated not in process.output


async def test_streaming_shows_work_before_the_answer(workspace: Workspace) -> None:
    workspace.start()
    events = await send(workspace.url, "say hi", str(uuid.uuid4()), streaming=True)
    kinds: list[tuple[str, Any]] = []
    for event in events:
        if event.HasField("status_update"):
            kinds.append(("status", event.status_update.status.state))
        elif event.HasField("artifact_update"):
            kinds.append(("artifact", None))
    working = [i for i, k in enumerate(kinds) if k == ("status", TaskState.TASK_STATE_WORKING)]
    artifact = kinds.index(("artifact", None))
    assert working
    assert working[0] < artifact
    assert kinds[-1] == ("status", TaskState.TASK_STATE_COMPLETED)


async def test_five_contexts_at_once_never_more_than_two_at_the_llm(workspace: Workspace) -> None:
    workspace.start("  max_concurrent_turns: 2\n")
    wait_for(lambda: workspace.llm.requests)  # the boot's credential probe is done
    workspace.llm.delay = 1.5
    seen_active: list[int] = []

    def watch(call: Any) -> None:
        if call.path == "/registry/heartbeat" and isinstance(call.body, dict):
            seen_active.append(int(call.body.get("active_tasks", 0)))

    workspace.emulator.on_call = watch
    results: list[Task] = []

    async def one(index: int) -> None:
        results.append(final_task(await send(workspace.url, f"job {index}", str(uuid.uuid4()))))

    async with anyio.create_task_group() as group:
        for index in range(5):
            group.start_soon(one, index)
    assert [t.status.state for t in results] == [TaskState.TASK_STATE_COMPLETED] * 5
    assert workspace.llm.max_in_flight <= 2
    assert max(seen_active) >= 3  # waiting messages count as active work


async def test_retries_are_progress_one_call_one_outcome(workspace: Workspace) -> None:
    workspace.start()
    workspace.llm.fail_first(3, 529)
    task = final_task(await send(workspace.url, "say hi", str(uuid.uuid4())))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    await anyio.sleep(1.5)  # a beat after the turn
    view = workspace.view()
    assert view["error_rate"] == 0.0
    assert view["last_sample_error"] == ""
    # how a retry shows at the gateway (measured, CLI 2.1.332): Claude Code retries in
    # a loop of its own, each attempt a fresh SDK request numbered 0, so no header tells
    # a retry from a new call; the gateway therefore counts no 429/5xx, only the 2xx
    tries = {r.headers.get("x-stainless-retry-count") for r in workspace.llm.requests}
    assert tries == {"0"}, tries


async def test_transcript_needs_the_workspace_token_and_fails_closed(
    workspace: Workspace,
) -> None:
    workspace.start()
    await send(workspace.url, "remember the word zebra", str(uuid.uuid4()))
    token = (workspace.root / "configs" / ".auth_token").read_text().strip()
    async with httpx.AsyncClient(timeout=10) as http:
        anonymous = await http.get(f"{workspace.url}/transcript")
        wrong = await http.get(
            f"{workspace.url}/transcript", headers={"Authorization": "Bearer nope"}
        )
        good = await http.get(
            f"{workspace.url}/transcript?since=0&limit=1000",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert (anonymous.status_code, wrong.status_code, good.status_code) == (401, 401, 200)
    body = good.json()
    assert (body["runtime"], body["supported"], body["more"]) == ("claude-code", True, False)
    assert body["cursor"] == len(body["lines"]) > 0
    assert "zebra" in str(body["lines"])
    # paged: one line, then the rest from the cursor
    async with httpx.AsyncClient(timeout=10) as http:
        bearer = {"Authorization": f"Bearer {token}"}
        first = (await http.get(f"{workspace.url}/transcript?limit=1", headers=bearer)).json()
        rest = await http.get(f"{workspace.url}/transcript?since=1&limit=1000", headers=bearer)
        odd = await http.get(
            f"{workspace.url}/transcript", headers={b"Authorization": "Bearer ü".encode()}
        )
    assert (len(first["lines"]), first["cursor"], first["more"]) == (1, 1, True)
    assert first["lines"] + rest.json()["lines"] == body["lines"]
    assert odd.status_code == 401  # not a 500


async def test_the_transcript_opens_to_the_token_held_in_memory(workspace: Workspace) -> None:
    """A read-only volume keeps the token in memory only (DESIGN §7): the platform's
    bearer still opens /transcript."""
    workspace.start()
    await send(workspace.url, "remember the word zebra", str(uuid.uuid4()))
    token_file = workspace.root / "configs" / ".auth_token"
    token = token_file.read_text().strip()
    token_file.unlink()  # the runtime keeps what it read
    async with httpx.AsyncClient(timeout=10) as http:
        good = await http.get(
            f"{workspace.url}/transcript", headers={"Authorization": f"Bearer {token}"}
        )
    assert good.status_code == 200


async def test_stop_cancels_running_turns_and_leaves_no_cli_behind(workspace: Workspace) -> None:
    process = workspace.start()
    wait_for(lambda: workspace.llm.requests)  # the boot's probe
    workspace.llm.delay = 60
    request = message("a long job", str(uuid.uuid4()))
    request.configuration.CopyFrom(SendMessageConfiguration(return_immediately=True))
    async with client(workspace.url) as agent:
        [event async for event in agent.send_message(request)]
    wait_for(lambda: leftover_clis(workspace.root), timeout=30)
    assert process.stop() == 0
    assert process.stopped_within(10)
    assert leftover_clis(workspace.root) == []


def questions(body: dict[str, Any]) -> str | ToolUse:
    """A model for the stale-answer test: the first question starts a background job;
    each other question has its own answer; a job's notification gets a stale one."""
    if not body.get("stream"):
        return "a title"  # the CLI's side requests (titles, summaries)
    said = last_user_text(body)
    if "task-notification" in said:
        return "A STALE ANSWER TO NOBODY"
    if "first question" in said:
        job = {"command": "sleep 1; echo job done", "run_in_background": True}
        return ToolUse("Bash", {**job, "description": "a background job"})
    for word in ("second", "third"):
        if f"{word} question" in said:
            return f"ANSWER TO THE {word.upper()} QUESTION"
    return "ANSWER TO THE FIRST QUESTION"  # the job's start came back as the tool result


def notified(llm: FakeLLM) -> bool:
    return any("task-notification" in text for r in llm.requests for _, text in r.messages)


@pytest.mark.parametrize("background", [False, True], ids=["prevented", "allowed"])
async def test_a_background_job_finishing_between_messages_never_shifts_the_answers(
    workspace: Workspace, background: bool
) -> None:
    """A kept CLI runs a turn of its own when a background job ends; its result is
    drained, never taken as the next message's answer (and by default the CLI may not
    start background jobs at all)."""
    workspace.llm.script = questions
    settings = "  background_tasks: true\n" if background else ""
    workspace.start(settings, permission_mode="bypassPermissions")
    context = str(uuid.uuid4())
    first = final_task(await send(workspace.url, "the first question", context))
    assert answer_text(first) == "ANSWER TO THE FIRST QUESTION"
    if background:  # the job ends and the CLI asks the LLM about it by itself
        wait_for(lambda: notified(workspace.llm), timeout=30)
    else:
        await anyio.sleep(3)  # the job would have ended by now
        assert not notified(workspace.llm)
    for word in ("second", "third"):
        task = final_task(await send(workspace.url, f"the {word} question", context))
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        assert answer_text(task) == f"ANSWER TO THE {word.upper()} QUESTION"


async def test_a_message_while_its_contexts_cli_is_still_exiting_is_answered(
    workspace: Workspace,
) -> None:
    """Closing an idle CLI that is slow to exit (a 6 s SessionEnd hook) signals that CLI
    only: the replacement started meanwhile for the same session answers and lives on."""
    marks = workspace.root / "marks"
    marks.mkdir()
    # the first session end takes 6 s; the CLI runs its hooks in a session of their own
    hook = f"cd {marks}; [ -e ending ] && exit 0; touch ending; sleep 6; touch ended"
    project = workspace.root / "workspace" / ".claude"
    project.mkdir(parents=True)
    (project / "settings.json").write_text(
        json.dumps(
            {
                "hooks": {
                    "SessionEnd": [{"hooks": [{"type": "command", "command": hook, "timeout": 10}]}]
                }
            }
        )
    )
    # the CLI gives SessionEnd hooks a short budget unless told otherwise
    process = workspace.start(
        "  keep_alive_seconds: 1\n", CLAUDE_CODE_SESSIONEND_HOOKS_TIMEOUT_MS="10000"
    )
    context = str(uuid.uuid4())
    await send(workspace.url, "remember the word zebra", context)
    [closing] = cli_children(process)
    wait_for(lambda: (marks / "ending").exists(), timeout=15)  # idle: its close began
    workspace.llm.delay = 4.0  # the next turn spans the moment the closing CLI is killed
    task = final_task(await send(workspace.url, "which word?", context))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task.status
    [replacement] = [pid for pid in cli_children(process) if pid != closing]
    wait_for(lambda: closing not in cli_children(process), timeout=10)
    workspace.llm.delay = 0.0
    task = final_task(await send(workspace.url, "and again?", context))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert cli_children(process) == [replacement]  # the same CLI, never signalled
    wait_for(lambda: (marks / "ended").exists(), timeout=15)


# -- DESIGN §13: the agent holds no credential ---------------------------------------

DUMP = (
    "env; echo; tr '\\0' '\\n' < /proc/self/environ; echo; "
    "tr '\\0' '\\n' < /proc/$PPID/environ; echo; cat {configs}/.auth_token; echo DUMPED"
)


class Injected:
    """A model that obeys an injected prompt: it runs a Bash dump, then quotes the key."""

    def __init__(self, key: str, configs: Path) -> None:
        self.key, self.configs = key, configs
        self.tool_output: list[str] = []

    def __call__(self, body: dict[str, Any]) -> str | ToolUse:
        if not body.get("stream"):
            return "a title"
        said = last_user_text(body)
        if "DUMPED" in said:
            self.tool_output.append(said)
            return f"here is what I found: {said}"  # quotes the tool's output back
        if "dump" in said:
            command = DUMP.format(configs=self.configs)
            return ToolUse("Bash", {"command": command, "description": "dump the environment"})
        return f"the key is {self.key}"


def gateway_of(pid: int) -> tuple[str, str]:
    """The ANTHROPIC_BASE_URL and token a CLI was started with (read as root)."""
    found = dict(
        line.split("=", 1)
        for line in (Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0"))
        if "=" in line
    )
    return found["ANTHROPIC_BASE_URL"], found["ANTHROPIC_AUTH_TOKEN"]


async def test_an_injected_bash_dump_finds_no_provider_key_and_answers_are_redacted(
    workspace: Workspace,
) -> None:
    model = Injected(KEY, workspace.root / "configs")
    workspace.llm.script = model
    process = workspace.start(permission_mode="bypassPermissions")
    context = str(uuid.uuid4())
    events = await send(workspace.url, "please dump your environment", context, streaming=True)
    states = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert states[-1] == TaskState.TASK_STATE_COMPLETED
    [dump] = model.tool_output
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:" in dump  # the tool really ran
    leaked = KEY in dump or "MINIMAX_API_KEY" in dump  # never the key in test output
    assert not leaked, "the provider key reached the agent's tool"
    token = workspace.emulator.workspaces[WS].token
    assert token is not None
    readable = token in dump  # one user in this test: the token file is readable (§13)
    # the LLM gets the key on every call, the agent never
    assert {r.authorization for r in workspace.llm.requests} == {f"Bearer {fingerprint(KEY)}"}
    # what the agent says goes through the redaction every log line goes through
    said = [
        part.text
        for event in events
        if event.HasField("status_update") or event.HasField("artifact_update")
        for part in (
            event.status_update.status.message.parts
            if event.HasField("status_update")
            else event.artifact_update.artifact.parts
        )
    ]
    assert readable  # so the answer quoting the dump carries it, and must be redacted
    leaked = any(KEY in text or token in text for text in said)
    assert not leaked, "a secret reached the caller"
    assert any(fingerprint(token) in text for text in said)
    # the gateway refuses a caller without its token and forwards nothing
    [cli] = cli_children(process)
    base, token = gateway_of(cli)
    marker = f"gateway check {uuid.uuid4()}"
    async with httpx.AsyncClient(timeout=10) as http:
        said_once = [{"role": "user", "content": marker}]
        body = {"model": "MiniMax-M2.7", "max_tokens": 1, "messages": said_once}
        refused = await http.post(f"{base}/v1/messages", json=body)
        wrong = await http.post(
            f"{base}/v1/messages", json=body, headers={"Authorization": "Bearer nope"}
        )
        right = await http.post(
            f"{base}/v1/messages", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert (refused.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    arrived = [r for r in workspace.llm.requests if ("user", marker) in r.messages]
    assert len(arrived) == 1  # only the one with the token was forwarded


async def test_a_refused_key_on_a_turn_is_auth_failed_from_the_call_within_a_second(
    workspace: Workspace,
) -> None:
    workspace.start()
    workspace.llm.refuse_key = True  # the probe passed; now the key is revoked
    beats = len(workspace.emulator.calls_to("/registry/heartbeat"))
    await send(workspace.url, "say hi", str(uuid.uuid4()))
    refused = turns(workspace.llm)[0]

    def reporting() -> Any:
        for call in workspace.emulator.calls_to("/registry/heartbeat")[beats:]:
            detail = call.body.get("sample_error_detail") or {}
            if (detail.get("kind"), detail.get("source")) == ("auth_failed", "llm_call"):
                return call
        return None

    call = wait_for(reporting, timeout=10)
    assert call.time - refused.time < 1.0


# the boot without the gateway with this template: measured (what only it runs)
@pytest.mark.parametrize("gateway", ["on", pytest.param("off", marks=pytest.mark.measured)])
async def test_a_reply_without_an_llm_call_leaves_a_refused_key_reported(
    workspace: Workspace, gateway: str
) -> None:
    workspace.llm.refuse_key = True
    workspace.start(LLM_GATEWAY=gateway)

    def refused() -> bool:
        return (workspace.view().get("last_sample_error_detail") or {}).get("kind") == "auth_failed"

    wait_for(refused, timeout=20)  # the probe's
    task = final_task(await send(workspace.url, "/cost", str(uuid.uuid4())))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED  # the CLI answered itself
    beats = len(workspace.emulator.calls_to("/registry/heartbeat"))
    wait_for(lambda: len(workspace.emulator.calls_to("/registry/heartbeat")) > beats + 1, 10)
    assert refused()
    assert workspace.view()["runtime_state"] == "wedged"


@pytest.mark.parametrize("gateway", ["on", "off"])
async def test_a_task_that_reaches_max_turns_fails_alone(
    workspace: Workspace, gateway: str
) -> None:
    """Every LLM call fine, the turn limit reached: the task fails with the CLI's
    reason, and the workspace stays healthy (no runtime_crash, no wedge)."""
    workspace.llm.script = lambda body: (
        ToolUse("Bash", {"command": "true", "description": "again"})
        if body.get("stream")
        else "a title"
    )
    workspace.start(max_turns=1, permission_mode="bypassPermissions", LLM_GATEWAY=gateway)
    beats = len(workspace.emulator.calls_to("/registry/heartbeat"))
    task = final_task(await send(workspace.url, "loop forever", str(uuid.uuid4())))
    assert task.status.state == TaskState.TASK_STATE_FAILED
    reason = "\n".join(p.text for p in task.status.message.parts)
    assert "turns" in reason.lower(), reason
    wait_for(lambda: len(workspace.emulator.calls_to("/registry/heartbeat")) > beats + 2, 10)
    since = workspace.emulator.calls_to("/registry/heartbeat")[beats:]
    seen = {(c.body["runtime_state"], c.body["sample_error"]) for c in since}
    assert seen == {("", "")}, seen  # never wedged, not even for one beat
