"""OpenTelemetry through a local OTLP/HTTP receiver, decoded with opentelemetry-proto.

The invariants: with no ``OTEL_*`` variable nothing of opentelemetry is imported;
with an endpoint, the boot's stages, heartbeats and, through the claude-code
template, a task span with the ``gen_ai`` attributes arrive, the task continuing
the trace of the ``traceparent`` the caller sent; no span carries a secret.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runtime_adapter import fingerprint
from runtime_adapter.testing import (
    FakeLLM,
    PlatformEmulator,
    free_port,
    message_send,
    serve_in_thread,
)

from .conftest import clean_env
from .harness import KEY, WS, Process, wait_for
from .test_claude_cli import CLI
from .test_claude_code_template import TEMPLATE

pytestmark = pytest.mark.slow
HAVE_PROTO = importlib.util.find_spec("opentelemetry.proto") is not None


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    resource: dict[str, Any]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


@dataclass
class Receiver:
    spans: list[Span] = field(default_factory=list)
    metrics: set[str] = field(default_factory=set)
    raw: bytearray = field(default_factory=bytearray)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def traces(self, request: Request) -> Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = await request.body()
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        with self.lock:
            self.raw += body
            for resource_spans in message.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for s in scope.spans:
                        self.spans.append(
                            Span(
                                s.name,
                                s.trace_id.hex(),
                                s.span_id.hex(),
                                s.parent_span_id.hex(),
                                {a.key: _value(a.value) for a in s.attributes},
                                [{a.key: _value(a.value) for a in e.attributes} for e in s.events],
                                resource,
                            )
                        )
        return Response(status_code=200)

    async def metric(self, request: Request) -> Response:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )

        body = await request.body()
        message = ExportMetricsServiceRequest()
        message.ParseFromString(body)
        with self.lock:
            self.raw += body
            for rm in message.resource_metrics:
                for scope in rm.scope_metrics:
                    self.metrics.update(m.name for m in scope.metrics)
        return Response(status_code=200)

    def named(self, name: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.name == name]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    sink = Receiver()
    app = Starlette(
        routes=[
            Route("/v1/traces", sink.traces, methods=["POST"]),
            Route("/v1/metrics", sink.metric, methods=["POST"]),
        ]
    )
    with serve_in_thread(app) as url:
        yield sink, url


def test_without_otel_variables_nothing_of_opentelemetry_is_imported() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, runtime_adapter.lifecycle, runtime_adapter.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))",
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(not HAVE_PROTO or CLI is None, reason="needs opentelemetry-proto and the CLI")
def test_boot_heartbeat_and_a_task_span_continuing_the_callers_trace(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    sink, otlp = receiver
    emulator, llm = PlatformEmulator(), FakeLLM(reply="traced")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "config.yaml").write_text((TEMPLATE / "config.yaml").read_text())
    (tmp_path / "workspace").mkdir()
    with serve_in_thread(emulator.app) as platform_url, serve_in_thread(llm.app) as llm_url:
        port = free_port()
        process = Process(
            {
                "WORKSPACE_ID": WS,
                "PLATFORM_URL": platform_url,
                "WORKSPACE_CONFIG_PATH": str(configs),
                "WORKSPACE_DIR": str(tmp_path / "workspace"),
                "HOME": str(tmp_path),
                "PORT": str(port),
                "MINIMAX_API_KEY": KEY,
                "MINIMAX_BASE_URL": llm_url + "/anthropic",
                "HEARTBEAT_INTERVAL_SECONDS": "1",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
                "OTEL_SERVICE_NAME": "workspace-under-test",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_METRIC_EXPORT_INTERVAL": "500",
            },
            port,
        )
        try:
            wait_for(lambda: sink.named("heartbeat"), timeout=30)
            trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
            answer = httpx.post(
                f"http://127.0.0.1:{port}/",
                json=message_send("say hi", message_id="m-otel"),
                headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
                timeout=120,
            )
            assert answer.json()["result"]["status"]["state"] == "completed"
            task = wait_for(lambda: sink.named("invoke_agent claude-code"), timeout=15)[0]
            wait_for(lambda: "gen_ai.client.operation.duration" in sink.metrics, timeout=15)
            # the gateway's span of each LLM call, its usage read off the answer (§13)
            calls = wait_for(lambda: sink.named("chat MiniMax-M2.7"), timeout=15)
        finally:
            assert process.stop() == 0
    stages = {s.name for s in sink.spans if s.name.startswith("boot stage ")}
    assert {"boot stage volume", "boot stage env plan", "boot stage register"} <= stages
    boot = sink.named("boot")[0]
    assert all(s.parent_id == boot.span_id for s in sink.spans if s.name.startswith("boot stage "))
    beat = sink.named("heartbeat")[0]
    assert beat.attributes["http.response.status_code"] == 200
    # the caller's trace continues: same trace, and the task's ancestry reaches the
    # caller's span (a2a-sdk's own request spans may sit in between)
    assert task.trace_id == trace_id
    by_id = {s.span_id: s for s in sink.spans}
    ancestor, chain = task, []
    while ancestor.parent_id in by_id:
        ancestor = by_id[ancestor.parent_id]
        chain.append(ancestor.name)
    assert ancestor.parent_id == parent_id, chain
    assert task.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert task.attributes["gen_ai.provider.name"] == "minimax"
    assert task.attributes["gen_ai.request.model"] == "MiniMax-M2.7"
    assert task.attributes["gen_ai.usage.output_tokens"] >= 1
    streamed = [c for c in calls if "gen_ai.server.time_to_first_token" in c.attributes]
    assert streamed, [c.attributes for c in calls]
    assert streamed[0].attributes["gen_ai.usage.output_tokens"] == 1
    assert streamed[0].attributes["gen_ai.provider.name"] == "minimax"
    resource = task.resource
    assert resource["service.name"] == "workspace-under-test"
    assert resource["workspace.id"] == WS
    assert resource["runtime_adapter.template"] == "claude-code"
    assert {"runtime_adapter.heartbeat.duration", "runtime_adapter.llm.outcomes"} <= sink.metrics
    assert KEY.encode() not in bytes(sink.raw)


@pytest.mark.skipif(not HAVE_PROTO, reason="needs opentelemetry-proto")
def test_an_error_event_carrying_the_key_is_redacted(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    sink, otlp = receiver
    emulator = PlatformEmulator()
    llm = FakeLLM(refuse_key=True, echo_credential=True)  # quotes the key in its 401
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "config.yaml").write_text("model: MiniMax-M2\n")
    with serve_in_thread(emulator.app) as platform_url, serve_in_thread(llm.app) as llm_url:
        process = echo_runtime(
            platform_url,
            configs,
            {
                "MINIMAX_API_KEY": KEY,
                "MINIMAX_BASE_URL": llm_url,
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            },
        )
        try:
            probe = wait_for(lambda: sink.named("credential probe"), timeout=30)[0]
        finally:
            assert process.stop() == 0
    assert probe.attributes["error.type"] == "auth_failed"
    message = probe.events[0]["exception.message"]
    assert fingerprint(KEY) in message
    assert KEY.encode() not in bytes(sink.raw)


def echo_runtime(platform_url: str, configs: Path, env: dict[str, str]) -> Process:
    """``run`` with the echo adapter on a free port, plus ``env``."""
    port = free_port()
    base = {
        "WORKSPACE_ID": WS,
        "PLATFORM_URL": platform_url,
        "WORKSPACE_CONFIG_PATH": str(configs),
        "ADAPTER_MODULE": "runtime_adapter.testing.echo",
        "PORT": str(port),
    }
    return Process({**base, **env}, port)


@pytest.mark.parametrize("collector", ["hung", "dead"])
def test_shutdown_takes_under_ten_seconds_whatever_the_collector_does(
    tmp_path: Path, collector: str
) -> None:
    """DESIGN §9 with telemetry on: the real OTLP exporters against a collector that
    accepts connections and never answers (or is not there at all); SIGTERM -> exit 0
    within 10 s, the flush abandoned rather than waited for."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    if collector == "dead":
        listener.close()  # connections refused
    else:
        threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "config.yaml").write_text("name: traced\n")
    emulator = PlatformEmulator()
    try:
        with serve_in_thread(emulator.app) as platform_url:
            process = echo_runtime(
                platform_url,
                configs,
                {
                    "HEARTBEAT_INTERVAL_SECONDS": "1",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                    "OTEL_BSP_SCHEDULE_DELAY": "100",
                    "OTEL_METRIC_EXPORT_INTERVAL": "300",
                },
            )
            wait_for(lambda: len(emulator.calls_to("/registry/heartbeat")) >= 3, timeout=30)
            assert process.stop() == 0, process.output[-2000:]
            assert process.stopped_within(10)
    finally:
        stop.set()
        for connection in held:
            connection.close()
        listener.close()
