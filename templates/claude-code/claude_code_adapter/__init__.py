"""The claude-code template: Claude Code through claude-agent-sdk, served over A2A.

What a caller gets (DESIGN §12): an A2A ``contextId`` is one Claude Code
session, resumed on every later message and stored on a volume; every
message is a Task (submitted, working, then completed with the answer as an
artifact, failed with the redacted reason, or canceled); streaming status
updates while the CLI works; ``CancelTask`` interrupts the turn; turns of
one context run in order, at most ``max_concurrent_turns`` at the LLM at
once; ``GET /transcript`` for the platform, bearer-protected.

A context keeps one live Claude Code CLI (a ``ClaudeSDKClient``) between its
turns, so a later message skips the CLI's start (~0.5 s) and costs tens of
milliseconds before the LLM request. A live CLI is closed when it has been
idle ``keep_alive_seconds``, when ``max_live_sessions`` are open and another
context needs one (least recently used first), when the provider plan
changed since it started (it holds the old environment), and whenever a turn
did not end with the CLI's result (a refused key, a timeout, a crash): only a
CLI that is idle and waiting for input is kept. Cancel interrupts the turn
(the CLI stops its LLM request and stays for the next message); a CLI that
does not settle within a grace is killed.

One LLM call is one outcome: the CLI's ``api_retry`` events are progress,
except a 401/403, which ends the turn at once (a retry cannot fix a refused
key). Nothing here may leave a CLI process behind: ``stop()`` closes them.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import signal
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import anyio
from a2a.client.card_resolver import parse_agent_card
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import TaskState
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolUseBlock,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import runtime_adapter.telemetry as telemetry
from runtime_adapter import AdapterContext, BaseAdapter, ConfigError, build_card
from runtime_adapter.volume import read_token

from .sessions import SessionBook

__all__ = ["ClaudeCodeAdapter", "TurnFailed"]

log = logging.getLogger("runtime_adapter.templates.claude_code")

# statuses a retry cannot fix: end the turn at once
_FATAL = {401: "auth_failed", 403: "permission_denied"}
_TRANSCRIPT_LIMIT = 1000
_KILL_GRACE = 2.0
_INTERRUPT_GRACE = 1.5  # an interrupted CLI answers with its result within milliseconds


class TurnFailed(Exception):
    """An agent turn ended without an answer; ``status`` is the LLM's HTTP status if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Settings:
    """``runtime_config`` of the template, validated (a bad value is a config error)."""

    max_turns: int = 30
    turn_timeout: float = 900.0
    max_concurrent_turns: int = 4
    permission_mode: str | None = None
    system_prompt_file: str = "system-prompt.md"
    sessions_dir: str | None = None
    keep_alive_seconds: float = 600.0  # 0: a CLI per turn
    max_live_sessions: int = 4  # never below max_concurrent_turns


@dataclass
class Live:
    """A Claude Code CLI kept running for one context between its turns."""

    context_id: str
    session_id: str
    client: ClaudeSDKClient
    plan: object  # the env plan it started under: it holds that environment
    busy: bool = False
    fresh: bool = True  # started for the current turn
    idle_since: float = field(default_factory=time.monotonic)


@dataclass
class Turn:
    """One running A2A task: what cancel needs to stop it."""

    task_id: str
    context_id: str
    session_id: str = ""
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    cancelled: bool = False
    done: anyio.Event = field(default_factory=anyio.Event)
    usage: dict[str, Any] = field(default_factory=dict)  # the CLI result's token counts
    stop_reason: str | None = None


def _number(
    raw: dict[str, Any], key: str, default: float, ctx: AdapterContext, *, integer: bool
) -> float:
    value = raw.get(key)
    if value is None:
        return default
    try:
        number = int(value) if integer else float(value)
        if isinstance(value, bool) or number <= 0:
            raise ValueError
    except (TypeError, ValueError):
        config = ctx.config
        line, column = config.position("runtime_config", key)
        kind = "a whole number" if integer else "a number"
        raise ConfigError(
            f"runtime_config.{key} in {config.file or 'config.yaml'} must be {kind} above 0",
            hint=f"set runtime_config.{key} to {kind} such as {default:g}, or remove it",
            file=config.file,
            line=line,
            column=column,
            field=f"runtime_config.{key}",
        ) from None
    return number


