"""The platform link: the platform client and its tokens, the URL the workspace is
reached at, registration and heartbeats, and, with ``DELIVERY_MODE=poll``, the
pull loop (DESIGN §6, §7, §14).

In push mode the URL is the advertised one (§6); in poll mode there is no
inbound route, so the card names the platform's proxy and nothing is
advertised. It never serves anything and never touches the adapter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx

from . import prefetch
from .advertise import advertise
from .boot import Stages
from .health import Health
from .heartbeat import Heartbeat, RuntimeStatus
from .inbound import limit_body
from .logs import REDACTOR
from .platform import PlatformClient
from .poll import Cursor, InProcess, PollLoop
from .server import ServerState
from .settings import Settings
from .tokens import TokenStore

__all__ = ["PlatformLink"]

log = logging.getLogger("runtime_adapter.lifecycle")


class PlatformLink:
    """``await link.open(stack)``, ``await link.locate(port)``, then ``start`` the beats;
    ``last_beat()`` and ``stop_poll()`` at shutdown."""

    def __init__(
        self,
        settings: Settings,
        health: Health,
        *,
        status: RuntimeStatus,
        card: Callable[[], dict[str, Any]],
        inbound: TokenStore,
        started: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings, self.health, self.status = settings, health, status
        self.workspace_id: str = settings.workspace_id or ""
        self.platform_url: str = settings.platform_url or ""
        self.card, self.inbound, self.started = card, inbound, started
        self.transport = transport
        self.tokens = TokenStore(settings.config_path, on_token=REDACTOR.add)
        self.client: PlatformClient | None = None
        self.heartbeat: Heartbeat | None = None
        self.poll: PollLoop | None = None
        self._in_process: InProcess | None = None
        self.url = ""

    @property
    def poll_mode(self) -> bool:
        return self.settings.delivery_mode == "poll"

    async def open(self, stack: AsyncExitStack) -> PlatformClient:
        """The platform client (closed with ``stack``); the inbound secret a last run
        was sent is read first."""
        await anyio.to_thread.run_sync(self.inbound.refresh)
        self.client = await stack.enter_async_context(
            PlatformClient(
                self.platform_url,
                self.workspace_id,
                self.tokens,
                inbound=self.inbound,
                delivery=self.settings.delivery_mode,
                transport=self.transport,
                tls=prefetch.tls_context(),
            )
        )
        return self.client

    async def locate(self, port: int, stages: Stages) -> str:
        """The URL callers reach this workspace at, and the heartbeat that sends it."""
        if self.poll_mode:
            # no inbound route (§14): callers reach us through the platform's proxy
            self.url = f"{self.platform_url.rstrip('/')}/workspaces/{self.workspace_id}/a2a"
            log.info(
                "delivery: poll every %.1f s (DELIVERY_MODE=poll): registered without a URL; "
                "the card names the platform's proxy %s; /health is served on port %s",
                self.settings.poll_interval_seconds,
                self.url,
                port,
            )
        else:
            with stages("advertise"):
                chosen = await advertise(self.settings, port)
            log.info("%s", chosen.explain())
            if chosen.predicted_refusal:
                log.info(
                    "the platform will probably refuse %s (%s) and keep the URL its "
                    "provisioner stored; registering anyway",
                    chosen.url,
                    chosen.predicted_refusal,
                )
            self.url = chosen.url
        assert self.client is not None
        self.heartbeat = Heartbeat(
            self.client,
            self.health,
            url=self.url,
            card=self.card,
            interval=self.settings.heartbeat_interval_seconds,
            backoff_cap=self.settings.heartbeat_backoff_cap_seconds,
            status=lambda: self.status,
            started=self.started,
        )
        return self.url

    async def register_once(self) -> None:
        """One register, bounded: so the platform hears why the process is leaving."""
        assert self.heartbeat is not None
        with anyio.move_on_after(10):
            await self.heartbeat.register_once()

    async def start(self, group: anyio.abc.TaskGroup) -> None:
        """The first register, then heartbeats beside the caller (in ``group``)."""
        assert self.heartbeat is not None
        await group.start(self.heartbeat.run)

    def start_poll(self, group: anyio.abc.TaskGroup, state: ServerState) -> None:
        """The pull loop (§14): rows go to the adapter's routes in-process, once booted."""
        assert self.client is not None
        self._in_process = InProcess(
            limit_body(lambda *args: state._router(*args), state.max_request_bytes)
        )
        self.poll = PollLoop(
            self.client,
            self.health,
            call=self._in_process,
            cursor=Cursor(self.settings.config_path),
            interval=self.settings.poll_interval_seconds,
            cap=self.settings.heartbeat_backoff_cap_seconds,
            ready=lambda: state.booted and state.accepting,
        )
        group.start_soon(self.poll.run)

    async def stop_poll(self) -> None:
        """Before the adapter stops: a row its stop cancels is not done, and not
        answered "canceled"; the next process runs it."""
        if self.poll is not None:
            await self.poll.stop()

    async def last_beat(self) -> None:
        if self.heartbeat is None:
            return
        with anyio.move_on_after(2):
            try:
                await self.heartbeat.beat()
            except Exception as error:  # best effort on the way out
                log.warning("last heartbeat failed: %s", error)

    async def aclose(self) -> None:
        if self._in_process is not None:
            with anyio.move_on_after(1):
                await self._in_process.aclose()
