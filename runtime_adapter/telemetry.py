"""OpenTelemetry traces and metrics, configured only by the standard ``OTEL_*`` variables.

Off and free unless an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``
or the per-signal ``..._TRACES_ENDPOINT`` / ``..._METRICS_ENDPOINT``, or
``OTEL_TRACES_EXPORTER=otlp``) and ``OTEL_SDK_DISABLED`` is not true: until then
nothing here imports opentelemetry, starts a thread or exports anything. The SDK
and the OTLP/HTTP exporter come with the ``otel`` extra.

Every attribute and event text goes through the process's redactor, exactly as
log lines do: a span never carries a secret value.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anyio

__all__ = [
    "BootTracing",
    "active",
    "count",
    "emit_stages",
    "enabled",
    "observe",
    "record_exception",
    "remote_parent",
    "set_attributes",
    "setup",
    "shutdown",
    "span",
    "traceparent_context",
]

log = logging.getLogger(__name__)

_state: dict[str, Any] = {}
_redact: Callable[[str], str] = str


EXPORT_TIMEOUT = 2.0  # seconds per OTLP export


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for export."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in ("true", "1", "yes"):
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip()
        or env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "otlp"
    )


def active() -> bool:
    return "tracer" in _state


def setup(resource: Mapping[str, str], redact: Callable[[str], str]) -> bool:
    """Start the SDK when ``enabled()``; ``resource`` adds the workspace's attributes
    (id, template, provider, model: never a secret). True when telemetry is on."""
    global _redact
    if active() or not enabled():
        return active()
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_* asks for telemetry but the SDK is not installed "
            "(pip install 'runtime-adapter[otel]'); continuing without it"
        )
        return False
    _redact = redact
    attributes = {key: _redact(str(value)) for key, value in resource.items() if value}
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by Resource.create itself
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes.setdefault("service.name", "runtime-adapter")
    res = Resource.create(attributes)
    # no atexit export (the runtime's shutdown flushes, bounded) and short exporter
    # timeouts: a collector that accepts and never answers must not hold the exit
    provider = TracerProvider(resource=res, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(timeout=EXPORT_TIMEOUT)))
    meters = MeterProvider(
        resource=res,
        metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter(timeout=EXPORT_TIMEOUT))],
        shutdown_on_exit=False,
    )
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(meters)
    meter = metrics.get_meter("runtime_adapter")
    _state.update(
        tracer=trace.get_tracer("runtime_adapter"),
        provider=provider,
        meters=meters,
        instruments={
            "heartbeat.duration": meter.create_histogram(
                "runtime_adapter.heartbeat.duration", unit="s", description="heartbeat latency"
            ),
            "heartbeat.failures": meter.create_counter(
                "runtime_adapter.heartbeat.failures", description="failed heartbeats by kind"
            ),
            "llm.outcomes": meter.create_counter(
                "runtime_adapter.llm.outcomes", description="LLM call outcomes by kind (§8)"
            ),
            "gen_ai.client.operation.duration": meter.create_histogram(
                "gen_ai.client.operation.duration", unit="s", description="agent turn duration"
            ),
            "gen_ai.server.time_to_first_token": meter.create_histogram(
                "gen_ai.server.time_to_first_token", unit="s", description="LLM first token"
            ),
            "gen_ai.client.token.usage": meter.create_histogram(
                "gen_ai.client.token.usage", unit="{token}", description="tokens per turn"
            ),
            "active_tasks": meter.create_up_down_counter(
                "runtime_adapter.active_tasks", description="tasks in progress"
            ),
        },
    )
    log.info("OpenTelemetry export on (OTLP/HTTP)")
    return True


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: _redact(value) if isinstance(value, str) else value
        for key, value in attributes.items()
        if value is not None
    }


@contextmanager
def span(name: str, parent: Any = None, **attributes: Any) -> Iterator[Any]:
    """A span when telemetry is on (``None`` otherwise); attributes are redacted."""
    tracer = _state.get("tracer")
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, context=parent, attributes=_clean(attributes)) as s:
        yield s


def set_attributes(current: Any, **attributes: Any) -> None:
    if current is not None:
        current.set_attributes(_clean(attributes))


def record_exception(current: Any, error: BaseException) -> None:
    """An error event on ``current``: its text redacted, never the raw exception."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    message = _redact(f"{type(error).__name__}: {error}")
    current.add_event(
        "exception", {"exception.type": type(error).__name__, "exception.message": message}
    )
    current.set_status(Status(StatusCode.ERROR, message[:200]))


