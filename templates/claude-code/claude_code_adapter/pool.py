"""The live Claude Code CLIs: one per context at most, each with one owner.

A context keeps one CLI (a ``ClaudeSDKClient``) between its turns. The pool
opens it (the kept one, or a new one resuming the context's session),
closes it when it has been idle ``keep_alive_seconds``, when
``max_live_sessions`` are open and another context needs one (least
recently used first), when the provider plan changed since it started, and
whenever a turn did not end with the CLI's result. A CLI is stopped through
the process handle it was started with (``OwnedTransport``), never by
matching command lines or scanning ``/proc``: a kill cannot reach another
CLI (a replacement with the same session id, a reused PID).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
from anyio.abc import Process
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

from runtime_adapter import AdapterContext

from .sessions import SessionBook
from .settings import Settings

__all__ = ["LiveCLI", "OwnedTransport", "Pool"]

log = logging.getLogger("runtime_adapter.templates.claude_code")

KILL_GRACE = 2.0  # after a kill, how long the SDK's close may take to reap


async def _no_prompt() -> AsyncIterator[dict[str, Any]]:
    # the client writes each prompt itself; the transport only needs an open stream
    return
    yield {}  # pragma: no cover - makes this an async generator


class OwnedTransport(SubprocessCLITransport):
    """The SDK's subprocess transport, keeping the handle of the process it started.

    The SDK drops its reference when it closes the transport; this one keeps it, so
    a kill goes to exactly this CLI, and only while it has not been reaped: until
    then its PID cannot belong to anyone else.
    """

    process: Process | None = None

    def __init__(self, options: ClaudeAgentOptions) -> None:
        super().__init__(prompt=_no_prompt(), options=options)

    async def connect(self) -> None:
        await super().connect()
        self.process = self._process  # set by the SDK's connect; checked by a test

    def kill(self) -> bool:
        """SIGKILL this CLI if it is still running; True when a signal was sent."""
        process = self.process
        if process is None or process.returncode is not None:
            return False
        with suppress(ProcessLookupError):
            process.kill()
        return True

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


@dataclass
class LiveCLI:
    """A Claude Code CLI kept running for one context between its turns."""

    context_id: str
    session_id: str
    client: ClaudeSDKClient
    transport: OwnedTransport
    plan: object  # the env plan it started under: it holds that environment
    busy: bool = False
    fresh: bool = True  # started for the current turn
    idle_since: float = field(default_factory=time.monotonic)

    async def close(self, *, kill: bool = False, grace: float = 3.0) -> None:
        """End the CLI: its stdin closed, it saves the session and exits; killed through
        its handle if it has not within ``grace``, or at once with ``kill``."""
        closed = anyio.Event()

        async def disconnect() -> None:
            try:
                with suppress(Exception):
                    await self.client.disconnect()
            finally:
                closed.set()

        # shielded: this runs on cancellation paths; bounded by the kill below (the
        # SDK's own close waits 5 s on a CLI that ignores end of input)
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                group.start_soon(disconnect)
                with anyio.move_on_after(0 if kill else grace):
                    await closed.wait()
                if not closed.is_set() and self.transport.kill():
                    log.debug("context %s: CLI %s killed", self.context_id, self.transport.pid)
                with anyio.move_on_after(KILL_GRACE):
                    await closed.wait()
                group.cancel_scope.cancel()


OptionsFor = Callable[[SessionBook, str, bool], ClaudeAgentOptions]


class Pool:
    """Opens, keeps and closes the live CLIs of every context (one owner for each)."""

    def __init__(
        self,
        settings: Settings,
        book: SessionBook,
        options_for: OptionsFor,
        ctx: AdapterContext,
    ) -> None:
        self.settings = settings
        self.book = book
        self.options_for = options_for
        self.ctx = ctx
        self.live: OrderedDict[str, LiveCLI] = OrderedDict()  # least recently used first
        self.stopped = False

    def __len__(self) -> int:
        return len(self.live)

    async def open(self, context_id: str) -> LiveCLI:
        """The context's live CLI, marked busy: the kept one, or a new one resuming its
        session."""
        ctx, book = self.ctx, self.book
        live = self.live.pop(context_id, None)
        if live is not None and live.plan is ctx.plan:
            self.live[context_id] = live  # most recently used
            live.fresh, live.busy = False, True
            return live
        if live is not None:  # started under an earlier provider plan: its env is stale
            log.info("context %s: provider plan changed; restarting its CLI", context_id)
            await live.close()
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
        options = self.options_for(book, session, exists)
        transport = OwnedTransport(options)
        client = ClaudeSDKClient(options, transport=transport)
        live = LiveCLI(context_id, session, client, transport, ctx.plan, busy=True)
        await client.connect()
        self.live[context_id] = live
        return live

    async def release(self, live: LiveCLI, *, settled: bool) -> None:
        """The turn is over: keep an idle, settled CLI, else close it (killed when it is
        still working: a CLI left running after its turn is a leak)."""
        live.busy, live.idle_since = False, time.monotonic()
        if not settled or not self.settings.keep_alive_seconds or self.stopped:
            await self.close(live, kill=not settled)

    async def close(self, live: LiveCLI, *, kill: bool = False, grace: float = 3.0) -> None:
        if self.live.get(live.context_id) is live:
            del self.live[live.context_id]
        await live.close(kill=kill, grace=grace)

    async def _make_room(self) -> None:
        """Close the least recently used idle CLIs beyond ``max_live_sessions`` - 1: in
        the background (the new context's turn need not wait), else here."""
        idle = [live for live in self.live.values() if not live.busy]
        while idle and len(self.live) >= self.settings.max_live_sessions:
            live = idle.pop(0)
            del self.live[live.context_id]
            if self.ctx.spawn is not None:
                self.ctx.start_soon(live.close)
            else:
                await live.close()

    async def close_idle(self) -> None:
        """Close CLIs idle for ``keep_alive_seconds``, until the pool stops."""
        keep = self.settings.keep_alive_seconds
        while not self.stopped:  # a reboot's new adapter has its own
            await anyio.sleep(min(max(keep / 4, 0.25), 15.0))
            now = time.monotonic()
            for live in list(self.live.values()):
                if not live.busy and now - live.idle_since >= keep:
                    log.debug("context %s: CLI idle %.0f s, closing", live.context_id, keep)
                    await self.close(live)

    async def close_all(self, grace: float = 1.0) -> None:
        self.stopped = True
        async with anyio.create_task_group() as group:
            for live in list(self.live.values()):
                group.start_soon(partial(self.close, live, grace=grace))
