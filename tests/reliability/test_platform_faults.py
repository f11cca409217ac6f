"""The platform misbehaves; the runtime stays up, backs off, and recovers by itself."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from runtime_adapter.health import Health
from runtime_adapter.heartbeat import Heartbeat
from runtime_adapter.platform import PlatformClient
from runtime_adapter.testing import PlatformEmulator, free_port, serve_in_thread
from runtime_adapter.tokens import TokenStore

from ..harness import WS, wait_for
from .conftest import World

pytestmark = pytest.mark.slow


def beats(world: World, status: int | None = None) -> list[int]:
    return [
        c.status
        for c in world.emulator.calls_to("/registry/heartbeat")
        if status is None or c.status == status
    ]


def online(world: World) -> bool:
    return world.view().get("status") == "online"


def test_platform_down_at_boot(world: World) -> None:
    port = free_port()
    process = world.launch(PLATFORM_URL=f"http://127.0.0.1:{port}")
    time.sleep(3)
    assert process.alive()
    late = PlatformEmulator()
    with serve_in_thread(late.app, port=port):
        wait_for(lambda: (late.view(WS) or {}).get("status") == "online", timeout=30)
    assert process.alive()


@pytest.mark.unmeasured
def test_5xx_burst(world: World) -> None:
    process = world.launch()
    wait_for(lambda: beats(world, 200))
    world.emulator.fail_next("/registry/heartbeat", 4, status=503)
    wait_for(lambda: beats(world).count(503) == 4 and beats(world)[-1] == 200, timeout=40)
    assert process.alive()
    assert online(world)


@pytest.mark.unmeasured
def test_429_with_retry_after_is_honoured(world: World) -> None:
    world.launch()
    wait_for(lambda: beats(world, 200))
    world.emulator.fail_next("/registry/heartbeat", 1, status=429, retry_after="3")
    wait_for(lambda: 429 in beats(world) and beats(world)[-1] == 200, timeout=30)
    calls = world.emulator.calls_to("/registry/heartbeat")
    limited = next(i for i, c in enumerate(calls) if c.status == 429)
    assert calls[limited + 1].time - calls[limited].time >= 3.0


@pytest.mark.unmeasured
def test_dropped_connections(world: World) -> None:
    process = world.launch()
    wait_for(lambda: beats(world, 200))
    world.emulator.drop_next("/registry/heartbeat", 2)
    wait_for(lambda: beats(world).count(0) == 2 and beats(world)[-1] == 200, timeout=30)
    assert process.alive()


def test_token_rotated_by_the_provisioner(world: World) -> None:
    world.launch()
    wait_for(lambda: len(beats(world, 200)) >= 2)
    rotated = world.emulator.provision(WS, token_path=world.configs / ".auth_token")
    before = len(beats(world))
    wait_for(lambda: len(beats(world, 200)) >= 4 + before // 2, timeout=20)
    after = beats(world)[before:]
    assert after.count(401) <= 1
    assert world.emulator.workspaces[WS].token == rotated


def test_register_refused(world: World) -> None:
    world.emulator.deploy_mode = "saas"  # refuses the loopback URL the runtime advertises
    # as in self-hosted Docker, the provisioner wrote a token before the container started
    world.emulator.provision(WS, token_path=world.configs / ".auth_token")
    world.launch()
    wait_for(lambda: world.detail().get("kind") == "registration_failed", timeout=20)
    wait_for(lambda: online(world), timeout=20)
    detail = world.detail()
    assert (detail["severity"], detail["source"], world.view()["runtime_state"]) == (
        "warning",
        "platform",
        "",
    )
    assert world.emulator.calls_to("/registry/update-card")


@pytest.mark.unmeasured
def test_workspace_forgotten_by_a_platform_restart(world: World) -> None:
    world.launch()
    wait_for(lambda: len(beats(world, 200)) >= 2)
    first = world.emulator.workspaces[WS].token
    world.emulator.restart()
    wait_for(lambda: online(world), timeout=30)
    wait_for(
        lambda: (
            (world.configs / ".auth_token").read_text().strip()
            == world.emulator.workspaces[WS].token
        )
    )
    assert world.emulator.workspaces[WS].token != first


def test_sigterm_during_a_slow_register(world: World) -> None:
    """SIGTERM cuts a register the platform is slow to answer: the shutdown does not wait
    for it (8 s away). Measured from the runtime's own log, SIGTERM -> stopped, which a
    busy machine slows only by the shutdown's own work; the exit stays within §9's 10 s."""
    world.emulator.set_latency("/registry/register", 8)
    faults = world.emulator.faults
    arrived = threading.Event()
    take = faults.take

    def noting(path: str) -> Any:  # the register's arrival, before its 8 s delay
        if path == "/registry/register":
            arrived.set()
        return take(path)

    faults.take = noting  # type: ignore[method-assign]
    process = world.launch()
    # SIGTERM while the register is at the platform: a fixed sleep (2.5 s) sent it
    # before the runtime had booted that far on a loaded machine (exit -15)
    assert arrived.wait(60), process.stop_and_output()[-3000:]
    time.sleep(0.5)
    assert process.stop() == 0
    assert process.stopped_within(10)
    lines = [json.loads(line) for line in process.output.splitlines() if line.startswith("{")]
    when = {
        key: datetime.fromisoformat(next(e["ts"] for e in lines if e["msg"].startswith(said)))
        for key, said in (("signal", "received SIGTERM"), ("stopped", "stopped"))
    }
    assert (when["stopped"] - when["signal"]).total_seconds() < 5  # not the register's 8 s


@pytest.mark.anyio
async def test_slow_platform_times_out_backs_off_and_recovers(tmp_path: Path) -> None:
    emulator = PlatformEmulator()
    emulator.set_latency("/registry/heartbeat", 1.0)
    with serve_in_thread(emulator.app) as url:
        async with PlatformClient(
            url, WS, TokenStore(tmp_path), timeout=httpx.Timeout(0.3)
        ) as client:
            health = Health()
            heartbeat = Heartbeat(client, health, url=url, card=lambda: {"name": "slow"})
            async with anyio.create_task_group() as group:
                await group.start(heartbeat.run)
                with anyio.fail_after(10):
                    while (error := health.current()) is None or error.kind != "timeout":  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                assert (error.source, error.severity) == ("platform", "warning")
                assert heartbeat.beats_sent == 0
                emulator.set_latency("/registry/heartbeat", 0)
                with anyio.fail_after(10):
                    while heartbeat.beats_sent == 0:  # noqa: ASYNC110 - polls a counter
                        await anyio.sleep(0.05)
                group.cancel_scope.cancel()
    assert health.current() is None  # the success cleared the timeout
