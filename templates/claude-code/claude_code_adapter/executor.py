"""The A2A side: every message is a task, run as one turn of its context.

Turns of one context run one at a time, in order (``ContextLocks``); turns
of different contexts side by side up to ``max_concurrent_turns``. A lock
exists only while a turn of its context holds or waits for it, so nothing
here grows with the number of contexts ever seen.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import anyio
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import TaskState

import runtime_adapter.telemetry as telemetry

from .turn import Turn, TurnFailed

if TYPE_CHECKING:
    from runtime_adapter import AdapterContext

    from .tasks import TaskDatabase

__all__ = ["ContextLocks", "Executor", "Progress", "Turns"]

_CANCEL_GRACE = 4.0  # a cancelled turn that has not ended by then has its CLI killed


@dataclass
class _Entry:
    lock: anyio.Lock
    users: int = 0


class ContextLocks:
    """One lock per context, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, context_id: str) -> AsyncIterator[None]:
        entry = self._entries.setdefault(context_id, _Entry(anyio.Lock()))
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._entries[context_id]


class Progress:
    """Sends ``working`` status updates as the CLI works (streaming callers see them),
    redacted like every log line: the agent may quote anything it found."""

    def __init__(
        self, updater: TaskUpdater, task_id: str, context_id: str, redact: Callable[[str], str]
    ) -> None:
        self.updater, self.task_id, self.context_id = updater, task_id, context_id
        self.redact = redact

    async def __call__(self, text: str) -> None:
        said = self.redact(text)[:2000]
        await self.updater.update_status(
            TaskState.TASK_STATE_WORKING,
            new_text_message(said, context_id=self.context_id, task_id=self.task_id),
        )


class Turns(Protocol):
    """What the executor runs a turn with: the turn entry point and what bounds it.
    The adapter is one (it owns the pool and the limits); the executor never imports it."""

    name: ClassVar[str]
    ctx: AdapterContext | None
    database: TaskDatabase | None
    turns: dict[str, Turn]  # the running turns by task id, for cancel
    locks: ContextLocks
    limiter: anyio.CapacityLimiter

    async def run_turn(self, turn: Turn, prompt: str, progress: Progress) -> str: ...


class Executor(AgentExecutor):
    """a2a-sdk's executor: one message is one task and one turn of ``adapter``."""

    def __init__(self, adapter: Turns) -> None:
        self.adapter = adapter

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        adapter, ctx = self.adapter, self.adapter.ctx
        assert ctx is not None
        assert context.message is not None
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
            if adapter.database is not None:
                adapter.database.created += 1  # retention prunes sooner after many
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
                await self._run(task, turn, updater, prompt, current)
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
        self, task: Any, turn: Turn, updater: TaskUpdater, prompt: str, current: Any
    ) -> None:
        adapter, ctx = self.adapter, self.adapter.ctx
        assert ctx is not None
        text = ""
        try:
            with ctx.task(prompt[:2000] or "message"):  # redacted before it is cut
                with turn.scope:
                    async with adapter.locks.hold(task.context_id), adapter.limiter:
                        await updater.start_work()
                        progress = Progress(updater, task.id, task.context_id, ctx.redact)
                        text = await adapter.run_turn(turn, prompt, progress)
                # every byte back to the caller passes the redaction logs pass (§13)
                text = ctx.redact(text)
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
        with anyio.move_on_after(_CANCEL_GRACE):
            await turn.done.wait()
        if not turn.done.is_set() and turn.live is not None:
            turn.live.transport.kill()  # its own CLI, through its handle