def _settings(ctx: AdapterContext) -> Settings:
    raw = dict(ctx.config.runtime_config.model_extra or {})
    concurrent = int(_number(raw, "max_concurrent_turns", 4, ctx, integer=True))
    keep_alive = 600.0
    if raw.get("keep_alive_seconds") in (0, "0"):
        keep_alive = 0.0
    else:
        keep_alive = float(_number(raw, "keep_alive_seconds", 600.0, ctx, integer=False))
    live = int(_number(raw, "max_live_sessions", concurrent, ctx, integer=True))
    return Settings(
        max_turns=int(_number(raw, "max_turns", 30, ctx, integer=True)),
        turn_timeout=float(_number(raw, "turn_timeout", 900.0, ctx, integer=False)),
        max_concurrent_turns=concurrent,
        permission_mode=str(raw["permission_mode"]) if raw.get("permission_mode") else None,
        system_prompt_file=str(raw.get("system_prompt_file") or "system-prompt.md"),
        sessions_dir=str(raw["sessions_dir"]) if raw.get("sessions_dir") else None,
        keep_alive_seconds=keep_alive,
        # every running turn has its CLI: fewer live CLIs than turns would thrash
        max_live_sessions=max(live, concurrent),
    )


def _sessions_root(ctx: AdapterContext, settings: Settings) -> Path:
    """Where sessions live: ``runtime_config.sessions_dir``, else the workspace volume,
    else the config volume; never only ``$HOME``, which a re-created container loses."""
    if settings.sessions_dir:
        given = Path(settings.sessions_dir)
        return given if given.is_absolute() else ctx.settings.config_path / given
    workspace = Path(os.environ.get("WORKSPACE_DIR", "/workspace"))
    if workspace.is_dir() and os.access(workspace, os.W_OK):
        return workspace / ".claude-code"
    return ctx.settings.config_path / ".claude-code"


