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
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
from a2a.client.card_resolver import parse_agent_card
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.tasks import BasePushNotificationSender
from claude_agent_sdk import ClaudeAgentOptions
from starlette.routing import BaseRoute, Route

import runtime_adapter.isolation as isolation
from runtime_adapter import AdapterContext, BaseAdapter, ConfigError, build_card
from runtime_adapter.advertise import checked_client, platform_mode, url_problem
from runtime_adapter.health import classify

from .executor import ContextLocks, Executor
from .handler import Handler, QueuedPush
from .pool import Pool
from .sessions import SessionBook
from .settings import Settings, load_settings, sessions_root, tasks_path
from .tasks import TaskDatabase, open_tasks
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
        self.database: TaskDatabase | None = None
        self.push: QueuedPush | None = None
        self._push_http: httpx.AsyncClient | None = None
        self._allowed: Callable[[str], Awaitable[bool]] | None = None

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
        await self._open_tasks(ctx)

    async def _open_tasks(self, ctx: AdapterContext) -> None:
        """The task database (tasks outlive the process), its retention, and push."""
        settings = self.settings
        where = tasks_path(ctx, settings)
        database = self.database = await open_tasks(
            where, retention_count=settings.task_retention_count
        )
        if database.problem is not None:
            # the runtime goes on answering: tasks in memory until the file is fixed
            problem = ConfigError(
                f"{database.problem}; tasks are kept in memory and lost at a restart",
                hint="remove or repair the file, or set runtime_config.tasks_db to a "
                "writable path, then restart",
                file=where,
            )
            log.warning("%s", problem)
            failure = replace(classify(problem, "config", redact=ctx.redact), severity="warning")
            ctx.health.record_failure(failure, operation="task-store")
        else:
            log.info("A2A tasks stored in %s", where)
        if ctx.spawn is not None:
            ctx.start_soon(self._retain)
        if ctx.config.a2a.push_notifications:
            mode = platform_mode(ctx.settings)

            async def allowed(url: str) -> bool:
                problem = await url_problem(url, mode)
                if problem is not None:
                    log.warning("push notification webhook refused: %s", problem)
                return problem is None

            self._allowed = allowed
            # checked again at connect time, to the address checked: a webhook's DNS
            # cannot answer a public address to the validator and a private one after
            self._push_http = checked_client(mode)
            sender = BasePushNotificationSender(
                self._push_http, database.push_configs, push_url_validator=allowed
            )
            self.push = QueuedPush(sender)
            if ctx.spawn is not None:
                ctx.start_soon(self.push.run)

    async def _retain(self) -> None:
        """Prune finished tasks hourly, and sooner when many were created."""
        database, settings = self.database, self.settings
        while database is not None:
            many = max(100, settings.task_retention_count // 10)
            for _ in range(720):  # an hour, looking every 5 s for a burst of new tasks
                if database.created >= many:
                    break
                await anyio.sleep(5)
            try:
                await database.prune(settings.task_retention_days, settings.task_retention_count)
            except Exception:
                log.warning("task retention failed; trying again later", exc_info=True)

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
            ctx.config,
            "http://localhost/",
            default_name=self.name,
            streaming=self.streaming,
            auth=ctx.settings.a2a_auth,
        )
        assert self.database is not None
        settings = self.settings
        handler = Handler(
            agent_executor=Executor(self),
            task_store=self.database.tasks,
            agent_card=parse_agent_card(card),
            push_config_store=self.database.push_configs if self.push is not None else None,
            push_sender=self.push,
            push_url_validator=self._allowed,
            max_message_chars=settings.max_message_chars,
            max_waiting=settings.max_concurrent_turns + settings.max_queued_turns,
            waiting=lambda: len(self.turns),
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
        if self._push_http is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await self._push_http.aclose()
        if self.database is not None:
            await self.database.aclose()
