"""The claude-code template: Claude Code through claude-agent-sdk, served over A2A.

One A2A message is one agent turn. Each turn's outcome is reported: an
HTTP error the Claude Code CLI meets (its ``api_retry`` events carry the
status) becomes the matching structured sample error at once, and a 401 or
403 ends the turn instead of letting the CLI retry it for minutes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

import anyio
from a2a.client.card_resolver import parse_agent_card
from a2a.helpers.proto_helpers import new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKError,
    ResultMessage,
    SystemMessage,
    TextBlock,
    query,
)
from starlette.routing import BaseRoute

from runtime_adapter import AdapterContext, BaseAdapter, build_card

__all__ = ["ClaudeCodeAdapter", "TurnFailed"]

log = logging.getLogger("runtime_adapter.templates.claude_code")

# statuses a retry cannot fix: end the turn at once
_FATAL = frozenset({401, 403})


class TurnFailed(Exception):
    """An agent turn ended without an answer; ``status`` is the LLM's HTTP status if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ClaudeCodeAdapter(BaseAdapter):
    """Runs one Claude Code turn per A2A message (``SendMessage`` and 0.3 ``message/send``)."""

    name = "claude-code"
    stop_timeout = 5.0

    def __init__(self) -> None:
        self.ctx: AdapterContext | None = None
        self.options: dict[str, Any] = {}
        self.turn_timeout = 900.0

    async def start(self, ctx: AdapterContext) -> None:
        self.ctx = ctx
        self.options = await anyio.to_thread.run_sync(self._options, ctx)
        runtime = ctx.config.runtime_config.model_extra or {}
        self.turn_timeout = float(runtime.get("turn_timeout") or 900)

    @staticmethod
    def _options(ctx: AdapterContext) -> dict[str, Any]:
        runtime = ctx.config.runtime_config.model_extra or {}
        prompt_file = ctx.settings.config_path / str(
            runtime.get("system_prompt_file") or "system-prompt.md"
        )
        workdir = Path(os.environ.get("WORKSPACE_DIR", "/workspace"))
        return {
            "cwd": str(workdir if workdir.is_dir() else ctx.settings.config_path),
            "max_turns": int(runtime.get("max_turns") or 30),
            "permission_mode": runtime.get("permission_mode") or None,
            "system_prompt": prompt_file.read_text() if prompt_file.is_file() else None,
            "model": ctx.plan.model,
        }

    def routes(self, ctx: AdapterContext) -> list[BaseRoute]:
        card = build_card(ctx.config, "http://localhost/", default_name=self.name)
        handler = DefaultRequestHandler(
            agent_executor=_Executor(self),
            task_store=InMemoryTaskStore(),
            agent_card=parse_agent_card(card),
        )
        return list(create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True))

    async def turn(self, prompt: str) -> str:
        """One agent turn; the answer text, or ``TurnFailed`` (already reported)."""
        ctx = self.ctx
        if ctx is None:
            raise TurnFailed("the adapter has not started")
        options = ClaudeAgentOptions(
            **{k: v for k, v in self.options.items() if v is not None},
            stderr=lambda line: log.debug("claude: %s", line),
        )
        texts: list[str] = []
        try:
            with anyio.fail_after(self.turn_timeout):
                # query() is an async generator: close it (and the CLI) when we leave early
                events = cast("AsyncGenerator[Any, None]", query(prompt=prompt, options=options))
                async with aclosing(events) as stream:
                    async for message in stream:
                        answer = self._handle(ctx, message, texts)
                        if answer is not None:
                            ctx.report_success()
                            return answer
        except TimeoutError:
            ctx.report_error(TimeoutError(f"no answer within {self.turn_timeout:.0f} s"))
            raise TurnFailed(f"the agent did not answer within {self.turn_timeout:.0f} s") from None
        except ClaudeSDKError as error:
            ctx.report_error(error)
            raise TurnFailed(f"Claude Code failed: {ctx.redact(str(error))[:300]}") from None
        if texts:
            ctx.report_success()
            return "\n".join(texts)
        raise TurnFailed("Claude Code ended the turn without an answer")

    def _handle(self, ctx: AdapterContext, message: Any, texts: list[str]) -> str | None:
        if isinstance(message, SystemMessage) and message.subtype == "api_retry":
            status = message.data.get("error_status")
            error = str(message.data.get("error") or "error")
            if isinstance(status, int):
                ctx.report_status(status, error)
                if status in _FATAL:
                    raise TurnFailed(f"the LLM refused the credential ({status} {error})", status)
        elif isinstance(message, AssistantMessage):
            texts.extend(block.text for block in message.content if isinstance(block, TextBlock))
        elif isinstance(message, ResultMessage):
            if message.is_error:
                status = message.api_error_status
                if status is not None:
                    ctx.report_status(status, message.subtype)
                raise TurnFailed(f"the turn failed ({message.subtype})", status)
            return message.result or "\n".join(texts)
        return None


class _Executor(AgentExecutor):
    def __init__(self, adapter: ClaudeCodeAdapter) -> None:
        self.adapter = adapter

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        prompt = context.get_user_input()
        ctx = self.adapter.ctx
        assert ctx is not None
        with ctx.task(prompt[:80] or "message"):
            try:
                text = await self.adapter.turn(prompt)
            except TurnFailed as failure:
                text = f"error: {failure}"
        await event_queue.enqueue_event(
            new_text_message(text, context_id=context.context_id, task_id=context.task_id)
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Turns are not cancellable mid-way; the framework cancels ``execute``."""
