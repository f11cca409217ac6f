"""The supervisor of the container main process (DESIGN §9): ``Runtime``.

It starts, watches and stops a handful of parts, each with one job:
``Workspace`` (boot attempts and their outcome, the card), ``Serving`` (the
A2A/health server on ``PORT``), ``GatewayServing`` (the LLM gateway, §13),
``PlatformLink`` (register, heartbeats, poll), ``CredentialCheck`` (keys
re-checked while running), ``BootTracing`` (telemetry) and the shutdown
``Budget``. A boot that fails does not end the process: it reports, and boots
again when the config volume or secrets directory changes. SIGTERM/SIGINT:
stop accepting, a last heartbeat, a bounded adapter stop, exit 0, within one
budget. Steps are raced against the stop request (``Stopping.guard``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack

import anyio
import httpx

from . import isolation
from .boot import BootWork, collect_again, stop_adapter
from .errors import ConfigError
from .gateway_serving import GatewayServing
from .health import Health
from .heartbeat import RuntimeStatus
from .inbound import Callers, describe
from .link import PlatformLink
from .logs import REDACTOR
from .server import ServerState
from .serving import Serving, is_platform_address
from .settings import Settings
from .shutdown import Budget, Stopping
from .telemetry import BootTracing
from .tokens import TokenStore
from .volume import INBOUND_SECRET_FILE
from .watch import CredentialCheck, wait_for_change
from .workspace import Phase, Workspace

__all__ = ["Phase", "Runtime", "Stopping"]

log = logging.getLogger(__name__)


class Runtime:
    """One workspace process. ``await Runtime(settings, environ).run()``.

    ``environ`` is the environment as the process started: every plan is made from
    it, never from what an earlier plan applied, so a reboot cannot inherit a stale
    projection. ``platform_transport`` is for tests.
    """

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str],
        *,
        platform_transport: httpx.AsyncBaseTransport | None = None,
        host: str = "0.0.0.0",  # noqa: S104 - the runtime serves the platform's proxy
        settings_error: ConfigError | None = None,
    ) -> None:
        if not settings.workspace_id or not settings.platform_url:
            raise ValueError("Runtime needs WORKSPACE_ID and PLATFORM_URL")
        self.settings, self.health, self.status = settings, Health(), RuntimeStatus()
        # a bad setting when WORKSPACE_ID and PLATFORM_URL are still usable: every boot
        # fails with it, and the process reports it instead of exiting (no crash loop)
        self.settings_error = settings_error
        self.budget, self.work, started = Budget(), BootWork(), time.monotonic()
        # the credential the platform presents when it calls us (§7), and who may (§12)
        inbound = TokenStore(
            settings.config_path, on_token=REDACTOR.add, file=INBOUND_SECRET_FILE,
            what="platform inbound secret",
        )  # fmt: skip
        callers = Callers(settings.a2a_auth, secret=lambda: inbound.token)
        self.state = ServerState(
            self.health, lambda: self.workspace.card(), details=lambda: self.workspace.details(),
            callers=callers, max_request_bytes=settings.a2a_max_request_bytes,
        )  # fmt: skip
        drain = self.budget.drain_until
        self.gateway = (
            GatewayServing(lambda: self.workspace.plan, self.health, drain_until=drain)
            if settings.llm_gateway == "on"
            else None
        )
        self.link = PlatformLink(
            settings, self.health, status=self.status, card=self.state.card, inbound=inbound,
            started=started, transport=platform_transport,
        )  # fmt: skip
        self.workspace = Workspace(
            settings, environ, health=self.health, status=self.status, state=self.state,
            gateway=self.gateway, token=lambda: self.link.tokens.token,
            tracing=BootTracing(settings.workspace_id, REDACTOR), work=self.work,
            started=started,
        )  # fmt: skip
        self.serving = Serving(
            self.state, self.health, host=host, platform_url=settings.platform_url,
            drain_until=drain,
        )  # fmt: skip
        self.exit_code = 0

    @property
    def phase(self) -> Phase:
        return self.workspace.phase

    async def run(self) -> None:
        """Boot, serve, register and heartbeat until SIGTERM/SIGINT or cancellation.
        Whatever ends the run, the ``finally`` is the one shutdown, within one budget."""
        stopping = Stopping()
        isolation.protect_runtime()
        async with AsyncExitStack() as stack, anyio.create_task_group() as group:
            try:
                await self._main(stack, group, stopping)
            finally:
                collect_again()
                await self._shutdown()
                group.cancel_scope.cancel()
        self.workspace.enter(Phase.STOPPED)

    async def _main(
        self, stack: AsyncExitStack, group: anyio.abc.TaskGroup, stopping: Stopping
    ) -> None:
        group.start_soon(stopping.on_signals)
        self.work.add("register")
        # the platform client first: building it imports httpcore and h11, which is
        # quicker before the probe's import thread starts competing for the GIL
        await self.link.open(stack)
        log.info("%s", describe(self.state.callers))
        with stopping.guard():
            booted = await self.workspace.boot(group.start_soon, self.settings_error)
        if stopping.is_set():
            return
        workspace, serving = self.workspace, self.serving
        with workspace.stages("listen"):
            bound = serving.bind(workspace.port())
        workspace.url = await self.link.locate(serving.port, workspace.stages)
        if not bound:
            self.exit_code = 1
            # register once so the platform hears why (the last beat follows), unless
            # PORT is the platform's own address on this host; then exit
            if not is_platform_address(self.link.platform_url, serving.port):
                await self.link.register_once()
            return
        registered = anyio.Event()
        group.start_soon(serving.run, registered, stopping.set)
        if self.gateway is not None:
            group.start_soon(self.gateway.run, self.work.quiet, serving.cannot_listen)
        with workspace.stages("register"), stopping.guard():
            await self.link.start(group)
        registered.set()
        self.work.done("register")
        await workspace.trace()  # if the boot did not get that far
        workspace.tracing.report_boot(list(workspace.stages.measured))
        if self.link.poll_mode:
            self.link.start_poll(group, self.state)
        else:
            group.start_soon(serving.check_reachable, workspace.url)
        check = CredentialCheck(
            self.settings, workspace.environ, self.health, running=workspace.running,
            planned=lambda: workspace.plan, replan=workspace.replan,
        )  # fmt: skip
        group.start_soon(check.run)
        while not booted and not stopping.is_set():
            with stopping.guard():
                await wait_for_change(self.settings.config_path, self.settings.runtime_secrets_dir)
                log.info("config volume or secrets changed; booting again")
                if workspace.config is not None and workspace.port() != serving.port:
                    log.warning(
                        "the new config asks for port %s; the server keeps %s until restart",
                        workspace.port(),
                        serving.port,
                    )
                booted = await self.workspace.boot(group.start_soon, self.settings_error)
        await stopping.wait()

    async def _shutdown(self) -> None:
        """Stop accepting work, a last heartbeat and a bounded adapter stop, all within
        one shielded budget that nothing inside can extend."""
        if self.phase is Phase.STOPPING:
            return
        self.workspace.enter(Phase.STOPPING)
        self.serving.stop()
        if self.serving.failed:
            self.exit_code = 1
        with self.budget.run():
            await self.link.stop_poll()
            await self.link.last_beat()
            last = self.workspace.last
            adapter = self.workspace.adapter or (last.starting if last else None)
            if adapter is not None:
                await stop_adapter(adapter, self.budget.share(adapter.stop_timeout))
            await self.link.aclose()
            await self.workspace.tracing.stop()
        log.info("stopped")
