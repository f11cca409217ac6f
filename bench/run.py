"""runtime-adapter benchmarks: ``python -m bench.run [--quick] [--only NAME ...]``.

Each benchmark runs the real thing (the CLI in a subprocess against the
platform emulator and a fake LLM on loopback, or 1,000 heartbeat loops in
virtual time), prints one table row per metric with its target, and all rows
go to ``bench/results/latest.json``. These are measurements, not tests: a
missed target is reported, never hidden.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx

from runtime_adapter import fingerprint
from runtime_adapter.health import Health
from runtime_adapter.heartbeat import Heartbeat
from runtime_adapter.platform import PlatformClient
from runtime_adapter.testing import (
    FakeLLM,
    PlatformEmulator,
    VirtualTime,
    free_port,
    message_send,
    serve_in_thread,
    wait_until,
)
from runtime_adapter.tokens import TokenStore

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
KEY = "bench-minimax-key-0001"


@dataclass
class Row:
    benchmark: str
    metric: str
    value: float
    unit: str
    target: str
    met: bool | None
    detail: str = ""


def _wait(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    return wait_until(condition, timeout, poll=0.002)


# another source tree whose runtime the subprocesses run instead (``--tree DIR``, for
# ``compare``): its package and its template come first on their import path
_TREE: list[Path | None] = [None]


def _clean_env() -> dict[str, str]:
    drop = re.compile(
        r"(ANTHROPIC_|CLAUDE_|MINIMAX_|MOONSHOT_|KIMI_|ZAI_|GLM_|DEEPSEEK_|LLM_PROXY)"
    )
    env = {k: v for k, v in os.environ.items() if not drop.match(k)}
    tree = _TREE[0]
    if tree is not None:
        paths = [str(tree), str(tree / "templates" / "claude-code"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


@contextmanager
def _services(**emulator: Any) -> Iterator[tuple[PlatformEmulator, str, FakeLLM, str]]:
    platform_emulator = PlatformEmulator(**emulator)
    llm = FakeLLM()
    with serve_in_thread(platform_emulator.app) as url, serve_in_thread(llm.app) as llm_url:
        yield platform_emulator, url, llm, llm_url


@contextmanager
def _runtime(
    workspace_id: str, platform_url: str, llm_url: str | None, config: str, **extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    with tempfile.TemporaryDirectory(prefix="ra-bench-") as tmp:
        configs = Path(tmp)
        (configs / "config.yaml").write_text(config)
        env = {
            **_clean_env(),
            "WORKSPACE_ID": workspace_id,
            "PLATFORM_URL": platform_url,
            "WORKSPACE_CONFIG_PATH": str(configs),
            "ADAPTER_MODULE": "runtime_adapter.testing.echo",
            "PORT": str(free_port()),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            **extra,
        }
        if llm_url is not None:
            env.update(MINIMAX_API_KEY=KEY, MINIMAX_BASE_URL=llm_url)
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime_adapter", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"n={len(values)} min={ordered[0]:.0f} p90={p90:.0f} max={ordered[-1]:.0f}"


def _first_register(emulator: PlatformEmulator, workspace: str) -> Any:
    return next(
        (
            c
            for c in emulator.calls_to("/registry/register")
            if c.status == 200 and c.body.get("id") == workspace
        ),
        None,
    )


def _auth_failed_beat(emulator: PlatformEmulator, workspace: str) -> Any:
    return next(
        (
            c
            for c in emulator.calls_to("/registry/heartbeat")
            if c.body.get("workspace_id") == workspace
            and (c.body.get("sample_error_detail") or {}).get("kind") == "auth_failed"
        ),
        None,
    )


# -- 1. import time and boot latency ---------------------------------------------------


_RUN_IMPORTS = """
import gc, time
gc.disable()  # as `run` does until its first register
started = time.perf_counter()
import runtime_adapter.lifecycle, runtime_adapter.logs, runtime_adapter.settings
print((time.perf_counter() - started) * 1000)
"""


def bench_import(runs: int) -> list[Row]:
    """``import runtime_adapter`` (what a library user or test pays), and what ``run``
    imports before its boot starts (the floor under the boot figure)."""
    library, before_boot = [], []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import runtime_adapter"],
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(
            line
            for line in reversed(done.stderr.splitlines())
            if line.rstrip().endswith("| runtime_adapter")
        )
        library.append(int(line.split("|")[1]) / 1000)
        done = subprocess.run(
            [sys.executable, "-c", _RUN_IMPORTS], capture_output=True, text=True, check=True
        )
        before_boot.append(float(done.stdout))
    return [
        Row(
            "import",
            "import runtime_adapter",
            statistics.median(library),
            "ms",
            "<= 150",
            statistics.median(library) <= 150,
            _summary(library),
        ),
        Row(
            "import",
            "run's imports before its boot (lifecycle, settings, logs)",
            statistics.median(before_boot),
            "ms",
            "-",
            None,
            _summary(before_boot) + "; collector off, as in run; pydantic(-settings), httpx, "
            "anyio, yaml",
        ),
    ]


def _boot_times(
    emulator: PlatformEmulator,
    url: str,
    llm_url: str | None,
    runs: int,
    name: str,
    **extra: str,
) -> list[float]:
    """ms from exec to the first accepted register, ``runs`` times; with ``llm_url`` the
    config names a model, so the credential probe runs."""
    samples = []
    config = "model: MiniMax-M2\n" if llm_url else "name: no LLM\n"
    for index in range(runs):
        workspace = f"{name}-{index}"
        started = time.time()
        with _runtime(workspace, url, llm_url, config, **extra):
            # the emulator stamps the call; a slower poll only spares the CPU
            call = wait_until(partial(_first_register, emulator, workspace), 30, poll=0.02)
        samples.append((call.time - started) * 1000)
    return samples


def bench_boot(runs: int) -> list[Row]:
    rows = []
    for probe in (False, True):
        with _services() as (emulator, url, _llm, llm_url):
            name = f"bench-boot-{int(probe)}"
            samples = _boot_times(emulator, url, llm_url if probe else None, runs, name)
        median = statistics.median(samples)
        rows.append(
            Row(
                "boot",
                f"start -> first register ({'with' if probe else 'without'} probe)",
                median,
                "ms",
                "<= 300",
                median <= 300,
                _summary(samples),
            )
        )
    return rows


# -- 2. failure-to-report latency -----------------------------------------------------


def bench_report(runs: int) -> list[Row]:
    samples = []
    with _services() as (emulator, url, llm, llm_url):
        llm.refuse_key = True
        for index in range(runs):
            workspace = f"bench-report-{index}"
            before = len(llm.requests)
            with _runtime(workspace, url, llm_url, "model: MiniMax-M2\n"):
                beat = _wait(partial(_auth_failed_beat, emulator, workspace))
                refused = llm.requests[before]
            samples.append((beat.time - refused.time) * 1000)
    median = statistics.median(samples)
    return [
        Row(
            "report",
            "401 answered -> auth_failed held by platform",
            median,
            "ms",
            "<= 1000",
            max(samples) <= 1000,
            _summary(samples),
        )
    ]


# -- 3. restart recovery (the container-id hostname incident) ------------------------


def bench_recovery(runs: int) -> list[Row]:
    samples = []
    card = {"name": "known", "description": "", "version": "1.0.0"}
    with _services(deploy_mode="saas", resolver=lambda host: []) as (emulator, url, _l, _u):
        for index in range(runs):
            workspace = f"bench-recovery-{index}"
            with tempfile.TemporaryDirectory() as tmp:
                token_dir = Path(tmp)
                emulator.provision(workspace, url="http://127.0.0.1:32771")
                emulator.workspaces[workspace].agent_card = card
                online: list[float] = []

                def watch(
                    call: Any, workspace: str = workspace, online: list[float] = online
                ) -> None:
                    view = emulator.view(workspace)
                    if (
                        view
                        and view["status"] == "online"
                        and view["register_failure"] is None
                        and emulator.calls_to("/registry/register")
                        and not online
                    ):
                        online.append(time.time())

                emulator.on_call = watch
                token = emulator.workspaces[workspace].token
                assert token is not None
                (token_dir / ".auth_token").write_text(token)
                (token_dir / "config.yaml").write_text("name: recovering\n")
                with _runtime(
                    workspace,
                    url,
                    None,
                    "name: recovering\n",
                    WORKSPACE_CONFIG_PATH=str(token_dir),
                ):
                    _wait(partial(bool, online))
                refused = next(
                    c
                    for c in emulator.calls_to("/registry/register")
                    if c.body.get("id") == workspace
                )
                samples.append((online[0] - refused.time) * 1000)
            emulator.on_call = None
    median = statistics.median(samples)
    return [
        Row(
            "recovery",
            "register refused -> status online",
            median,
            "ms",
            "<= 2000",
            max(samples) <= 2000,
            _summary(samples),
        )
    ]


# -- 4. steady state ------------------------------------------------------------------


def _proc(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def _idle_window(
    emulator: PlatformEmulator, url: str, workspace: str, seconds: float, **extra: str
) -> tuple[float, float, float, int]:
    """An idle runtime beating every second, watched for ``seconds`` once settled:
    (RSS at the start, RSS at the end in MB, CPU ms per beat, beats)."""
    with _runtime(
        workspace, url, None, "name: idle\n", HEARTBEAT_INTERVAL_SECONDS="1", **extra
    ) as process:
        _wait(lambda: len(emulator.calls_to("/registry/heartbeat")) >= 2)
        time.sleep(3)
        rss_start, cpu_start = _proc(process.pid)
        beats_start = len(emulator.calls_to("/registry/heartbeat"))
        time.sleep(seconds)
        rss, cpu = _proc(process.pid)
        beats = len(emulator.calls_to("/registry/heartbeat")) - beats_start
    return rss_start, rss, (cpu - cpu_start) * 1000 / max(beats, 1), beats


def bench_steady(seconds: float) -> list[Row]:
    with _services() as (emulator, url, _llm, _llm_url):
        rss_start, rss, per_beat, beats = _idle_window(emulator, url, "bench-steady", seconds)
    return [
        Row(
            "steady",
            "RSS of an idle runtime (echo adapter, no LLM)",
            rss,
            "MB",
            "<= 60",
            rss <= 60,
            f"at start of window {rss_start:.1f} MB",
        ),
        Row(
            "steady",
            "CPU per heartbeat (incl. idle time between)",
            per_beat,
            "ms",
            "-",
            None,
            f"{beats} beats in {seconds:.0f} s, interval 1 s",
        ),
    ]


def bench_otel(runs: int, seconds: float) -> list[Row]:
    """What telemetry costs when an exporter is on: boot to first register with the
    probe, and CPU per heartbeat, against a local OTLP/HTTP sink."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def accept(request: Any) -> Response:
        await request.body()
        return Response(status_code=200)

    sink = Starlette(routes=[Route("/v1/{signal}", accept, methods=["POST"])])
    rows = []
    with serve_in_thread(sink) as otlp, _services() as (emulator, url, _llm, llm_url):
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_METRIC_EXPORT_INTERVAL": "5000"}
        samples = _boot_times(emulator, url, llm_url, runs, "bench-otel", **otel)
        median = statistics.median(samples)
        rows.append(
            Row(
                "otel",
                "start -> first register (with probe, OTLP exporter on)",
                median,
                "ms",
                "-",
                None,
                _summary(samples),
            )
        )
        _, rss, per_beat, beats = _idle_window(emulator, url, "bench-otel-steady", seconds, **otel)
    rows += [
        Row(
            "otel",
            "CPU per heartbeat (OTLP exporter on)",
            per_beat,
            "ms",
            "-",
            None,
            f"{beats} beats in {seconds:.0f} s, interval 1 s; RSS {rss:.1f} MB",
        )
    ]
    return rows


