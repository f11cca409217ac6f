"""One agent turn: a prompt sent to the context's live CLI, and *its* answer.

A live CLI's output is one stream shared by every turn of its context, and
the CLI may run turns of its own (a background job's notification, a
scheduled prompt): each prompt goes out with a fresh ``uuid``, and the
answer is the ``ResultMessage`` that lists that uuid. A result of any
other turn (read before ours, left over from between turns) is drained:
logged, its text dropped, never taken as this turn's answer.

One LLM call is one outcome: the CLI's ``api_retry`` events are progress,
except a 401/403, which ends the turn at once (a retry cannot fix a refused
key).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    ClaudeSDKError,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolUseBlock,
)

from runtime_adapter import AdapterContext

from .pool import LiveCLI, Pool
from .settings import Settings

__all__ = ["Turn", "TurnFailed", "TurnRunner", "is_answer_to"]

log = logging.getLogger("runtime_adapter.templates.claude_code")

# statuses a retry cannot fix: end the turn at once
_FATAL = {401: "auth_failed", 403: "permission_denied"}
_INTERRUPT_GRACE = 1.5  # an interrupted CLI answers with its result within milliseconds

Progress = Callable[[str], Awaitable[None]]


class TurnFailed(Exception):
    """An agent turn ended without an answer; ``status`` is the LLM's HTTP status if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Turn:
    """One running A2A task: what cancel needs to stop it."""

    task_id: str
    context_id: str
    live: LiveCLI | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    cancelled: bool = False
    done: anyio.Event = field(default_factory=anyio.Event)
    usage: dict[str, Any] = field(default_factory=dict)  # the CLI result's token counts
    stop_reason: str | None = None


def is_answer_to(message: ResultMessage, prompt_uuid: str) -> bool:
    """Whether ``message`` ends the turn that took in the prompt sent as ``prompt_uuid``."""
    taken = list(message.user_message_uuids or [])
    if message.user_message_uuid:
        taken.append(message.user_message_uuid)
    if taken:
        return prompt_uuid in taken
    # no uuid at all (an older CLI): only a turn the CLI started itself carries an origin
    return message.origin is None


def _messages(client: ClaudeSDKClient) -> AsyncGenerator[Any, None]:
    """Everything the CLI writes, for as long as it lives (closable)."""
    return cast("AsyncGenerator[Any, None]", client.receive_messages())


async def _one(prompt: str, prompt_uuid: str) -> AsyncIterator[dict[str, Any]]:
    yield {
        "type": "user",
        "message": {"role": "user", "content": prompt},
        "parent_tool_use_id": None,
        "uuid": prompt_uuid,
    }


@dataclass
class _Reading:
    """What one turn has read so far."""

    texts: list[str] = field(default_factory=list)
    heard: bool = False  # anything of this turn from the CLI
    settled: bool = False  # its result arrived: the CLI is idle and may be kept


class TurnRunner:
    """Runs turns on the pool's CLIs and reports each one's outcome to the runtime."""

    def __init__(self, ctx: AdapterContext, settings: Settings, pool: Pool) -> None:
        self.ctx, self.settings, self.pool = ctx, settings, pool

    async def __call__(self, turn: Turn, prompt: str, progress: Progress) -> str:
        """One agent turn in ``turn``'s context; the answer text, or ``TurnFailed``."""
        ctx = self.ctx
        reading = _Reading()
        live: LiveCLI | None = None
        try:
            with anyio.fail_after(self.settings.turn_timeout):
                live = await self.pool.open(turn.context_id)
                while True:
                    turn.live = live
                    try:
                        answer = await self._ask(live, prompt, reading, progress, turn)
                        if answer is not None:
                            return answer
                        break
                    except ClaudeSDKError:
                        if live.fresh or reading.heard:
                            raise
                    # the kept CLI died while idle (killed, out of memory): its failure shows
                    # at the write or as the first thing read; start another, once
                    log.warning(
                        "context %s: its CLI had exited; starting it again", turn.context_id
                    )
                    await self.pool.close(live, kill=True)
                    live = await self.pool.open(turn.context_id)
        except anyio.get_cancelled_exc_class():
            if live is not None and not reading.settled:
                with anyio.CancelScope(shield=True):
                    reading.settled = await self._interrupt(live)
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
                with anyio.CancelScope(shield=True):
                    await self.pool.release(live, settled=reading.settled)
        if reading.texts:
            return "\n".join(reading.texts)
        raise TurnFailed("Claude Code ended the turn without an answer")

    async def _ask(
        self, live: LiveCLI, prompt: str, reading: _Reading, progress: Progress, turn: Turn
    ) -> str | None:
        prompt_uuid = str(uuid.uuid4())
        await live.client.query(_one(prompt, prompt_uuid))
        async with aclosing(_messages(live.client)) as stream:
            async for message in stream:
                reading.heard = True
                if isinstance(message, ResultMessage) and not is_answer_to(message, prompt_uuid):
                    # the end of a turn the CLI ran by itself, or left from between turns
                    origin = cast("dict[str, Any]", message.origin or {}).get(
                        "kind", "an earlier prompt"
                    )
                    log.info(
                        "context %s: drained the result of a turn started by %s",
                        turn.context_id,
                        origin,
                    )
                    reading.texts.clear()
                    continue
                if isinstance(message, ResultMessage):
                    reading.settled = True
                answer = await self._handle(message, reading.texts, progress, turn)
                if answer is not None:
                    return answer
        return None

    async def _handle(
        self, message: Any, texts: list[str], progress: Progress, turn: Turn
    ) -> str | None:
        ctx = self.ctx
        if isinstance(message, SystemMessage) and message.subtype == "api_retry":
            # a retry is progress, not an outcome; only a refused key ends the turn
            status = message.data.get("error_status")
            error = str(message.data.get("error") or "error")
            if isinstance(status, int) and status in _FATAL:
                if not ctx.calls_observed:  # behind the gateway, the gateway reports calls
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
                if status is not None and not ctx.calls_observed:
                    ctx.report_status(status, reason)
                # without an LLM status the turn ended for a reason of its own (its
                # max_turns, a budget): that task's failure, not the workspace's
                raise TurnFailed(ctx.redact(reason)[:500], status)
            if _called_the_llm(message):
                # a reply the CLI made by itself (a blank prompt, /cost) proves nothing
                # about the credential: only an LLM call's success clears an LLM error.
                # Behind the gateway this clears only what this adapter reported (a
                # timeout, a CLI that died): the gateway's own errors are the gateway's
                ctx.report_success()
            return message.result or "\n".join(texts)
        return None

    async def _interrupt(self, live: LiveCLI) -> bool:
        """Interrupt the turn the CLI is working on; True once it has settled (its
        result arrived: it made no further LLM call and waits for the next message)."""
        with anyio.move_on_after(_INTERRUPT_GRACE):
            try:
                await live.client.interrupt()
                async with aclosing(_messages(live.client)) as stream:
                    async for message in stream:
                        if isinstance(message, ResultMessage):
                            return True
            except ClaudeSDKError:
                return False
        return False


def _called_the_llm(message: ResultMessage) -> bool:
    usage = message.usage or {}
    return any(int(usage.get(key) or 0) > 0 for key in ("input_tokens", "output_tokens"))


def _result_reason(message: ResultMessage) -> str:
    """The error text of a failed result, from the result itself, never its subtype name."""
    if message.errors:
        return "; ".join(str(e) for e in message.errors)
    if message.result:
        return str(message.result)
    status = message.api_error_status
    return f"the turn failed (HTTP {status})" if status else "the turn failed"
