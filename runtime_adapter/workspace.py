"""What this workspace runs now: its phase, the boot attempts (``boot.Boot``) and
their outcome, the plan the gateway and the agent get, and the agent card.

A boot that fails on the volume, the env plan or the adapter is taken over
here: ``/health`` 503 with the error, the adapter's routes gone, a minimal
card saying why (DESIGN §9 failed-boot mode). The credential probe of a boot
starts beside the rest of it (register never waits). Nothing here talks to
the platform or serves.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import anyio

from .adapter import AdapterContext, BaseAdapter
from .advertise import listen_port
from .boot import Boot, BootFailed, BootWork, Stages
from .card import build_card, minimal_card
from .envplan import EnvPlan, apply_plan
from .errors import ConfigError
from .gateway_serving import GatewayServing
from .health import Health
from .heartbeat import RuntimeStatus
from .inbound import load_bearer_tokens
from .logs import REDACTOR
from .server import ServerState
from .settings import Settings
from .telemetry import BootTracing
from .volume import WorkspaceConfig
from .watch import signature

__all__ = ["Phase", "Workspace"]

log = logging.getLogger("runtime_adapter.lifecycle")

Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]


class Phase(enum.Enum):
    """Where the process is; transitions only go forward, except FAILED → BOOTING."""

    CREATED = "created"
    BOOTING = "booting"
    RUNNING = "running"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


_ALLOWED = {
    Phase.CREATED: {Phase.BOOTING, Phase.STOPPING},
    Phase.BOOTING: {Phase.RUNNING, Phase.FAILED, Phase.STOPPING},
    Phase.FAILED: {Phase.BOOTING, Phase.STOPPING},
    Phase.RUNNING: {Phase.STOPPING},
    Phase.STOPPING: {Phase.STOPPED},
    Phase.STOPPED: set(),
}


class Workspace:
    """The current boot's outcome. ``await workspace.boot(spawn)`` makes one attempt."""

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str],
        *,
        health: Health,
        status: RuntimeStatus,
        state: ServerState,
        gateway: GatewayServing | None,
        token: Callable[[], str | None],
        tracing: BootTracing,
        work: BootWork,
        started: float | None = None,
    ) -> None:
        self.settings, self.environ = settings, dict(environ)
        self.health, self.status, self.state = health, status, state
        self.gateway, self.token, self.tracing, self.work = gateway, token, tracing, work
        self.phase = Phase.CREATED
        self.config: WorkspaceConfig | None = None
        self.plan: EnvPlan | None = None  # the direct plan: the real credential
        self.adapter: BaseAdapter | None = None
        self.context: AdapterContext | None = None
        self.url = ""
        self.error = ""  # why the last boot failed, redacted
        self.last: Boot | None = None
        self.read: tuple[tuple[str, int, int], ...] | None = None  # what the boot read
        self.started = time.monotonic() if started is None else started  # one uptime

    def enter(self, phase: Phase) -> None:
        if phase not in _ALLOWED[self.phase]:
            raise RuntimeError(f"lifecycle cannot go from {self.phase.value} to {phase.value}")
        log.debug("phase %s -> %s", self.phase.value, phase.value)
        self.phase = phase

    @property
    def stages(self) -> Stages:
        """The stages of the current (or last) boot attempt."""
        return self.last.stages if self.last is not None else Stages()

    def port(self) -> int:
        return listen_port(self.settings, self.config)

    async def boot(self, spawn: Spawn | None, settings_error: ConfigError | None) -> bool:
        """One boot attempt, its outcome taken over here. True on success."""
        self.enter(Phase.BOOTING)
        # what the boot is about to read: a change from here on boots again, even one
        # made before the failed boot's watch begins
        self.read = await anyio.to_thread.run_sync(
            signature, self.settings.config_path, self.settings.runtime_secrets_dir
        )
        if self.gateway is not None:
            self.gateway.renew_token()
        callers = self.state.callers
        if settings_error is None and callers.mode == "bearer":
            try:
                callers.tokens = await anyio.to_thread.run_sync(load_bearer_tokens, self.settings)
            except ConfigError as error:
                settings_error = error
        attempt = self.last = Boot(
            self.settings,
            self.environ,
            health=self.health,
            status=self.status,
            spawn=spawn,
            settings_error=settings_error,
            before_start=self._before_start,
            agent_plan=self.gateway.agent_plan if self.gateway is not None else None,
            token=self.token,
            direct=lambda: self.plan,
        )
        try:
            booted = await attempt()
        except BootFailed as failure:
            self.config = attempt.config or self.config
            self.plan = attempt.plan or self.plan
            self.health.record_failure(failure.error)
            self.error = REDACTOR(failure.text)
            self.state.booted = False
            self.state.set_routes([])
            log.error("boot failed, serving /health 503 and reporting: %s", failure.error.summary())
            self.enter(Phase.FAILED)
            return False
        self.config, self.plan = booted.config, booted.plan
        self.adapter, self.context = booted.adapter, booted.context
        self.health.record_success("config")
        self.health.record_success("runtime")
        self.state.set_routes(booted.adapter.routes(booted.context))
        self.state.booted = True
        self.error = ""
        self.enter(Phase.RUNNING)
        return True

    async def _before_start(self, adapter: BaseAdapter, context: AdapterContext) -> None:
        self.plan = self.last.plan if self.last is not None else context.plan
        await self.trace(adapter.name)  # before the probe, so the probe is traced
        stages = self.stages

        async def probe() -> None:
            # beside the rest of the boot; its outcome reaches the platform as soon as
            # it is known (§8), and register never waits for it
            try:
                with stages("probe"):
                    passed = await adapter.run_probe(context)
            finally:
                self.work.done("probe")
            log.info("credential probe %s", "passed" if passed else "failed")

        if context.spawn is not None:
            self.work.add("probe")
            context.spawn(probe)

    async def trace(self, template: str = "") -> None:
        """Telemetry, when OTEL_* asks for it, with what is known of this workspace."""
        plan, config = self.plan, self.config
        await self.tracing.start(
            template
            or (self.adapter.name if self.adapter else "")
            or (config.runtime if config else None)
            or "",
            (plan.provider if plan else None) or "",
            (plan.model if plan else None) or "",
        )

    def running(self) -> tuple[WorkspaceConfig | None, BaseAdapter, AdapterContext] | None:
        if self.phase is not Phase.RUNNING or self.adapter is None or self.context is None:
            return None
        return self.config, self.adapter, self.context

    def replan(self, plan: EnvPlan) -> None:
        """A changed plan while running: the gateway uses it from the next request on;
        the agent's environment changes only if what the agent gets of it changed (a
        rotated key does not), so a live CLI is kept unless it must go."""
        self.plan = plan
        agent = self.gateway.agent_plan(plan) if self.gateway is not None else plan
        apply_plan(agent, os.environ)
        if self.context is not None and agent.target() != self.context.plan.target():
            self.context.plan = agent

    def card(self) -> dict[str, Any]:
        if self.state.booted and self.config is not None and self.adapter is not None:
            adapter = self.adapter
            return build_card(
                self.config,
                self.url,
                name=adapter.display_name or None,
                description=adapter.description,
                skills=list(adapter.skills(self.config)),
                default_name=adapter.name or self.settings.workspace_id or "",
                streaming=adapter.streaming,
                auth=self.settings.a2a_auth,
            )
        name = (self.config.name if self.config else None) or self.settings.workspace_id or ""
        return minimal_card(name, self.url, f"not running: {self.error}"[:300])

    def details(self) -> dict[str, Any]:
        """What ``/health`` adds to the health itself."""
        return {
            "phase": self.phase.value,
            "provider": self.plan.provider if self.plan else None,
            "model": self.plan.model if self.plan else None,
            "url": self.url,
            "uptime_seconds": int(time.monotonic() - self.started),
        }
