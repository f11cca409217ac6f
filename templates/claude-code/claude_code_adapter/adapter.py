"""``ClaudeCodeAdapter``: Claude Code through claude-agent-sdk, served over A2A.

What a caller gets (DESIGN §12): an A2A ``contextId`` is one Claude Code
session, resumed on every later message and stored on a volume; every
message is a Task (submitted, working, then completed with the answer as an
artifact, failed with the redacted reason, or canceled); streaming status
updates while the CLI works; ``CancelTask`` interrupts the turn; turns of
one context run in order, at most ``max_concurrent_turns`` at the LLM at
once; ``GET /transcript`` for the platform, bearer-protected.

The parts, one owner each: ``settings`` (``runtime_config``), ``sessions``
(contexts to sessions), ``pool`` (the live CLIs), ``turn`` (one prompt and its
answer), ``executor`` (A2A tasks), ``transcript`` (the route). Nothing here
may leave a CLI process behind: ``stop()`` closes them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import anyio
from a2a.client.card_resolver import parse_agent_card
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from claude_agent_sdk import ClaudeAgentOptions
from starlette.routing import BaseRoute, Route

import runtime_adapter.isolation as isolation
from runtime_adapter import AdapterContext, BaseAdapter, build_card

from .executor import ContextLocks, Executor
from .pool import Pool
from .sessions import SessionBook
from .settings import Settings, load_settings, sessions_root
from .transcript import Transcript
from .turn import Progress, Turn, TurnFailed, TurnRunner

__all__ = ["ClaudeCodeAdapter"]

log = logging.getLogger("runtime_adapter.templates.claude_code")

_INTERRUPT_GRACE = 1.5
# a CLI's background jobs and scheduled prompts start turns nobody asked for: outside
# max_concurrent_turns, invisible as tasks, with no caller to answer
_NO_TURNS_OF_ITS_OWN = {
    "CLAUDE_CODE_DISABLE_BACKGROUND_TASKS": "1",
    "CLAUDE_CODE_DISABLE_CRON": "1",
}


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
        self.pool: Pool | None = None
        self.runner: TurnRunner | None = None
        self.limiter = anyio.CapacityLimiter(4)
        self.locks = ContextLocks()
        self.turns: dict[str, Turn] = {}

    async def start(self, ctx: AdapterContext) -> None:
        self.ctx = ctx
        self.settings = load_settings(ctx)
        self.limiter = anyio.CapacityLimiter(self.settings.max_concurrent_turns)
        self.options = await anyio.to_thread.run_sync(self._options, ctx)
        root = sessions_root(ctx, self.settings)
        self.book = await anyio.to_thread.run_sync(SessionBook, root)
        self.pool = Pool(self.settings, self.book, self._options_for, ctx)
        self.runner = TurnRunner(ctx, self.settings, self.pool)
        if self.settings.keep_alive_seconds and ctx.spawn is not None:
            ctx.start_soon(self.pool.close_idle)
        log.info("claude-code sessions in %s", root)

    def _options(self, ctx: AdapterContext) -> dict[str, Any]:
        prompt_file = ctx.settings.config_path / self.settings.system_prompt_file
        workdir = Path(os.environ.get("WORKSPACE_DIR", "/workspace"))
        found = isolation.check()
        return {
            # as the agent user with no capability, where the image grants the launch
            "cli_path": found.launcher if found.separate else None,
            "cwd": str(workdir if workdir.is_dir() else ctx.settings.config_path),
            "max_turns": self.settings.max_turns,
            "permission_mode": self.settings.permission_mode,
            "system_prompt": prompt_file.read_text() if prompt_file.is_file() else None,
            "model": ctx.plan.model,
        }

    def _options_for(self, book: SessionBook, session: str, exists: bool) -> ClaudeAgentOptions:
        """The SDK options of a new CLI for ``session`` (resumed when the CLI has it)."""
        ctx = self.ctx
        assert ctx is not None
        where: dict[str, Any] = {"resume": session} if exists else {"session_id": session}
        env = {"CLAUDE_CONFIG_DIR": str(book.root)}
        if not self.settings.background_tasks:
            env.update(_NO_TURNS_OF_ITS_OWN)
        return ClaudeAgentOptions(
            **{k: v for k, v in self.options.items() if v is not None},
            **where,
            env=env,
            stderr=lambda line: log.debug("claude: %s", ctx.redact(line)),
        )

    async def run_turn(self, turn: Turn, prompt: str, progress: Progress) -> str:
        if self.runner is None:
            raise TurnFailed("the adapter has not started")
        return await self.runner(turn, prompt, progress)

    def routes(self, ctx: AdapterContext) -> list[BaseRoute]:
        card = build_card(
            ctx.config, "http://localhost/", default_name=self.name, streaming=self.streaming
        )
        handler = DefaultRequestHandler(
            agent_executor=Executor(self),
            task_store=InMemoryTaskStore(),
            agent_card=parse_agent_card(card),
        )
        assert self.book is not None
        return [
            Route("/transcript", Transcript(self.name, ctx, self.book).handle, methods=["GET"]),
            *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True),
        ]

    async def stop(self) -> None:
        """Cancel every running turn and close every live CLI; none outlives the runtime."""
        if self.pool is not None:
            self.pool.stopped = True
        for turn in list(self.turns.values()):
            turn.cancelled = True
            turn.scope.cancel()
        with anyio.move_on_after(_INTERRUPT_GRACE + 0.5):  # each interrupts its CLI
            for turn in list(self.turns.values()):
                await turn.done.wait()
        if self.pool is not None:
            await self.pool.close_all(grace=1.0)
