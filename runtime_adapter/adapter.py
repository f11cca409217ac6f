"""The adapter API for template authors (DESIGN §10), and adapter discovery.

A template subclasses ``BaseAdapter`` and overrides only what differs; a
subclass that sets nothing but ``name`` is a valid adapter. Discovery is
``ADAPTER_MODULE`` (``pkg.module`` or ``pkg.module:Class``) or the entry
point in group ``runtime_adapter.adapters`` named after config ``runtime``;
writing a template needs no change to this package.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard, final

import anyio

from . import telemetry
from .envplan import EnvPlan
from .errors import ConfigError
from .health import Health, LLMContext, SampleError, classify, classify_status
from .heartbeat import RuntimeStatus
from .settings import Settings
from .volume import SkillConfig, WorkspaceConfig

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

__all__ = ["AdapterContext", "BaseAdapter", "discover_adapter", "load_adapter_class"]

ENTRY_POINT_GROUP = "runtime_adapter.adapters"
PROBE_TIMEOUT = 10.0
# the health operation an adapter's own reports are kept under (DESIGN §8)
ADAPTER_REPORTS = "adapter"
# the beta flag under which Anthropic's API takes a Claude subscription's OAuth token
OAUTH_BETA = "oauth-2025-04-20"
log = logging.getLogger(__name__)


@dataclass
class AdapterContext:
    """What an adapter is given: settings, config, the env plan, and the reporter.

    Report every LLM call's outcome with ``report_success`` / ``report_error``
    (a 401 becomes an ``auth_failed`` sample error in the next heartbeat,
    within a second), and the work in progress with ``task``.
    """

    settings: Settings
    config: WorkspaceConfig
    plan: EnvPlan
    health: Health
    status: RuntimeStatus = field(default_factory=RuntimeStatus)
    redact: Callable[[str], str] = str
    spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], object] | None = None
    # True when the runtime's LLM gateway observes every call (DESIGN §13): the gateway
    # then counts each call in error_rate, and an adapter's reports are its own sticky
    # errors, cleared by its own report_success (§8), never counted twice
    calls_observed: bool = False
    # the workspace token as the runtime holds it (in memory too, when the volume is
    # read-only): for routes that only the platform may call
    token: Callable[[], str | None] = lambda: None
    # behind the gateway: the direct plan (the real credential and base URL), for the
    # runtime's own credential probe only; never put in an environment
    direct: Callable[[], EnvPlan | None] | None = None
    _running: list[list[str]] = field(default_factory=list, repr=False)

    def start_soon(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Run ``work()`` in the runtime's task group, beside the server and heartbeat;
        it is cancelled at shutdown, and an exception it raises is logged and reported
        as ``runtime_crash`` instead of ending the process."""
        if self.spawn is None:
            raise RuntimeError("start_soon is available once the runtime runs the adapter")
        health = self.health

        async def guarded() -> None:
            try:
                await work()
            except Exception as error:
                log.exception("background work of the adapter failed")
                health.record_failure(classify(error, "runtime"), operation="adapter-task")

        self.spawn(guarded)

    @property
    def llm(self) -> LLMContext:
        return LLMContext.from_plan(self.plan)

    def report_success(self) -> None:
        """An LLM call succeeded: clears the error this adapter reported (DESIGN §8: an
        error is cleared by its own reporter) and counts in error_rate. Without the
        gateway the adapter is the only observer of calls, so it also clears the
        credential probe's error."""
        observed = self.calls_observed
        self.health.record_success("llm_call", operation=ADAPTER_REPORTS, count=not observed)
        if not observed:
            self.health.record_success("llm_probe")
            telemetry.count("llm.outcomes", kind="success")

    def report_error(self, error: BaseException) -> None:
        """An LLM call failed: classified into a structured sample error (redacted),
        held until this adapter's next ``report_success``."""
        failure = classify(error, "llm_call", self.llm, redact=self.redact)
        self._failed(failure)

    def report_status(self, status: int, message: str) -> None:
        """An LLM call failed with HTTP ``status`` (seen in a CLI's events, say)."""
        self._failed(classify_status(status, message, "llm_call", self.llm, redact=self.redact))

    def _failed(self, failure: SampleError) -> None:
        observed = self.calls_observed
        self.health.record_failure(failure, operation=ADAPTER_REPORTS, count=not observed)
        if not observed:  # behind the gateway, the gateway counts every call
            telemetry.count("llm.outcomes", kind=failure.kind)

    @contextmanager
    def task(self, description: str) -> Iterator[None]:
        """Count one task as active for the duration of the block; ``current_task`` is
        the latest task still running, however overlapping tasks finish. A caller's
        text goes into every heartbeat: redacted first, then cut."""
        entry = [self.redact(description)[:200]]  # a fresh object: equal descriptions stay distinct
        self._running.append(entry)
        telemetry.count("active_tasks", 1)
        self.status.active_tasks = len(self._running)
        self.status.current_task = entry[0]
        try:
            yield
        finally:
            self._running.remove(entry)
            telemetry.count("active_tasks", -1)
            self.status.active_tasks = len(self._running)
            self.status.current_task = self._running[-1][0] if self._running else ""