def count(name: str, value: float = 1, **attributes: Any) -> None:
    instrument = _state.get("instruments", {}).get(name)
    if instrument is not None:
        instrument.add(value, _clean(attributes))


def observe(name: str, value: float, **attributes: Any) -> None:
    instrument = _state.get("instruments", {}).get(name)
    if instrument is not None:
        instrument.record(value, _clean(attributes))


@contextmanager
def remote_parent(headers: Mapping[str, str]) -> Iterator[None]:
    """Make an incoming W3C ``traceparent`` the current context for this request, so a
    platform's trace continues into the workspace (tasks started here inherit it)."""
    parent = traceparent_context(headers)
    if parent is None:
        yield
        return
    from opentelemetry import context

    token = context.attach(parent)
    try:
        yield
    finally:
        context.detach(token)


def emit_stages(name: str, stages: list[tuple[str, int, int, str]], **attributes: Any) -> None:
    """Spans for work timed before the SDK started (the boot): a parent ``name`` and one
    child per (stage, start ns, end ns, outcome)."""
    tracer = _state.get("tracer")
    if tracer is None or not stages:
        return
    from opentelemetry import trace

    root = tracer.start_span(name, start_time=stages[0][1], attributes=_clean(attributes))
    parent = trace.set_span_in_context(root)
    for stage, start, end, outcome in stages:
        child = tracer.start_span(
            f"boot stage {stage}",
            context=parent,
            start_time=start,
            attributes={"runtime_adapter.stage": stage, "runtime_adapter.outcome": outcome},
        )
        child.end(end_time=end)
    root.end(end_time=max(end for _, _, end, _ in stages))


def traceparent_context(headers: Mapping[str, str]) -> Any:
    """The OpenTelemetry context of an incoming W3C ``traceparent`` (None when off)."""
    if not active() or "traceparent" not in headers:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(carrier=dict(headers))


def shutdown(timeout: float = 2.0) -> None:
    """Flush and stop the exporters within ``timeout`` (part of the shutdown budget).
    The SDK's flush does not bound itself against a collector that never answers, so it
    runs in a daemon thread that is abandoned, not waited for, when time is up."""
    provider, meters = _state.pop("provider", None), _state.pop("meters", None)
    _state.clear()
    millis = int(timeout * 1000)

    def stop() -> None:
        if provider is not None:
            provider.force_flush(millis)
            provider.shutdown()
        if meters is not None:
            meters.force_flush(millis)
            meters.shutdown(millis)

    worker = threading.Thread(target=stop, name="otel-shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        log.warning("telemetry: the collector did not take the last export in %.1f s", timeout)


class BootTracing:
    """Telemetry for one process: started when OTEL_* asks for it (the SDK imported in
    a worker thread, the resource naming this workspace), the first boot's stages
    emitted once as spans, and the exporters flushed at shutdown."""

    def __init__(self, workspace_id: str, redact: Callable[[str], str]) -> None:
        self.workspace_id, self.redact = workspace_id, redact
        self._reported = False

    async def start(self, template: str, provider: str, model: str) -> None:
        if not enabled():
            return
        resource = {
            "workspace.id": self.workspace_id,
            "runtime_adapter.template": template,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        await anyio.to_thread.run_sync(setup, resource, self.redact)

    def report_boot(self, stages: list[tuple[str, int, int, str]]) -> None:
        if active() and not self._reported:
            self._reported = True
            emit_stages("boot", stages, **{"workspace.id": self.workspace_id})

    async def stop(self) -> None:
        if active():
            await anyio.to_thread.run_sync(shutdown, 1.5, abandon_on_cancel=True)
