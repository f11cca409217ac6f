"""Registration and heartbeats against the platform emulator, in virtual time.

The loop never dies, never spins: failures back off with full jitter under a
cap, Retry-After is honoured, the token survives rotation and a platform
restart, and a new error reaches the platform within a second.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from runtime_adapter import fingerprint
from runtime_adapter.health import Health, SampleError
from runtime_adapter.heartbeat import Heartbeat
from runtime_adapter.platform import PlatformClient
from runtime_adapter.testing import PlatformCall, PlatformEmulator, VirtualTime
from runtime_adapter.tokens import TokenStore

pytestmark = pytest.mark.anyio

WS = "212851b5-693d-4e0f-9a8b-7c6d5e4f3a2b"
CARD = {"name": "agent", "description": "", "version": "1.0.0"}


def beat_after_last_register(platform: PlatformEmulator) -> bool:
    """The platform heard a successful beat after the latest register (in call order)."""
    paths = [(c.path, c.status) for c in platform.calls]
    last_register = max(
        (i for i, (path, _) in enumerate(paths) if path == "/registry/register"), default=-1
    )
    return any(p == ("/registry/heartbeat", 200) for p in paths[last_register + 1 :])


def beats(platform: PlatformEmulator, status: int | None = None) -> list[PlatformCall]:
    calls = platform.calls_to("/registry/heartbeat")
    return [c for c in calls if status is None or c.status == status]


@asynccontextmanager
async def running(
    platform: PlatformEmulator,
    config_dir: Path,
    vt: VirtualTime,
    *,
    url: str = "http://127.0.0.1:8000",
    health: Health | None = None,
    card: Callable[[], dict[str, Any]] = lambda: CARD,
) -> AsyncIterator[Heartbeat]:
    tokens = TokenStore(config_dir)
    transport = httpx.ASGITransport(app=platform.app)
    async with PlatformClient("http://platform.test", WS, tokens, transport=transport) as client:
        heartbeat = Heartbeat(
            client,
            health or Health(clock=vt),
            url=url,
            card=card,
            interval=30.0,
            sleep=vt.sleep,
            clock=vt,
            rng=random.Random(7).random,
        )
        async with anyio.create_task_group() as group:
            await group.start(heartbeat.run)
            yield heartbeat
            group.cancel_scope.cancel()


async def test_register_saves_token_then_beats_carry_bearer_and_card(tmp_path: Path) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(clock=vt)
    async with running(platform, tmp_path, vt):
        await vt.run_until(lambda: len(beats(platform, 200)) >= 3)
    token_file = tmp_path / ".auth_token"
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token == platform.workspaces[WS].token
    register = platform.calls_to("/registry/register")[0]
    assert (register.status, register.authorization) == (200, None)
    sent = beats(platform)
    assert all(c.authorization == f"Bearer {fingerprint(token)}" for c in sent)
    assert all(c.body["agent_card"] == CARD for c in sent)
    assert sent[0].time == register.time  # first beat right after the first register attempt
    gaps = [b.time - a.time for a, b in itertools.pairwise(sent)]
    assert all(27.0 <= gap <= 33.0 for gap in gaps), gaps
    assert platform.view(WS)["status"] == "online"  # type: ignore[index]


async def test_token_rotation_costs_at_most_one_failed_beat(tmp_path: Path) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(clock=vt)
    platform.provision(WS, token_path=tmp_path / ".auth_token")
    async with running(platform, tmp_path, vt):
        await vt.run_until(lambda: len(beats(platform, 200)) >= 2)
        rotated = platform.provision(WS, token_path=tmp_path / ".auth_token")
        before = len(beats(platform))
        await vt.run_until(lambda: len(beats(platform, 200)) >= 4)
    after = beats(platform)[before:]
    assert [c.status for c in after].count(401) <= 1
    assert after[-1].authorization == f"Bearer {fingerprint(rotated)}"


async def test_thirty_second_outage_backs_off_within_bounds_then_recovers(
    tmp_path: Path,
) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(clock=vt)
    platform.provision(WS, token_path=tmp_path / ".auth_token")
    wall = time.monotonic()
    health = Health(clock=vt)
    async with running(platform, tmp_path, vt, health=health):
        await vt.run_until(lambda: len(beats(platform, 200)) >= 1)
        start = vt.now
        platform.outage(30)
        # a health change makes the next beat go now, into the outage
        health.record_failure(SampleError("rate_limited", "warning", "llm_call", "slow down"))
        await vt.run_until(lambda: any(c.time >= start + 30 for c in beats(platform, 200)))
    assert time.monotonic() - wall < 10  # virtual time: no real sleeping
    during = [c for c in beats(platform) if c.time >= start]
    failed = [c for c in during if c.status == 503]
    assert len(failed) >= 3
    retries = [b.time - a.time for a, b in zip(failed, during[1:], strict=False)]
    for attempt, gap in enumerate(retries):
        assert 0.0 <= gap <= min(60.0, 2.0**attempt) + 1e-6, (attempt, gap)
    recovered = next(c for c in during if c.status == 200)
    assert recovered.time <= start + 30 + 60
    assert platform.view(WS)["status"] == "online"  # type: ignore[index]


async def test_503_with_retry_after_is_honoured(tmp_path: Path) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(clock=vt)
    platform.provision(WS, token_path=tmp_path / ".auth_token")
    async with running(platform, tmp_path, vt):
        await vt.run_until(lambda: len(beats(platform, 200)) >= 1)
        platform.fail_next("/registry/heartbeat", 1, status=503, retry_after="7")
        await vt.run_until(lambda: len(beats(platform, 200)) >= 2)
    failed, retried = beats(platform)[1:3]
    assert (failed.status, retried.status) == (503, 200)
    assert retried.time - failed.time == pytest.approx(7.0)


async def test_refused_register_is_a_warning_beats_continue_card_pushed_and_online(
    tmp_path: Path,
) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(deploy_mode="self-hosted", clock=vt, resolver=lambda h: [])
    platform.provision(WS, token_path=tmp_path / ".auth_token", url="http://127.0.0.1:32771")
    health = Health(clock=vt)
    seen: dict[str, object] = {}

    def online() -> bool:
        # the view when the condition held: a refused register may land during teardown
        seen.update(platform.view(WS) or {})
        return (
            len(beats(platform, 200)) >= 3
            and beat_after_last_register(platform)
            and seen.get("status") == "online"
        )

    async with running(platform, tmp_path, vt, url="http://172.18.0.5:8000", health=health):
        await vt.run_until(online)
    error = health.current()
    assert error is not None
    assert (error.kind, error.severity, error.source, health.runtime_state) == (
        "registration_failed",
        "warning",
        "platform",
        "",
    )
    registers = platform.calls_to("/registry/register")
    assert len(registers) >= 2
    assert all(c.status == 400 for c in registers)
    assert platform.calls_to("/registry/update-card")[0].status == 200
    last = beats(platform)[-1].body
    assert last["sample_error"].startswith("registration_failed: 400 from platform.test")
    assert last["runtime_state"] == ""
    assert (seen["status"], seen["url"], seen["agent_card"]) == (
        "online",
        "http://127.0.0.1:32771",
        CARD,
    )


async def test_each_refused_register_is_followed_by_a_card_bearing_beat(tmp_path: Path) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(deploy_mode="saas", clock=vt, resolver=lambda h: [])
    platform.provision(WS, token_path=tmp_path / ".auth_token")
    async with running(platform, tmp_path, vt):
        await vt.run_until(
            lambda: (
                len(platform.calls_to("/registry/register")) >= 5
                and beat_after_last_register(platform)
            )
        )
    registers = platform.calls_to("/registry/register")
    for refused in registers[1:]:
        following = [c for c in beats(platform) if c.time >= refused.time]
        assert following[0].time - refused.time <= 1.0, [
            (c.path, c.status, round(c.time - 1.8e9, 3)) for c in platform.calls
        ]  # marker cleared within a second
    view = platform.view(WS)
    assert view is not None
    assert view["status"] == "online"


async def test_platform_restart_leads_to_re_registration(tmp_path: Path) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(clock=vt)
    async with running(platform, tmp_path, vt):
        await vt.run_until(lambda: len(beats(platform, 200)) >= 2)
        first_token = (tmp_path / ".auth_token").read_text()
        platform.restart()
        await vt.run_until(lambda: len(beats(platform, 200)) >= 4)
    statuses = [c.status for c in beats(platform)]
    assert 404 in statuses
    assert [c.status for c in platform.calls_to("/registry/register")] == [200, 200]
    assert (tmp_path / ".auth_token").read_text() != first_token
    assert platform.view(WS)["status"] == "online"  # type: ignore[index]


async def test_the_loop_survives_an_unexpected_exception(tmp_path: Path) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(clock=vt)
    calls = [0]

    def flaky_card() -> dict[str, Any]:
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("card builder bug")
        return CARD

    async with running(platform, tmp_path, vt, card=flaky_card):
        await vt.run_until(lambda: len(beats(platform, 200)) >= 3)
    assert calls[0] >= 4


async def test_auth_failed_reaches_the_platform_within_one_second(
    platform_emulator: PlatformEmulator, platform_url: str, tmp_path: Path
) -> None:
    health = Health()
    tokens = TokenStore(tmp_path)
    async with PlatformClient(platform_url, WS, tokens) as client:
        heartbeat = Heartbeat(client, health, url=platform_url, card=lambda: CARD, interval=30.0)
        async with anyio.create_task_group() as group:
            await group.start(heartbeat.run)
            with anyio.fail_after(5):
                while not beats(platform_emulator, 200):  # noqa: ASYNC110 - the server is a thread
                    await anyio.sleep(0.01)
            seen = time.monotonic()
            health.record_failure(
                SampleError("auth_failed", "error", "llm_probe", "invalid api key", status=401)
            )
            with anyio.fail_after(5):
                while not any(  # noqa: ASYNC110 - the recorder is filled by the server thread
                    (c.body.get("sample_error_detail") or {}).get("kind") == "auth_failed"
                    for c in beats(platform_emulator, 200)
                ):
                    await anyio.sleep(0.01)
            latency = time.monotonic() - seen
            group.cancel_scope.cancel()
    assert latency < 1.0
    view = platform_emulator.view(WS)
    assert view is not None
    assert (view["status"], view["runtime_state"]) == ("degraded", "wedged")
    assert view["last_sample_error"] == "auth_failed: 401: invalid api key"


async def test_a_flapping_health_sends_at_most_one_unscheduled_beat_per_two_seconds(
    tmp_path: Path,
) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(clock=vt)
    health = Health(clock=vt)
    async with running(platform, tmp_path, vt, health=health):
        await vt.run_until(lambda: len(beats(platform, 200)) >= 1)
        start, before = vt.now, len(beats(platform))

        async def brownout() -> None:
            # an LLM answering 503 and 200 in turn, ten changes a second, for 10 s
            for index in range(100):
                if index % 2:
                    health.record_success("llm_call")
                else:
                    health.record_failure(
                        SampleError("upstream_error", "warning", "llm_call", "503")
                    )
                await vt.sleep(0.1)

        async with anyio.create_task_group() as group:
            group.start_soon(brownout)
            await vt.run_until(lambda: vt.now >= start + 10)
            group.cancel_scope.cancel()
    sent = len(beats(platform)) - before
    assert 1 <= sent <= 6  # 10 s / 2 s, and the first one at once


async def test_a_heartbeat_failure_never_replaces_a_refused_register(tmp_path: Path) -> None:
    vt = VirtualTime()
    platform = PlatformEmulator(deploy_mode="saas", clock=vt, resolver=lambda h: [])
    platform.provision(WS, token_path=tmp_path / ".auth_token")
    health = Health(clock=vt)
    async with running(platform, tmp_path, vt, health=health):
        await vt.run_until(lambda: len(beats(platform, 200)) >= 1)
        platform.fail_next("/registry/heartbeat", 1, status=503)
        await vt.run_until(lambda: 503 in [c.status for c in beats(platform)])
        kinds = {error.kind for error in health.errors()}
        assert "registration_failed" in kinds
        await vt.run_until(lambda: beats(platform)[-1].status == 200)
    error = health.current()
    assert error is not None
    assert error.kind == "registration_failed"  # a good beat does not clear it either