class BaseAdapter:
    """Base class of every runtime adapter.

    Contract (what is called when):

    - ``probe(ctx)`` once after the provider env is applied, before ``start``:
      one cheap LLM request, no retries, bounded by ``PROBE_TIMEOUT``. Raise
      to report (the exception is classified); return to pass. The default
      sends one 1-token message through the official anthropic SDK, which
      reads the applied variables itself.
    - ``start(ctx)`` once; return when the agent can take work (bounded by
      ``start_timeout``). Long-running work goes into ``ctx.start_soon``.
      An exception is a failed boot: reported, and retried when the config
      volume or secrets change.
    - ``routes(ctx)`` after ``start``: Starlette routes (A2A JSON-RPC ...)
      served next to ``/health`` and the agent card.
    - ``stop()`` once at shutdown, bounded by ``stop_timeout``; it may be
      cancelled.

    Identity (``name``, ``display_name``, ``description``) and ``skills``
    override the config's values in the agent card. A ``providers.yaml`` next
    to the adapter's module adds or overrides provider arms.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str | None] = None
    description: ClassVar[str | None] = None
    streaming: ClassVar[bool] = False  # the card's capabilities.streaming unless config says
    start_timeout: ClassVar[float] = 60.0
    stop_timeout: ClassVar[float] = 5.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(cls.__dict__.get("name", cls.name), str):
            raise TypeError(f"{cls.__name__}.name must be a string")

    def skills(self, config: WorkspaceConfig) -> Sequence[SkillConfig]:
        """The card's skills; default: the config's ``skills``."""
        return config.skills

    async def probe(self, ctx: AdapterContext) -> None:
        """The credential probe (see the class docstring). Skipped without a provider.

        The model comes from the plan (the arm's small model, else the configured
        one), never from this code. An OAuth token (``anthropic-oauth``) is sent as
        ``Authorization: Bearer`` with the OAuth beta header, the way the Claude
        Code CLI sends it; the SDK alone reads only API keys.
        """
        plan = ctx.plan
        if plan.provider is None or plan.arm is None:
            return
        model = plan.probe_model
        if model is None:
            log.info("credential probe skipped: arm %s names no API model id", plan.provider)
            return
        # imported only now (after the env is applied), and in a worker thread: the
        # import takes most of a second, and the heartbeat shares this event loop
        anthropic = await anyio.to_thread.run_sync(importlib.import_module, "anthropic")

        # the probe's outcome is its own (llm_probe); behind the gateway it goes straight
        # to the provider (below), so the gateway never sees it
        headers: dict[str, str] = {}
        options: dict[str, Any] = {"max_retries": 0, "timeout": PROBE_TIMEOUT}
        direct = ctx.direct() if ctx.direct is not None else None
        if direct is not None:
            # the runtime's own request: straight to the provider with the credential
            # the gateway would use, not through the gateway (which serves only once
            # the first register is out) - the agent's env holds no credential anyway
            options.update(_direct_options(direct))
        elif plan.arm.auth == "oauth":
            options["auth_token"] = os.environ.get("CLAUDE_CODE_OAUTH_TOKEN")
        if plan.arm.auth == "oauth":
            headers["anthropic-beta"] = OAUTH_BETA
        options["default_headers"] = headers
        async with anthropic.AsyncAnthropic(**options) as client:
            await client.messages.create(
                model=model,
                max_tokens=1,
                messages=[{"role": "user", "content": "ping"}],
            )

    async def start(self, ctx: AdapterContext) -> None:
        """Start the agent; the default has nothing to start."""

    def routes(self, ctx: AdapterContext) -> list[BaseRoute]:
        """Extra HTTP routes; the default has none."""
        return []

    async def stop(self) -> None:
        """Stop the agent; the default has nothing to stop."""

    @final
    async def run_probe(self, ctx: AdapterContext) -> bool:
        """Run ``probe`` bounded and classified; True when it passed."""
        with telemetry.span(
            "credential probe",
            **{
                "gen_ai.provider.name": ctx.plan.provider,
                "gen_ai.request.model": ctx.plan.probe_model,
            },
        ) as current:
            try:
                if type(self).probe is BaseAdapter.probe and ctx.plan.probe_model:
                    # the SDK's import (most of a second, far more on a busy machine) is
                    # not the network exchange the deadline bounds: it comes first
                    await anyio.to_thread.run_sync(importlib.import_module, "anthropic")
                with anyio.fail_after(PROBE_TIMEOUT + 2):
                    await self.probe(ctx)
            except Exception as error:  # any failure is reported, never raised
                failure = classify(error, "llm_probe", ctx.llm, redact=ctx.redact, now=time.time())
                ctx.health.record_failure(failure)
                telemetry.set_attributes(current, **{"error.type": failure.kind})
                telemetry.record_exception(current, error)
                return False
        ctx.health.record_success("llm_probe")
        return True


def _direct_options(plan: EnvPlan) -> dict[str, Any]:
    """The probe's client options from the direct plan; an explicit credential makes the
    SDK read none from the environment (where only the gateway's token is)."""
    values = plan.values()
    options: dict[str, Any] = {"base_url": plan.base_url or "https://api.anthropic.com"}
    if values.get("ANTHROPIC_API_KEY"):
        options["api_key"] = values["ANTHROPIC_API_KEY"]
    else:
        options["auth_token"] = values.get("ANTHROPIC_AUTH_TOKEN") or values.get(
            "CLAUDE_CODE_OAUTH_TOKEN"
        )
    return options


def _adapter_in(module: Any, where: str) -> type[BaseAdapter]:
    """The one adapter ``module`` exports at its top level: its ``Adapter`` name, else
    the adapters in its ``__all__``, else those defined in it (or, for a package, in
    its submodules and imported to the top), else those imported from elsewhere; two
    at the first level that has any are a config error naming both."""
    explicit = getattr(module, "Adapter", None)
    if _is_adapter(explicit):
        return explicit
    top = {name: value for name, value in vars(module).items() if _is_adapter(value)}
    exported = getattr(module, "__all__", None)
    own = module.__name__
    levels = [
        [value for name, value in top.items() if name in exported]
        if isinstance(exported, list | tuple)
        else [],
        [value for value in top.values() if f"{value.__module__}.".startswith(f"{own}.")],
        list(top.values()),
    ]
    for level in levels:
        found = list(dict.fromkeys(level))  # an adapter under two names is one adapter
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in found))
            raise ConfigError(
                f"{where} exports more than one BaseAdapter subclass: found {names}",
                hint="name the one to run: ADAPTER_MODULE=pkg.module:ClassName",
                variable="ADAPTER_MODULE",
            )
    raise ConfigError(
        f"{where} exports no BaseAdapter subclass: found none (defined, imported or in __all__)",
        hint="point ADAPTER_MODULE at the module that defines the adapter, or name the "
        "class: ADAPTER_MODULE=pkg.module:ClassName",
        variable="ADAPTER_MODULE",
    )