def bench_restart(runs: int) -> list[Row]:
    """The seed-000 path: restarted on a volume whose token was just rotated, with a stale
    projection in the environment -> online at the platform with the right one."""
    samples = []
    with _services() as (emulator, url, llm, llm_url):
        for index in range(runs):
            workspace = f"bench-restart-{index}"
            with tempfile.TemporaryDirectory(prefix="ra-bench-") as tmp:
                token = emulator.provision(workspace, token_path=Path(tmp) / ".auth_token")
                (Path(tmp) / "config.yaml").write_text("model: MiniMax-M2\n")
                env = {
                    **_clean_env(),
                    "WORKSPACE_ID": workspace,
                    "PLATFORM_URL": url,
                    "WORKSPACE_CONFIG_PATH": tmp,
                    "ADAPTER_MODULE": "runtime_adapter.testing.echo",
                    "PORT": str(free_port()),
                    "LOG_LEVEL": "WARNING",
                    "MINIMAX_API_KEY": KEY,
                    "MINIMAX_BASE_URL": llm_url,
                    # what the last boot of another provider left behind
                    "ANTHROPIC_BASE_URL": "https://api.moonshot.ai/anthropic",
                    "ANTHROPIC_AUTH_TOKEN": "stale-moonshot-token",
                    "ANTHROPIC_MODEL": "kimi-k2.6",
                }
                started = time.time()
                process = subprocess.Popen(
                    [sys.executable, "-m", "runtime_adapter", "run"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    bearer = f"Bearer {fingerprint(token)}"
                    probes_before = len(llm.requests)

                    def online(w: str = workspace, b: str = bearer, n: int = probes_before) -> bool:
                        return (
                            (emulator.view(w) or {}).get("status") == "online"
                            and any(
                                c.body.get("workspace_id") == w and c.authorization == b
                                for c in emulator.calls_to("/registry/heartbeat")
                            )
                            and any(r.model == "MiniMax-M2.7-highspeed" for r in llm.requests[n:])
                        )

                    _wait(online)
                    samples.append((time.time() - started) * 1000)
                finally:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=15)
    median = statistics.median(samples)
    return [
        Row(
            "restart",
            "exec -> online, rotated token, stale projection, probe done",
            median,
            "ms",
            "<= 1500",
            median <= 1500,
            _summary(samples),
        )
    ]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _turn_waits(
    llm: FakeLLM, llm_url: str, contexts: int, warm: int, runtime_config: str, **extra: str
) -> tuple[dict[str, list[float]], float, float, int, list[float]]:
    """Messages through the claude-code template: per context one cold turn, then
    ``warm`` more; the wait from sending to the LLM's first streamed request. Also the
    runtime's idle RSS and heartbeat body size, and the live CLIs' RSS after the turns."""
    with _services() as (emulator, url, _llm, _url):
        port = free_port()
        config = (ROOT / "templates" / "claude-code" / "config.yaml").read_text()
        config = config.replace("runtime_config:\n", "runtime_config:\n" + runtime_config, 1)
        with (
            tempfile.TemporaryDirectory(prefix="ra-bench-cc-") as work,
            _runtime(
                "bench-claude-code",
                url,
                llm_url + "/anthropic",
                config,
                ADAPTER_MODULE="claude_code_adapter:ClaudeCodeAdapter",
                PORT=str(port),
                HEARTBEAT_INTERVAL_SECONDS="1",
                WORKSPACE_DIR=work,
                HOME=work,
                **extra,
            ) as process,
        ):
            _wait(lambda: len(emulator.calls_to("/registry/heartbeat")) >= 2, timeout=60)
            _wait(lambda: llm.requests, timeout=30)  # the boot's probe
            time.sleep(2)
            rss, _ = _proc(process.pid)
            body = emulator.calls_to("/registry/heartbeat")[-1].body
            size = len(json.dumps(body).encode())
            waits: dict[str, list[float]] = {"cold": [], "warm": []}
            for index in range(contexts * (1 + warm)):
                context, nth = divmod(index, 1 + warm)
                before = len(llm.requests)
                message = message_send(
                    f"turn {index}",
                    message_id=f"m-{index}",
                    context_id=f"bench-{context}",
                    request_id=index,
                )
                sent = time.time()
                httpx.post(f"http://127.0.0.1:{port}/", json=message, timeout=120)
                first = next(r for r in llm.requests[before:] if r.stream)
                waits["warm" if nth else "cold"].append((first.time - sent) * 1000)
            clis = [_proc(pid)[0] for pid in _children(process.pid)]
    return waits, rss, size, len(clis), clis


def bench_claude_code(contexts: int, warm: int) -> list[Row]:
    """The claude-code adapter loaded: idle RSS, heartbeat body size, and an A2A message's
    wait before its first LLM request, side by side for the two designs (a live CLI per
    context, the template's default, and a CLI per turn, ``keep_alive_seconds: 0``),
    against the CLI's own preparation (a live ClaudeSDKClient driven directly)."""
    from bench.sdk_client import live_waits

    llm = FakeLLM()
    with serve_in_thread(llm.app) as llm_url:
        own = live_waits(llm, llm_url + "/anthropic", 1 + warm * 2)[1:]
    llm = FakeLLM()
    with serve_in_thread(llm.app) as llm_url:
        live, rss, size, kept, cli_rss = _turn_waits(llm, llm_url, contexts, warm, "")
        spawn, *_ = _turn_waits(llm, llm_url, contexts, warm, "  keep_alive_seconds: 0\n")
    prep = statistics.median(own)
    rows = [
        Row(
            "steady",
            "RSS of an idle runtime (claude-code adapter loaded)",
            rss,
            "MB",
            "-",
            None,
            "a2a-sdk and claude-agent-sdk imported; no CLI running",
        ),
        Row(
            "steady",
            "RSS of one live (kept-alive) Claude Code CLI",
            statistics.median(cli_rss) if cli_rss else 0.0,
            "MB",
            "-",
            None,
            f"{kept} kept after the turns (max_live_sessions = max_concurrent_turns = 4)",
        ),
        Row(
            "steady",
            "heartbeat body size (claude-code card)",
            size,
            "B",
            "-",
            None,
            "the card rides on every beat",
        ),
        Row(
            "turn",
            "CLI's own request preparation (live ClaudeSDKClient, direct)",
            prep,
            "ms",
            "-",
            None,
            _summary(own) + "; prompt on stdin -> request at the LLM, no A2A",
        ),
    ]
    for design, waits in (
        ("live CLI per context", live),
        ("CLI per turn", spawn),  # keep_alive_seconds: 0, the design before
    ):
        for kind in ("cold", "warm"):
            median = statistics.median(waits[kind])
            target, met = "-", None
            if kind == "warm" and design == "live CLI per context":  # the template's default
                target, met = f"<= {prep + 100:.0f} (own + 100)", median <= prep + 100
            rows.append(
                Row(
                    "turn",
                    f"A2A message -> first LLM request ({kind}, {design})",
                    median,
                    "ms",
                    target,
                    met,
                    _summary(waits[kind]),
                )
            )
    return rows


# -- the image ------------------------------------------------------------------------


def _podman() -> tuple[list[str], dict[str, str]] | None:
    """podman and the environment scripts/container-test runs it with, if the image it
    builds is there."""
    podman = shutil.which("podman")
    image = os.environ.get("RA_IMAGE", "localhost/runtime-adapter:test")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108 - as container-test
    conf = Path(runtime_dir) / "runtime-adapter" / "containers.conf"
    env = {**os.environ, **({"CONTAINERS_CONF": str(conf)} if conf.is_file() else {})}
    if podman is None:
        return None
    exists = subprocess.run([podman, "image", "exists", image], env=env, check=False)
    return ([podman, image], env) if exists.returncode == 0 else None


def bench_container(runs: int) -> list[Row]:
    """``podman run`` of the built image (claude-code template) -> online at the platform
    with the probe done, ``--network host`` against the emulator and the fake LLM."""
    found = _podman()
    if found is None:
        return [
            Row(
                "container",
                "podman run -> online, probe done",
                0.0,
                "ms",
                "-",
                None,
                "skipped: no podman or no image (scripts/container-test builds it)",
            )
        ]
    (podman, image), env = found
    registered: list[float] = []
    samples: list[float] = []
    with _services() as (emulator, url, llm, llm_url), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        for index in range(runs):
            workspace, configs = f"bench-container-{index}", root / f"configs-{index}"
            configs.mkdir()
            (configs / "config.yaml").write_text("name: bench\nmodel: MiniMax-M2.7\n")
            name = f"ra-bench-{index}-{os.getpid()}"
            args = ["run", "-d", "--name", name, "--network", "host", "-v", f"{configs}:/configs"]
            for variable, value in {
                "WORKSPACE_ID": workspace,
                "PLATFORM_URL": url,
                "PORT": str(free_port()),
                "MINIMAX_API_KEY": KEY,
                "MINIMAX_BASE_URL": llm_url + "/anthropic",
            }.items():
                args += ["-e", f"{variable}={value}"]
            probes = len(llm.requests)
            started = time.time()
            subprocess.run([podman, *args, image], env=env, check=True, capture_output=True)
            try:

                def online(w: str = workspace) -> bool:
                    return (emulator.view(w) or {}).get("status") == "online"

                _wait(online, timeout=60)
                registered.append((time.time() - started) * 1000)
                _wait(lambda: len(llm.requests) > probes, timeout=60)  # noqa: B023 - awaited here
                samples.append((time.time() - started) * 1000)
            finally:
                subprocess.run(
                    [podman, "rm", "-f", "-t", "0", name], env=env, check=False, capture_output=True
                )
    return [
        Row(
            "container",
            "podman run -> online at the platform (claude-code image)",
            statistics.median(registered),
            "ms",
            "-",
            None,
            _summary(registered) + "; includes podman's own start of the container",
        ),
        Row(
            "container",
            "podman run -> online, probe done (claude-code image)",
            statistics.median(samples),
            "ms",
            "-",
            None,
            _summary(samples) + "; includes podman's own start of the container",
        ),
    ]


# -- 5. fleet through a platform outage and restart ----------------------------------


def _start_fleet(
    group: anyio.abc.TaskGroup,
    size: int,
    vt: VirtualTime,
    emulator: PlatformEmulator,
    rng: random.Random,
    tmp: Path,
    cap: float = 60.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Heartbeat]:
    """``size`` heartbeat loops against ``emulator``, started at random moments of one
    interval (a fleet that was already running)."""
    transport = transport or httpx.ASGITransport(app=emulator.app)
    loops: list[Heartbeat] = []
    for index in range(size):
        directory = tmp / str(index)
        directory.mkdir()
        client = PlatformClient(
            "http://platform.test", f"fleet-{index}", TokenStore(directory), transport=transport
        )
        beat = Heartbeat(
            client,
            Health(clock=vt),
            url=f"http://10.1.{index // 250}.{index % 250 + 1}:8000",
            card=lambda: {"name": "fleet", "description": "", "version": "1"},
            interval=30.0,
            backoff_cap=cap,
            sleep=vt.sleep,
            clock=vt,
            rng=rng.random,
        )
        loops.append(beat)

        async def start(beat: Heartbeat = beat) -> None:
            await vt.sleep(rng.uniform(0, 30))
            await beat.run()

        group.start_soon(start)
    return loops


def _peak(times: list[float]) -> int:
    """The most requests in any 1 s window."""
    times = sorted(times)
    peak, first = 0, 0
    for last, moment in enumerate(times):
        while times[first] <= moment - 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


async def _fleet(size: int, outage: float) -> dict[str, float]:
    vt = VirtualTime()
    emulator = PlatformEmulator(clock=vt)
    with tempfile.TemporaryDirectory() as tmp:
        async with anyio.create_task_group() as group:
            loops = _start_fleet(group, size, vt, emulator, random.Random(11), Path(tmp))
            await vt.run_until(lambda: sum(b.beats_sent for b in loops) >= 3 * size)
            down_at = vt.now
            if outage:
                emulator.outage(outage)
                await vt.run_until(lambda: vt.now >= down_at + outage)
            emulator.restart()  # back, with every workspace forgotten
            back_at = vt.now
            await vt.run_until(lambda: len(emulator.workspaces) == size, limit=600)
            all_back = vt.now - back_at
            group.cancel_scope.cancel()
    peak = _peak([c.time for c in emulator.calls if c.time >= down_at])
    return {"peak": peak, "all_back": all_back}


class _Wire(httpx.AsyncBaseTransport):
    """Between the fleet and the emulator: records every attempt (time, workspace, ok)
    and, while ``refused_until`` is in the future, refuses the connection."""

    def __init__(self, inner: httpx.AsyncBaseTransport, vt: VirtualTime) -> None:
        self.inner, self.vt = inner, vt
        self.refused_until = 0.0
        self.attempts: list[tuple[float, str, bool]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        who = request.headers.get("x-workspace-id", "")
        if self.vt.now < self.refused_until:
            self.attempts.append((self.vt.now, who, False))
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        self.attempts.append((self.vt.now, who, response.status_code < 400))
        return response


INTERVAL = 30.0


def _outage_figures(
    attempts: list[tuple[float, str, bool]], size: int, down: float, back: float, cap: float
) -> dict[str, Any]:
    normal = size / INTERVAL
    early = [t for t, _, _ in attempts if down <= t < down + 60]
    late = [t for t, _, _ in attempts if down + 60 <= t < back]
    first_ok: dict[str, float] = {}
    for t, who, ok in attempts:
        if ok and t >= back and who not in first_ok:
            first_ok[who] = t - back
    return {
        "early": len(early) / (60 * normal),
        "late": len(late) / ((back - down - 60) * normal),
        "all_back": max(first_ok.values()) if len(first_ok) == size else float("inf"),
        "peak": _peak([t for t, _, _ in attempts if t >= back]),
        "series": [t - down for t, _, _ in attempts if down - 60 <= t < back + cap + 60],
    }


async def _fleet_outage(size: int, outage: float, cap: float, refused: bool) -> dict[str, Any]:
    """This runtime's loops (the real ``Heartbeat``) through an outage of ``outage``
    seconds: refused connections or 503s."""
    vt = VirtualTime()
    emulator = PlatformEmulator(clock=vt)
    wire = _Wire(httpx.ASGITransport(app=emulator.app), vt)
    with tempfile.TemporaryDirectory() as tmp:
        async with anyio.create_task_group() as group:
            loops = _start_fleet(group, size, vt, emulator, random.Random(13), Path(tmp), cap, wire)
            await vt.run_until(lambda: sum(b.beats_sent for b in loops) >= 3 * size)
            down = vt.now
            if refused:
                wire.refused_until = down + outage
            else:
                emulator.outage(outage)
            await vt.run_until(lambda: vt.now >= down + outage)
            back = vt.now
            sent = {id(b): b.beats_sent for b in loops}
            await vt.run_until(
                lambda: all(b.beats_sent > sent[id(b)] for b in loops), limit=cap * 2 + 60
            )
            await vt.run_until(lambda: vt.now >= back + cap + 60)
            group.cancel_scope.cancel()
    return _outage_figures(wire.attempts, size, down, back, cap)


def _simulated(
    size: int, outage: float, cap: float, next_wait: Callable[[int, random.Random], float]
) -> dict[str, Any]:
    """Another runtime's loops as a schedule alone: ``next_wait(failures, rng)`` after
    each attempt (0 failures: a success). The platform is down from 600 s on."""
    import heapq

    rng = random.Random(17)
    down, back = 600.0, 600.0 + outage
    queue = [(rng.uniform(0, INTERVAL), index, 0) for index in range(size)]
    heapq.heapify(queue)
    attempts: list[tuple[float, str, bool]] = []
    while queue:
        at, index, failures = heapq.heappop(queue)
        if at > back + max(cap, 10 * INTERVAL) + 60:  # Eureka's bound: 10x the interval
            continue
        ok = not down <= at < back
        attempts.append((at, str(index), ok))
        failures = 0 if ok else failures + 1
        heapq.heappush(queue, (at + next_wait(failures, rng), index, failures))
    return _outage_figures(attempts, size, down, back, max(cap, 10 * INTERVAL))


def _molecule(failures: int, rng: random.Random) -> float:
    return INTERVAL  # fixed beats, whatever the answer


def _eureka(failures: int, rng: random.Random) -> float:
    # heartbeatExecutorExponentialBackOffBound = 10: the delay doubles to 10x the interval
    return min(INTERVAL * 2.0**failures, INTERVAL * 10) if failures else INTERVAL


def bench_fleet(size: int, outage: float = 1800.0) -> list[Row]:
    """DESIGN §7's schedule (the real heartbeat loop, virtual time) through a long outage,
    refused connections and 503s, at caps 60 and 300, beside simulated Molecule (fixed
    30 s beats) and Eureka (doubling to 10x the interval) fleets; and a platform restart
    that forgot every workspace. Writes bench/fleet-outage.png."""
    rows: list[Row] = []
    series: dict[float, dict[str, list[float]]] = {}
    for cap in (60.0, 300.0):
        panel = series.setdefault(cap, {})
        floor = INTERVAL / cap
        for refused in (True, False):
            how = "refused" if refused else "503"
            started = time.monotonic()
            ours = anyio.run(_fleet_outage, size, outage, cap, refused)
            wall = time.monotonic() - started
            if refused:
                panel[f"this runtime (cap {cap:.0f} s)"] = ours["series"]
            where = f"{size} loops, {how}, cap {cap:.0f}"
            rows += [
                Row(
                    "fleet",
                    f"outage load once 60 s old / normal ({where})",
                    round(ours["late"], 3),
                    "x",
                    f"<= {1.4 * floor:.2f}",
                    ours["late"] <= 1.4 * floor,
                    f"floor interval/cap = {floor:.2f}; {outage:.0f} s outage, virtual time, "
                    f"{wall:.0f} s wall",
                ),
                Row(
                    "fleet",
                    f"requests in the outage's first 60 s / normal ({where})",
                    round(ours["early"], 3),
                    "x",
                    "<= 1.5",
                    ours["early"] <= 1.5,
                    "one quick retry, then the interval",
                ),
                Row(
                    "fleet",
                    f"platform back -> every loop reached it, p100 ({where})",
                    round(ours["all_back"], 1),
                    "s",
                    f"<= {cap + 5:.0f}",
                    ours["all_back"] <= cap + 5,
                    "the longest wait is the cap",
                ),
                Row(
                    "fleet",
                    f"peak requests in any 1 s after recovery ({where})",
                    ours["peak"],
                    "req",
                    f"<= {0.1 * size:.0f}",
                    ours["peak"] <= 0.1 * size,
                    "10 % of the fleet",
                ),
            ]
        for name, schedule in (("Molecule runtime", _molecule), ("Eureka", _eureka)):
            other = _simulated(size, outage, cap, schedule)
            panel[name] = other["series"]
            rows += (
                [
                    Row(
                        "fleet",
                        f"{name} (simulated): outage load once 60 s old / normal",
                        round(other["late"], 3),
                        "x",
                        "-",
                        None,
                        f"{size} loops; same outage; its schedule ignores the cap",
                    ),
                    Row(
                        "fleet",
                        f"{name} (simulated): platform back -> every loop reached it",
                        round(other["all_back"], 1),
                        "s",
                        "-",
                        None,
                        "p100",
                    ),
                ]
                if cap == 60.0
                else []
            )
    _plot(series, outage)
    limit = 0.2 * size
    for down_for, label in ((0.0, "restart"), (10.0, "10 s outage + restart")):
        started = time.monotonic()
        result = anyio.run(_fleet, size, down_for)
        wall = time.monotonic() - started
        rows += [
            Row(
                "fleet",
                f"peak requests in any 1 s ({size} loops, {label})",
                result["peak"],
                "req",
                f"<= {limit:.0f}",
                result["peak"] <= limit,
                f"virtual time; {wall:.1f} s wall",
            ),
            Row(
                "fleet",
                f"platform back -> all registered again ({label})",
                result["all_back"],
                "s",
                "<= 65 (cap 60 + 5)",
                result["all_back"] <= 65,
                "virtual time",
            ),
        ]
    return rows


FIGURE = Path(__file__).parent / "fleet-outage.png"


def _plot(series: dict[float, dict[str, list[float]]], outage: float) -> None:
    """Requests per second (10 s bins) through the outage and the recovery, a panel per
    cap: this runtime's schedule beside the Molecule runtime's and Eureka's."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: no matplotlib (pip install '.[bench]'): no figure", file=sys.stderr)
        return
    figure, panels = plt.subplots(len(series), 1, figsize=(10, 6.4), dpi=110, sharex=True)
    for axes, (cap, lines) in zip(panels, series.items(), strict=True):
        for label, times in lines.items():
            first, last = int(min(times) // 10), int(max(times) // 10)
            bins = [0] * (last - first + 1)
            for t in times:
                bins[int(t // 10) - first] += 1
            xs = [(first + i) * 10 for i in range(len(bins))]
            axes.plot(xs, [b / 10 for b in bins], label=label, linewidth=1.1)
        axes.axvspan(0, outage, color="0.92", label="platform down")
        axes.set_ylabel("requests / s")
        axes.set_title(f"HEARTBEAT_BACKOFF_CAP_SECONDS={cap:.0f}", fontsize=9)
        axes.legend(fontsize=7, loc="upper right")
    panels[-1].set_xlabel("seconds since the outage began (refused connections; 10 s bins)")
    figure.suptitle("A fleet of heartbeat loops through a platform outage and its recovery")
    figure.tight_layout()
    figure.savefig(FIGURE)
    plt.close(figure)
    print(f"written {FIGURE}", file=sys.stderr)


def _stream_times(url: str, headers: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """ms to the first byte and to the last of a streamed answer, ``runs`` times."""
    body = {"model": "MiniMax-M2.7", "max_tokens": 4096, "stream": True, "messages": []}
    first, total = [], []
    with httpx.Client(timeout=60) as client:
        for _ in range(runs):
            started = time.perf_counter()
            with client.stream("POST", url + "/v1/messages", json=body, headers=headers) as r:
                chunks = r.iter_raw()
                next(chunks)
                first.append((time.perf_counter() - started) * 1000)
                for _chunk in chunks:
                    pass
            total.append((time.perf_counter() - started) * 1000)
    return first, total


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _server(*args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.serve", args[0], str(port), *args[1:]],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _answers(url), timeout=30)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        httpx.get(url + "/", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def _roads(events: int, pace: float, runs: int) -> tuple[list[float], ...]:
    """(first byte, total) direct, the same through the gateway, and the gateway's CPU."""
    with (
        _server("llm", str(events), str(pace)) as (llm_url, _),
        _server("gateway", llm_url) as (gateway_url, gateway),
    ):
        direct = {"authorization": "Bearer bench-minimax-key-0001"}
        via = {"authorization": "Bearer bench-gateway-token"}
        _stream_times(llm_url, direct, 2)  # warm both roads
        _stream_times(gateway_url, via, 2)
        direct_first, direct_total = _stream_times(llm_url, direct, runs)
        cpu = _proc_cpu(gateway.pid)
        via_first, via_total = _stream_times(gateway_url, via, runs)
        cpu = _proc_cpu(gateway.pid) - cpu
    return direct_first, direct_total, via_first, via_total, [cpu]


def bench_gateway(runs: int, *, turns: bool = True) -> list[Row]:
    """DESIGN §13's gateway beside the direct road, three processes (fake, gateway,
    client): a streamed answer of 4,000 text deltas at 1,000 a second (a model ten times
    faster than today's fastest), time to first byte and total; the same answer as fast
    as the fake can send it, for the gateway's CPU per 1,000 relayed events; and the
    warm turn wait of the claude-code template with the gateway on and off."""
    events = 4000
    d_first, d_total, v_first, v_total, _ = _roads(events, 0.001, max(3, runs // 2))
    *_, cpu = _roads(events, 0.0, runs)
    first_gap = statistics.median(v_first) - statistics.median(d_first)
    total_ratio = statistics.median(v_total) / statistics.median(d_total) - 1
    rows = [
        Row(
            "gateway",
            "streamed answer (4,000 deltas, 1/ms): first byte, gateway - direct",
            round(first_gap, 2),
            "ms",
            "<= 2",
            first_gap <= 2,
            f"p50 direct {statistics.median(d_first):.1f} ms, via gateway "
            f"{statistics.median(v_first):.1f} ms; n={len(v_first)}",
        ),
        Row(
            "gateway",
            "streamed answer (4,000 deltas, 1/ms): total, gateway vs direct",
            round(total_ratio * 100, 1),
            "%",
            "<= 5",
            total_ratio <= 0.05,
            f"p50 direct {statistics.median(d_total):.0f} ms, via gateway "
            f"{statistics.median(v_total):.0f} ms",
        ),
        Row(
            "gateway",
            "gateway CPU per 1,000 relayed events (unpaced stream)",
            round(cpu[0] * 1000 / (runs * events / 1000), 2),
            "ms",
            "-",
            None,
            f"{cpu[0]:.2f} s of the gateway's process for {runs} answers of {events} events",
        ),
    ]
    if not turns:
        return rows
    own = FakeLLM()
    with serve_in_thread(own.app) as url:
        on, *_ = _turn_waits(own, url, 2, 4, "")
        off, *_ = _turn_waits(own, url, 2, 4, "", LLM_GATEWAY="off")
    gap = statistics.median(on["warm"]) - statistics.median(off["warm"])
    rows.append(
        Row(
            "gateway",
            "warm turn: A2A message -> first LLM request, gateway on - off",
            round(gap, 1),
            "ms",
            "<= 100",
            gap <= 100,
            f"p50 on {statistics.median(on['warm']):.0f} ms ({_summary(on['warm'])}), "
            f"off {statistics.median(off['warm']):.0f} ms",
        )
    )
    return rows


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_bounded(messages: int, contexts: int) -> list[Row]:
    """What the claude-code template keeps per context, after ``messages`` in
    ``contexts``: the sessions book (memory and its journal) and the per-context locks;
    then ten times the book's bound of new contexts, to show the bound holds."""
    from claude_code_adapter.executor import ContextLocks
    from claude_code_adapter.sessions import SessionBook

    async def traffic(book: SessionBook, locks: ContextLocks, ids: list[str]) -> None:
        for n in range(messages):
            context = ids[n % len(ids)]
            async with locks.hold(context):
                book.remember(context, book.session_for(context))

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as root:
        gc.collect()
        before = _rss_mb()
        book, locks = SessionBook(Path(root) / "s"), ContextLocks()
        anyio.run(traffic, book, locks, [str(uuid.uuid4()) for _ in range(contexts)])
        gc.collect()
        journal = (Path(root) / "s" / "contexts.jsonl").stat().st_size / 1024
        rows.append(
            Row(
                "bounded",
                f"{messages:,} messages in {contexts:,} contexts: RSS growth",
                round(_rss_mb() - before, 1),
                "MB",
                "<= 10",
                _rss_mb() - before <= 10,
                f"book {len(book)} contexts, journal {journal:.0f} KB, locks held {len(locks)}",
            )
        )
        limit = 1000
        small = SessionBook(Path(root) / "t", limit=limit)
        for _ in range(10 * limit):
            small.remember(str(uuid.uuid4()), str(uuid.uuid4()))
        size = (Path(root) / "t" / "contexts.jsonl").stat().st_size / 1024
        rows.append(
            Row(
                "bounded",
                f"sessions book after {10 * limit:,} new contexts, bound {limit:,}",
                len(small),
                "contexts",
                f"<= {limit}",
                len(small) <= limit,
                f"journal {size:.0f} KB (at most twice the bound's lines before compaction)",
            )
        )
    return rows


def bench_tasks(messages: int, contexts: int, retention: int = 1000) -> list[Row]:
    """Tasks that outlive the process (DESIGN §12): ``messages`` through a2a-sdk's
    JSON-RPC routes and the template's handler into the SQLite task database, in
    ``contexts`` contexts, with retention on; then ``tasks/get`` from the database.
    The executor answers at once (the LLM is not what is measured here)."""
    from a2a.client.card_resolver import parse_agent_card
    from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_part
    from a2a.server.agent_execution import AgentExecutor
    from a2a.server.routes import create_jsonrpc_routes
    from a2a.server.tasks import TaskUpdater
    from claude_code_adapter.handler import Handler
    from claude_code_adapter.tasks import open_tasks
    from starlette.applications import Starlette

    from runtime_adapter.card import build_card
    from runtime_adapter.volume import WorkspaceConfig

    class Answer(AgentExecutor):
        async def execute(self, context: Any, event_queue: Any) -> None:
            task = context.current_task or new_task_from_user_message(context.message)
            if context.current_task is None:
                await event_queue.enqueue_event(task)
            updater = TaskUpdater(event_queue, task.id, task.context_id)
            await updater.start_work()
            await updater.add_artifact([new_text_part("an answer " * 200)], name="answer")
            await updater.complete()

        async def cancel(self, context: Any, event_queue: Any) -> None:
            return None

    async def run(root: Path) -> dict[str, Any]:
        database = await open_tasks(root / ".a2a" / "tasks.db", retention_count=retention)
        card = parse_agent_card(build_card(WorkspaceConfig(name="bench"), "http://bench/"))
        handler = Handler(
            agent_executor=Answer(),
            task_store=database.tasks,
            agent_card=card,
            max_message_chars=100_000,
            max_waiting=100,
            waiting=lambda: 0,
        )
        app = Starlette(routes=create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True))
        ids = [str(uuid.uuid4()) for _ in range(contexts)]
        kept: list[str] = []
        gc.collect()
        before = _rss_mb()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as http:
            for n in range(messages):
                body = message_send("a question " * 100, context_id=ids[n % contexts])
                answer = (await http.post("/", json=body)).json()
                kept.append(answer["result"]["id"])
                database.created += 1
                if database.created >= retention // 10:
                    await database.prune(30, retention)
            gc.collect()
            grown = _rss_mb() - before
            recent = kept[-retention:]
            times = []
            for n in range(500):
                started = time.perf_counter()
                got = await http.post(
                    "/",
                    json={
                        "jsonrpc": "2.0",
                        "id": n,
                        "method": "tasks/get",
                        "params": {"id": random.choice(recent)},
                    },
                )
                times.append((time.perf_counter() - started) * 1000)
                assert "result" in got.json(), got.text
        await database.aclose()
        size = sum(f.stat().st_size for f in (root / ".a2a").iterdir()) / 2**20
        return {"grown": grown, "size": size, "times": sorted(times)}

    with tempfile.TemporaryDirectory() as root:
        measured = anyio.run(run, Path(root))
    times = measured["times"]
    p50, p90 = times[len(times) // 2], times[int(len(times) * 0.9)]
    where = f"{messages:,} messages in {contexts:,} contexts, retention {retention:,}"
    return [
        Row(
            "tasks",
            f"{where}: RSS growth",
            round(measured["grown"], 1),
            "MB",
            "<= 20",
            measured["grown"] <= 20,
            "a2a-sdk JSON-RPC + template handler + SQLite store",
        ),
        Row(
            "tasks",
            f"{where}: database size",
            round(measured["size"], 1),
            "MB",
            "<= 20",
            measured["size"] <= 20,
            "tasks.db with its WAL, after pruning",
        ),
        Row(
            "tasks",
            "tasks/get from the database p50",
            round(p50, 2),
            "ms",
            "<= 10",
            p50 <= 10,
            f"p90 {p90:.2f} ms, 500 gets of retained tasks",
        ),
    ]


def bench_poll(runs: int, fleet: int) -> list[Row]:
    """Poll delivery (DESIGN §14): a message queued at the platform -> its reply at the
    platform, ``run`` with the echo adapter at ``POLL_INTERVAL_SECONDS=2``, queued at
    random moments; beside it the same message pushed to the workspace (the turn time
    alone). Then the platform load of ``fleet`` idle poll-mode workspaces (the real
    ``PollLoop``, virtual time) beside ``fleet`` heartbeat loops against the emulator."""
    from runtime_adapter.poll import Cursor, PollLoop

    interval = 2.0
    rng = random.Random(7)
    polled: list[float] = []
    pushed: list[float] = []
    config = "name: bench\nruntime: echo\n"
    with _services() as (emulator, platform_url, _llm, _llm_url):
        with _runtime(
            "bench-poll",
            platform_url,
            None,
            config,
            DELIVERY_MODE="poll",
            POLL_INTERVAL_SECONDS=str(interval),
            HEARTBEAT_INTERVAL_SECONDS="5",
        ):
            _wait(lambda: (emulator.view("bench-poll") or {}).get("status") == "online")
            time.sleep(interval)
            for _ in range(runs):
                time.sleep(rng.uniform(0, interval))  # a random phase of the pull
                before = len((emulator.view("bench-poll") or {})["notifications"])
                queued = time.perf_counter()
                emulator.send_message("bench-poll", "ping")
                while len((emulator.view("bench-poll") or {})["notifications"]) == before:
                    time.sleep(0.002)
                polled.append((time.perf_counter() - queued) * 1000)
        port = free_port()
        with _runtime("bench-push", platform_url, None, config, PORT=str(port)):
            _wait(lambda: (emulator.view("bench-push") or {}).get("status") == "online")
            with httpx.Client(timeout=10) as http:
                for _ in range(runs):
                    started = time.perf_counter()
                    http.post(f"http://127.0.0.1:{port}/", json=message_send("ping"))
                    pushed.append((time.perf_counter() - started) * 1000)
    polled.sort()
    pushed.sort()
    p50, p90 = polled[len(polled) // 2], polled[int(len(polled) * 0.9)]
    turn = pushed[len(pushed) // 2]
    target = interval * 1000 / 2 + turn + 50

    async def load() -> tuple[float, float]:
        vt = VirtualTime()
        seconds = 60.0  # thirty pull intervals, two beat intervals: the steady rate

        class Idle:
            pulls = 0
            workspace_id = "idle"

            async def activity(self, **_: Any) -> list[dict[str, Any]]:
                Idle.pulls += 1
                await anyio.lowlevel.checkpoint()
                return []

        with tempfile.TemporaryDirectory() as tmp:
            async with anyio.create_task_group() as group:
                for _ in range(fleet):
                    loop = PollLoop(
                        Idle(),  # type: ignore[arg-type]
                        Health(clock=vt),
                        call=None,  # type: ignore[arg-type]
                        cursor=Cursor(Path(tmp) / "none"),
                        interval=interval,
                        sleep=vt.sleep,
                        rng=rng.random,
                    )

                    async def start(loop: PollLoop = loop) -> None:
                        await vt.sleep(rng.uniform(0, interval))
                        await loop._pull_forever(group)  # idle: no cursor I/O to set up

                    group.start_soon(start)
                emulator = PlatformEmulator(clock=vt)
                _start_fleet(group, fleet, vt, emulator, rng, Path(tmp))
                started = vt.now
                await vt.run_until(lambda: vt.now - started >= seconds, limit=seconds + 60)
                beats = len(emulator.calls_to("/registry/heartbeat"))
                group.cancel_scope.cancel()
        return Idle.pulls / seconds, beats / seconds

    pulls, beats = anyio.run(load)
    return [
        Row(
            "poll",
            f"queued -> reply at the platform p50 (interval {interval:g} s)",
            round(p50, 1),
            "ms",
            f"<= {target:.0f}",
            p50 <= target,
            f"p90 {p90:.0f} ms; push turn p50 {turn:.1f} ms; {runs} messages, echo adapter",
        ),
        Row(
            "poll",
            f"{fleet:,} idle poll-mode workspaces: pulls",
            round(pulls, 1),
            "rps",
            f"~{fleet / interval:.0f}",
            None,
            f"beside {beats:.1f} rps of heartbeats from {fleet:,} loops (interval 30 s); "
            "virtual time, 60 s",
        ),
    ]


def bench_compare(runs: int, other: Path | None) -> list[Row]:
    """Boot -> register, restart -> online and the warm turn (gateway on) of this tree
    and of ``other`` (``--tree DIR``: an older checkout), in one run, tree by tree."""
    if other is None:
        raise SystemExit("compare needs --tree DIR (the other source tree)")
    rows: list[Row] = []
    for label, tree in (("this tree", None), (other.name, other)):
        _TREE[0] = tree
        try:
            found = [*bench_boot(runs), *bench_restart(max(2, runs // 2))]
            own = FakeLLM()
            with serve_in_thread(own.app) as llm_url:
                waits, *_ = _turn_waits(own, llm_url, 2, 4, "")
            warm = waits["warm"]
            found.append(
                Row(
                    "gateway",
                    "warm turn: A2A message -> first LLM request",
                    statistics.median(warm),
                    "ms",
                    "-",
                    None,
                    _summary(warm),
                )
            )
        finally:
            _TREE[0] = None
        rows += [
            replace(row, benchmark="compare", metric=f"{row.metric} [{label}]") for row in found
        ]
    return rows


BENCHMARKS: dict[str, Callable[[bool], list[Row]]] = {
    "import": lambda quick: bench_import(3 if quick else 7),
    "boot": lambda quick: bench_boot(3 if quick else 10),
    "report": lambda quick: bench_report(2 if quick else 5),
    "recovery": lambda quick: bench_recovery(2 if quick else 5),
    "steady": lambda quick: bench_steady(5 if quick else 20),
    "restart": lambda quick: bench_restart(2 if quick else 5),
    "otel": lambda quick: bench_otel(3 if quick else 10, 5 if quick else 20),
    "claude-code": lambda quick: bench_claude_code(2 if quick else 3, 2 if quick else 4),
    "fleet": lambda quick: bench_fleet(200 if quick else 1000),
    "bounded": lambda quick: bench_bounded(10_000, 2_000),
    "poll": lambda quick: bench_poll(10 if quick else 60, 200 if quick else 1000),
    "tasks": lambda quick: bench_tasks(2_000 if quick else 10_000, 400 if quick else 2_000),
    "gateway": lambda quick: bench_gateway(5 if quick else 20, turns=not quick),
    "container": lambda quick: bench_container(2 if quick else 5),
    "compare": lambda quick: bench_compare(3 if quick else 10, _OTHER[0]),
}
_OTHER: list[Path | None] = [None]  # --tree


def format_table(rows: list[Row]) -> list[str]:
    """The table ``bench.run`` prints (and ``bench.readme`` puts in the README)."""
    width = max(len(r.metric) for r in rows)
    lines = [f"{'benchmark':<9}  {'metric':<{width}}  {'value':>9}  {'target':<18}  met  detail"]
    for r in rows:
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        lines.append(
            f"{r.benchmark:<9}  {r.metric:<{width}}  {r.value:>7.1f} {r.unit:<2}"
            f"  {r.target + ' ' + r.unit:<18}  {met:<3}  {r.detail}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, a smaller fleet")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=list(BENCHMARKS),
        default=[name for name in BENCHMARKS if name != "compare"],
    )
    parser.add_argument(
        "--tree", type=Path, help="compare: the other source tree (an older checkout)"
    )
    args = parser.parse_args(argv)
    _OTHER[0] = args.tree.resolve() if args.tree else None
    # the in-process fleet's loops log every failed beat; the table is the output
    logging.getLogger("runtime_adapter").addHandler(logging.NullHandler())
    rows: list[Row] = []
    for name in args.only:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(BENCHMARKS[name](args.quick))
    print("\n".join(format_table(rows)))
    RESULTS.mkdir(exist_ok=True)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "quick": args.quick,
        "rows": [asdict(r) for r in rows],
    }
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {RESULTS / 'latest.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