def _cli_processes(marker: str) -> list[int]:
    """Our child processes whose command line carries ``marker`` (a session id)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == me and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


async def _kill(marker: str) -> None:
    """SIGTERM the CLI processes of a session, SIGKILL what is left after a grace."""
    pids = await anyio.to_thread.run_sync(_cli_processes, marker)
    for pid in pids:
        with _suppress_lookup():
            os.kill(pid, signal.SIGTERM)
    with anyio.move_on_after(_KILL_GRACE):
        # the processes are not ours to wait on (the SDK reaps them): poll /proc
        while await anyio.to_thread.run_sync(_cli_processes, marker):  # noqa: ASYNC110
            await anyio.sleep(0.05)
    for pid in await anyio.to_thread.run_sync(_cli_processes, marker):
        with _suppress_lookup():
            os.kill(pid, signal.SIGKILL)


def _responses(client: ClaudeSDKClient) -> AsyncGenerator[Any, None]:
    """The messages of the current turn, up to and including its result (closable)."""
    return cast("AsyncGenerator[Any, None]", client.receive_response())


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, trace: object) -> bool:
        return isinstance(value, ProcessLookupError)


class ClaudeCodeAdapter(BaseAdapter):
    """Claude Code over A2A: conversations, tasks, streaming, cancel, transcript."""

    name = "claude-code"
    streaming = True
    stop_timeout = 5.0

    def __init__(self) -> None:
        self.ctx: AdapterContext | None = None
        self.settings = Settings()
        self.options: dict[str, Any] = {}
        self.book: SessionBook | None = None
        self.limiter = anyio.CapacityLimiter(4)
        self.locks: dict[str, anyio.Lock] = {}
        self.turns: dict[str, Turn] = {}
        self.live: dict[str, Live] = {}  # least recently used first
        self.stopped = False

    async def start(self, ctx: AdapterContext) -> None:
        self.ctx = ctx
        self.settings = _settings(ctx)
        self.limiter = anyio.CapacityLimiter(self.settings.max_concurrent_turns)
        self.options = await anyio.to_thread.run_sync(self._options, ctx)
        root = _sessions_root(ctx, self.settings)
        self.book = await anyio.to_thread.run_sync(SessionBook, root)
        if self.settings.keep_alive_seconds and ctx.spawn is not None:
            ctx.start_soon(self._close_idle)
        log.info("claude-code sessions in %s", root)

    def _options(self, ctx: AdapterContext) -> dict[str, Any]:
        prompt_file = ctx.settings.config_path / self.settings.system_prompt_file
        workdir = Path(os.environ.get("WORKSPACE_DIR", "/workspace"))
        return {
            "cwd": str(workdir if workdir.is_dir() else ctx.settings.config_path),
            "max_turns": self.settings.max_turns,
            "permission_mode": self.settings.permission_mode,
            "system_prompt": prompt_file.read_text() if prompt_file.is_file() else None,
            "model": ctx.plan.model,
        }

    def routes(self, ctx: AdapterContext) -> list[BaseRoute]:
        card = build_card(
            ctx.config, "http://localhost/", default_name=self.name, streaming=self.streaming
        )
        handler = DefaultRequestHandler(
            agent_executor=_Executor(self),
            task_store=InMemoryTaskStore(),
            agent_card=parse_agent_card(card),
        )
        return [
            Route("/transcript", self._transcript, methods=["GET"]),
            *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True),
        ]

    async def stop(self) -> None:
        """Cancel every running turn and close every live CLI; none outlives the runtime."""
        self.stopped = True
        for turn in list(self.turns.values()):
            turn.cancelled = True
            turn.scope.cancel()
        with anyio.move_on_after(_INTERRUPT_GRACE + 0.5):  # each interrupts its CLI
            for turn in list(self.turns.values()):
                await turn.done.wait()
        async with anyio.create_task_group() as group:
            for live in list(self.live.values()):
                group.start_soon(partial(self._close, live, grace=1.0))

    # -- live CLIs --------------------------------------------------------------------

    async def _open(self, ctx: AdapterContext, book: SessionBook, context_id: str) -> Live:
        """The context's live CLI: the kept one, or a new one resuming its session."""
        live = self.live.pop(context_id, None)
        if live is not None and live.plan is ctx.plan:
            self.live[context_id] = live  # most recently used
            live.fresh = False
            return live
        if live is not None:  # started under an earlier provider plan: its env is stale
            log.info("context %s: provider plan changed; restarting its CLI", context_id)
            await self._close(live)
        await self._make_room()
        session = book.session_for(context_id)
        exists = await anyio.to_thread.run_sync(book.path, session) is not None
        if not exists and book.known(context_id):
            log.warning(
                "context %s: the CLI no longer has session %s; starting afresh",
                context_id,
                session,
            )
            session = await anyio.to_thread.run_sync(book.start_afresh, context_id)
        elif not exists:
            await anyio.to_thread.run_sync(book.remember, context_id, session)
        where: dict[str, Any] = {"resume": session} if exists else {"session_id": session}
        options = ClaudeAgentOptions(
            **{k: v for k, v in self.options.items() if v is not None},
            **where,
            env={"CLAUDE_CONFIG_DIR": str(book.root)},
            stderr=lambda line: log.debug("claude: %s", ctx.redact(line)),
        )
        live = Live(context_id, session, ClaudeSDKClient(options), ctx.plan, busy=True)
        await live.client.connect()
        self.live[context_id] = live
        return live

    async def _make_room(self) -> None:
        """Close the least recently used idle CLIs beyond ``max_live_sessions`` - 1: in
        the background (the new context's turn need not wait), else here."""
        idle = [live for live in self.live.values() if not live.busy]
        while idle and len(self.live) >= self.settings.max_live_sessions:
            live = idle.pop(0)
            del self.live[live.context_id]
            if self.ctx is not None and self.ctx.spawn is not None:
                self.ctx.start_soon(partial(self._close, live))
            else:
                await self._close(live)

    async def _close(self, live: Live, *, kill: bool = False, grace: float = 3.0) -> None:
        """End a live CLI: its stdin closed, it saves the session and exits; killed
        if it has not within ``grace``, or at once with ``kill`` (a CLI still working
        on a turn that did not settle)."""
        if self.live.get(live.context_id) is live:
            del self.live[live.context_id]
        closed = anyio.Event()

        async def disconnect() -> None:
            try:
                with suppress(Exception):
                    await live.client.disconnect()
            finally:
                closed.set()

        # shielded: this runs on cancellation paths; bounded by the kill below (the
        # SDK's own close waits 5 s on a CLI that ignores end of input)
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                group.start_soon(disconnect)
                with anyio.move_on_after(0 if kill else grace):
                    await closed.wait()
                if not closed.is_set():
                    await _kill(live.session_id)

    async def _close_idle(self) -> None:
        """Close CLIs idle for ``keep_alive_seconds``."""
        keep = self.settings.keep_alive_seconds
        while not self.stopped:  # a reboot's new adapter has its own
            await anyio.sleep(min(max(keep / 4, 0.25), 15.0))
            now = time.monotonic()
            for live in list(self.live.values()):
                if not live.busy and now - live.idle_since >= keep:
                    log.debug("context %s: CLI idle %.0f s, closing", live.context_id, keep)
                    await self._close(live)

    async def _interrupt(self, live: Live) -> bool:
        """Interrupt the turn the CLI is working on; True once it has settled (its
        result arrived: it made no further LLM call and waits for the next message)."""
        with anyio.move_on_after(_INTERRUPT_GRACE):
            try:
                await live.client.interrupt()
                async with aclosing(_responses(live.client)) as stream:
                    async for message in stream:
                        if isinstance(message, ResultMessage):
                            return True
            except ClaudeSDKError:
                return False
        return False

    # -- one turn ---------------------------------------------------------------------

    async def turn(self, turn: Turn, prompt: str, progress: Progress) -> str:
        """One agent turn in ``turn``'s session; the answer text, or ``TurnFailed``."""
        ctx, book = self.ctx, self.book
        if ctx is None or book is None:
            raise TurnFailed("the adapter has not started")
        texts: list[str] = []
        live: Live | None = None
        settled = False  # the CLI's result arrived: it is idle and may be kept
        try:
            with anyio.fail_after(self.settings.turn_timeout):
                live = await self._open(ctx, book, turn.context_id)
                while True:
                    live.busy = True
                    turn.session_id = live.session_id
                    heard = False  # anything of this turn from the CLI
                    try:
                        await live.client.query(prompt)
                        async with aclosing(_responses(live.client)) as stream:
                            async for message in stream:
                                heard = True
                                if isinstance(message, ResultMessage):
                                    settled = True
                                answer = await self._handle(ctx, message, texts, progress, turn)
                                if answer is not None:
                                    return answer
                        break
                    except ClaudeSDKError:
                        if live.fresh or heard:
                            raise
                    # the kept CLI died while idle (killed, out of memory): its failure shows
                    # at the write or as the first thing read; start another, once
                    log.warning(
                        "context %s: its CLI had exited; starting it again", turn.context_id
                    )
                    await self._close(live, kill=True)
                    live = await self._open(ctx, book, turn.context_id)
        except anyio.get_cancelled_exc_class():
            if live is not None and not settled:
                with anyio.CancelScope(shield=True):
                    settled = await self._interrupt(live)
            raise
        except TimeoutError:
            ctx.report_error(TimeoutError(f"no answer within {self.settings.turn_timeout:.0f} s"))
            raise TurnFailed(
                f"the agent did not answer within {self.settings.turn_timeout:.0f} s"
            ) from None
        except ClaudeSDKError as error:
            ctx.report_error(error)
            raise TurnFailed(f"Claude Code failed: {ctx.redact(str(error))[:300]}") from None
        finally:
            if live is not None:
                live.busy, live.idle_since = False, time.monotonic()
                if not settled or not self.settings.keep_alive_seconds:
                    # still working (a refused key retried for minutes, a timeout) or not
                    # kept: a CLI left running after its turn is a leak
                    await self._close(live, kill=not settled)
        if texts:
            ctx.report_success()
            return "\n".join(texts)
        raise TurnFailed("Claude Code ended the turn without an answer")

    async def _handle(
        self,
        ctx: AdapterContext,
        message: Any,
        texts: list[str],
        progress: Progress,
        turn: Turn,
    ) -> str | None:
        if isinstance(message, SystemMessage) and message.subtype == "api_retry":
            # a retry is progress, not an outcome; only a refused key ends the turn
            status = message.data.get("error_status")
            error = str(message.data.get("error") or "error")
            if isinstance(status, int) and status in _FATAL:
                ctx.report_status(status, error)
                raise TurnFailed(
                    f"{_FATAL[status]}: the LLM refused the credential ({status} {error})", status
                )
            await progress(f"the LLM is busy ({status}); Claude Code retries")
        elif isinstance(message, AssistantMessage):
            for block in message.content:
                if isinstance(block, TextBlock) and block.text.strip():
                    texts.append(block.text)
                    await progress(block.text)
                elif isinstance(block, ToolUseBlock):
                    await progress(f"using {block.name}")
        elif isinstance(message, ResultMessage):
            turn.usage = dict(message.usage or {})
            turn.stop_reason = message.stop_reason
            if message.is_error:
                reason = _result_reason(message)
                status = message.api_error_status
                if status is not None:
                    ctx.report_status(status, reason)
                else:
                    ctx.report_error(RuntimeError(reason))
                raise TurnFailed(ctx.redact(reason)[:500], status)
            ctx.report_success()
            return message.result or "\n".join(texts)
        return None

    # -- transcript -------------------------------------------------------------------

    async def _transcript(self, request: Request) -> Response:
        ctx, book = self.ctx, self.book
        if ctx is None or book is None:
            return JSONResponse({"error": "not started"}, status_code=503)
        token = await anyio.to_thread.run_sync(read_token, ctx.settings.config_path)
        given = request.headers.get("authorization", "")
        scheme, _, presented = given.partition(" ")
        if not token or scheme.lower() != "bearer" or not hmac.compare_digest(presented, token):
            # fail closed: no token known means nobody may read the conversation
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            since = max(0, int(request.query_params.get("since", "0")))
            limit = min(_TRANSCRIPT_LIMIT, max(1, int(request.query_params.get("limit", "100"))))
        except ValueError:
            return JSONResponse({"error": "since and limit are integers"}, status_code=400)
        path = await anyio.to_thread.run_sync(book.latest)
        lines: list[Any] = []
        total = 0
        if path is not None:
            raw = await anyio.to_thread.run_sync(path.read_text)
            entries = raw.splitlines()
            total = len(entries)
            for line in entries[since : since + limit]:
                try:
                    lines.append(json.loads(ctx.redact(line)))
                except ValueError:
                    continue
        cursor = min(total, since + limit)
        return JSONResponse(
            {
                "runtime": self.name,
                "supported": True,
                "lines": lines,
                "cursor": cursor,
                "more": cursor < total,
                "source": path.name if path is not None else None,
            }
        )