def _is_adapter(value: object) -> TypeGuard[type[BaseAdapter]]:
    return isinstance(value, type) and issubclass(value, BaseAdapter) and value is not BaseAdapter


def load_adapter_class(spec: str) -> type[BaseAdapter]:
    """Import ``pkg.module`` or ``pkg.module:Class`` and return the adapter class."""
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"adapter module {module_name} cannot be imported: {error}",
            hint="check ADAPTER_MODULE and that the template is installed or on PYTHONPATH",
            variable="ADAPTER_MODULE",
        ) from None
    if not class_name:
        return _adapter_in(module, f"module {module_name}")
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseAdapter)):
        raise ConfigError(
            f"{spec} is not a BaseAdapter subclass",
            hint="point ADAPTER_MODULE at a class deriving from runtime_adapter.BaseAdapter",
            variable="ADAPTER_MODULE",
        )
    return cls


def discover_adapter(settings: Settings, config: WorkspaceConfig | None) -> type[BaseAdapter]:
    """``ADAPTER_MODULE``, else the entry point named after config ``runtime``."""
    if settings.adapter_module:
        return load_adapter_class(settings.adapter_module)
    runtime = config.runtime if config is not None else None
    if not runtime:
        raise ConfigError(
            "no adapter: ADAPTER_MODULE is not set and config.yaml has no runtime:",
            hint="set ADAPTER_MODULE=pkg.module[:Class] or runtime: in config.yaml",
            variable="ADAPTER_MODULE",
        )
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=runtime):
        return load_adapter_class(entry.value)
    known = sorted(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))
    raise ConfigError(
        f"no adapter is installed for runtime {runtime!r} "
        f"(entry points in {ENTRY_POINT_GROUP}: {', '.join(known) or 'none'})",
        hint="install the template's package, or set ADAPTER_MODULE",
        variable="ADAPTER_MODULE",
        field="runtime",
    )
