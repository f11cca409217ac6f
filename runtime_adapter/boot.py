"""One boot attempt (DESIGN §9): volume, env plan, apply, adapter load and start.

In: the settings, the environment as the process started, and what the
adapter's context needs. Out: a ``Booted`` (the started adapter with its
context, config and plan) or ``BootFailed`` carrying the structured error;
an adapter that half started is stopped before the failure is raised. Each
stage is logged with its duration into the ``Stages`` of *this* boot, for
telemetry. Nothing here talks to the platform or serves anything.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import anyio

from .adapter import AdapterContext, BaseAdapter, discover_adapter
from .envplan import EnvPlan, apply_plan, key_variables
from .errors import ConfigError
from .health import Health, SampleError, classify
from .heartbeat import RuntimeStatus
from .logs import REDACTOR
from .reconcile import reconcile
from .settings import Settings
from .volume import WorkspaceConfig, wait_for_config

__all__ = ["Boot", "BootFailed", "BootWork", "Booted", "Stages", "collect_again", "stop_adapter"]

log = logging.getLogger("runtime_adapter.lifecycle")


class Stages:
    """The stages one boot measured: (name, start ns, end ns, outcome), in order."""

    def __init__(self) -> None:
        self.measured: list[tuple[str, int, int, str]] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        wall = time.time_ns()
        outcome = "failed"
        try:
            yield
            outcome = "done"
        finally:
            self.measured.append((name, wall, time.time_ns(), outcome))
            elapsed = (time.perf_counter() - started) * 1000
            log.info(
                "boot stage %s %s in %.0f ms",
                name,
                outcome,
                elapsed,
                extra={"stage": name, "duration_ms": round(elapsed, 1)},
            )


@dataclass(frozen=True)
class Booted:
    config: WorkspaceConfig
    plan: EnvPlan  # the direct plan, with the real credential (the gateway's to use)
    adapter: BaseAdapter
    context: AdapterContext  # its plan is the agent's (behind the gateway: no credential)


class BootFailed(Exception):
    """The boot did not finish; ``error`` is what the platform is told."""

    def __init__(self, error: SampleError, text: str) -> None:
        super().__init__(text)
        self.error, self.text = error, text


# the plan as the agent gets it (``envplan.agent_plan`` behind the gateway)
AgentPlan = Callable[[EnvPlan], EnvPlan]

# called with the loaded adapter and its context just before ``start``: the runtime
# sets up telemetry and starts the credential probe there (register never waits)
BeforeStart = Callable[[BaseAdapter, AdapterContext], Awaitable[None]]


async def _nothing(adapter: BaseAdapter, context: AdapterContext) -> None:
    return None


class Boot:
    """One boot attempt: ``booted = await Boot(settings, environ, ...)()``.

    ``config`` and ``plan`` are kept as soon as they are known, so a failure in a
    later stage can still name the workspace and its provider.
    """

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str],
        *,
        health: Health,
        status: RuntimeStatus,
        spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], object] | None = None,
        settings_error: ConfigError | None = None,
        before_start: BeforeStart = _nothing,
        stages: Stages | None = None,
        agent_plan: AgentPlan | None = None,
        token: Callable[[], str | None] = lambda: None,
        direct: Callable[[], EnvPlan | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.environ = environ
        self.health = health
        self.status = status
        self.spawn = spawn
        self.settings_error = settings_error
        self.before_start = before_start
        self.stages = stages if stages is not None else Stages()
        self.agent_plan = agent_plan
        self.token = token
        self.direct = direct
        self.config: WorkspaceConfig | None = None
        self.plan: EnvPlan | None = None
        self.adapter_name = ""
        self.starting: BaseAdapter | None = None  # an adapter whose start may be half done

    async def __call__(self) -> Booted:
        try:
            return await self._boot()
        except ConfigError as error:
            await self._abandon()
            raise BootFailed(classify(error, "config", redact=REDACTOR), str(error)) from None
        except Exception as error:  # an adapter crash is reported, not raised
            log.exception("boot failed")
            await self._abandon()
            crash = classify(error, "runtime", redact=REDACTOR)
            # whatever the exception, a boot that did not finish is a crash, not a warning
            crash = replace(
                crash,
                kind="runtime_crash",
                severity="error",
                message=f"the adapter did not start: {crash.message}",
            )
            raise BootFailed(crash, str(error) or type(error).__name__) from None

    async def _boot(self) -> Booted:
        settings, stage = self.settings, self.stages
        if self.settings_error is not None:
            raise self.settings_error
        with stage("volume"):
            config = self.config = await wait_for_config(
                settings.config_path, settings.config_grace_seconds
            )
        with stage("env plan"):
            reconciled = await anyio.to_thread.run_sync(reconcile, settings, self.environ, config)
        plan = reconciled.plan
        for warning in plan.warnings:
            log.warning("provider env: %s", warning)
        with stage("apply"):
            REDACTOR.add(*(item.value for item in plan.assignments if item.secret))
            agent = plan
            if self.agent_plan is not None:
                agent = self.agent_plan(plan)
                REDACTOR.add(*(item.value for item in agent.assignments if item.secret))
                # the CLI inherits this process's environment: no provider key in it
                for name in key_variables(reconciled.arms):
                    os.environ.pop(name, None)
            apply_plan(agent, os.environ)
        self.plan = plan
        log.info(
            "provider %s, model %s, credential %s",
            plan.provider,
            plan.model,
            plan.credential.fingerprint if plan.credential else "-",
        )
        with stage("adapter load"):
            adapter_class = await anyio.to_thread.run_sync(discover_adapter, settings, config)
            adapter = adapter_class()
        context = AdapterContext(
            settings=settings,
            config=config,
            plan=agent,
            health=self.health,
            status=self.status,
            redact=REDACTOR,
            spawn=self.spawn,
            calls_observed=self.agent_plan is not None,
            token=self.token,
            direct=self.direct if self.agent_plan is not None else None,
        )
        self.adapter_name = adapter.name
        await self.before_start(adapter, context)
        self.starting = adapter
        with stage("adapter start"), anyio.fail_after(adapter.start_timeout):
            await adapter.start(context)
        self.starting = None
        return Booted(config, plan, adapter, context)

    async def _abandon(self) -> None:
        if self.starting is not None:
            await stop_adapter(self.starting)  # it may have half started
            self.starting = None


async def stop_adapter(adapter: BaseAdapter, deadline: float | None = None) -> None:
    """``adapter.stop()``, shielded, bounded by its ``stop_timeout`` and never past
    ``deadline`` (the shutdown budget's)."""
    limit = anyio.current_time() + adapter.stop_timeout
    with anyio.CancelScope(shield=True) as scope:
        scope.deadline = limit if deadline is None else min(limit, deadline)
        try:
            await adapter.stop()
        except Exception:
            log.exception("adapter stop failed")
    if scope.cancelled_caught:
        log.warning("adapter stop did not finish in time; abandoned")


def collect_again() -> None:
    """Turn the garbage collector back on if ``run`` turned it off for the boot; what the
    boot built stays for the process's life, so it is frozen out of every collection."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


class BootWork:
    """The boot's own work (the first register, the first probe with its SDK import of
    ~1 s), run with the garbage collector off when ``run`` turned it off: it comes
    back when all of it is done, and ``quiet`` is set then (the gateway waits for it)."""

    def __init__(self) -> None:
        self._pending: set[str] = set()
        self.quiet = anyio.Event()

    def add(self, name: str) -> None:
        self._pending.add(name)

    def done(self, name: str) -> None:
        self._pending.discard(name)
        if not self._pending:
            collect_again()
            self.quiet.set()