def _result_reason(message: ResultMessage) -> str:
    """The error text of a failed result, from the result itself, never its subtype name."""
    if message.errors:
        return "; ".join(str(e) for e in message.errors)
    if message.result:
        return str(message.result)
    status = message.api_error_status
    return f"the turn failed (HTTP {status})" if status else "the turn failed"


class Progress:
    """Sends ``working`` status updates as the CLI works (streaming callers see them)."""

    def __init__(self, updater: TaskUpdater, task_id: str, context_id: str) -> None:
        self.updater, self.task_id, self.context_id = updater, task_id, context_id

    async def __call__(self, text: str) -> None:
        await self.updater.update_status(
            TaskState.TASK_STATE_WORKING,
            new_text_message(text[:2000], context_id=self.context_id, task_id=self.task_id),
        )


class _Executor(AgentExecutor):
    def __init__(self, adapter: ClaudeCodeAdapter) -> None:
        self.adapter = adapter

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        adapter, ctx = self.adapter, self.adapter.ctx
        assert ctx is not None
        assert context.message is not None
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        turn = Turn(task.id, task.context_id)
        adapter.turns[task.id] = turn
        prompt = context.get_user_input()
        started = time.perf_counter()
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": adapter.name,
            "gen_ai.provider.name": ctx.plan.provider,
            "gen_ai.request.model": ctx.plan.model,
            "gen_ai.conversation.id": task.context_id,
            "a2a.task.id": task.id,
        }
        # the current context carries a caller's traceparent (the server attached it)
        with telemetry.span(f"invoke_agent {adapter.name}", **attributes) as current:
            try:
                await self._run(context, task, turn, updater, prompt, current)
            finally:
                self._account(current, turn, time.perf_counter() - started, attributes)

    @staticmethod
    def _account(current: Any, turn: Turn, seconds: float, attributes: dict[str, Any]) -> None:
        tokens = {
            "input": turn.usage.get("input_tokens"),
            "output": turn.usage.get("output_tokens"),
        }
        telemetry.set_attributes(
            current,
            **{
                "gen_ai.usage.input_tokens": tokens["input"],
                "gen_ai.usage.output_tokens": tokens["output"],
                "gen_ai.response.finish_reasons": [turn.stop_reason] if turn.stop_reason else None,
            },
        )
        base = {k: attributes[k] for k in ("gen_ai.operation.name", "gen_ai.provider.name")}
        telemetry.observe("gen_ai.client.operation.duration", seconds, **base)
        for kind, value in tokens.items():
            if isinstance(value, int):
                telemetry.observe(
                    "gen_ai.client.token.usage", value, **base, **{"gen_ai.token.type": kind}
                )

    async def _run(
        self,
        context: RequestContext,
        task: Any,
        turn: Turn,
        updater: TaskUpdater,
        prompt: str,
        current: Any,
    ) -> None:
        adapter, ctx = self.adapter, self.adapter.ctx
        assert ctx is not None
        text = ""
        try:
            with ctx.task(prompt[:80] or "message"):
                lock = adapter.locks.setdefault(task.context_id, anyio.Lock())
                with turn.scope:
                    async with lock, adapter.limiter:
                        await updater.start_work()
                        text = await adapter.turn(
                            turn, prompt, Progress(updater, task.id, task.context_id)
                        )
                if turn.cancelled or turn.scope.cancel_called:
                    await updater.cancel(self._say("the turn was canceled", task))
                    return
                await updater.add_artifact([new_text_part(text)], name="answer")
                await updater.complete(self._say(text, task))
        except TurnFailed as failure:
            telemetry.record_exception(current, failure)
            await updater.failed(self._say(f"failed: {ctx.redact(str(failure))}", task))
        finally:
            turn.done.set()
            adapter.turns.pop(task.id, None)

    @staticmethod
    def _say(text: str, task: Any) -> Any:
        return new_text_message(text, context_id=task.context_id, task_id=task.id)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Stop the turn: the turn interrupts its CLI (or kills one that does not
        settle) and ``execute`` publishes ``canceled``."""
        turn = self.adapter.turns.get(context.task_id or "")
        if turn is None:
            return
        turn.cancelled = True
        turn.scope.cancel()
        with anyio.move_on_after(4):
            await turn.done.wait()
        if not turn.done.is_set() and turn.session_id:
            await _kill(turn.session_id)
