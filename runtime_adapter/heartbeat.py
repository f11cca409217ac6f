"""The heartbeat loop (DESIGN §7); registration itself is ``registration``'s.

The first heartbeat goes right after the first register attempt, whatever its
outcome; a refused or failed registration is retried in the background (by
its ``Registration``) while heartbeats continue. Beats come every interval
±10 %, and within a second of a health change (coalesced, and at most one
such beat per 2 s). A failed beat follows ``backoff.retry_delay``: one quick
retry, then waits growing from the interval to the cap, honouring
``Retry-After``. The loop never dies: an unexpected exception is
logged and the loop goes on. Every beat carries the full state and the card.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never

from . import telemetry
from .errors import (
    PlatformAuthError,
    PlatformError,
    PlatformRejected,
    PlatformUnavailable,
    WorkspaceUnknown,
)
from .health import Health, classify
from .platform import PlatformClient, PlatformWait
from .registration import Registration

__all__ = ["Heartbeat", "RuntimeStatus", "heartbeat_body"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# sticky errors are kept per operation (§8): a beat's success never clears a refused
# register (``REGISTER``), and a beat's failure never replaces it
BEAT = "heartbeat"
# at most one out-of-schedule beat per this many seconds: a fleet in a provider
# brownout must not storm the platform
MIN_UNSCHEDULED_GAP = 2.0


@dataclass
class RuntimeStatus:
    """What the agent reports about its work, carried in every heartbeat."""

    active_tasks: int = 0
    current_task: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def heartbeat_body(
    workspace_id: str,
    card: dict[str, Any],
    health: Health,
    status: RuntimeStatus,
    uptime_seconds: float,
) -> dict[str, Any]:
    """The full heartbeat: every field, every time, so the platform's view is never reset."""
    error = health.current()
    return {
        "workspace_id": workspace_id,
        "agent_card": card,
        "error_rate": health.error_rate(),
        "sample_error": error.summary() if error else "",
        "sample_error_detail": error.detail() if error else None,
        "runtime_state": health.runtime_state,
        "active_tasks": int(status.active_tasks),
        "current_task": status.current_task,
        "uptime_seconds": int(uptime_seconds),
        "runtime_metadata": dict(status.metadata),
    }


class Heartbeat:
    """Schedules heartbeats until cancelled, after a first register by its ``Registration``.

    ``card`` and ``status`` are called for every beat, so the platform sees the
    current card and work. ``sleep``, ``clock`` and ``rng`` are injectable so
    tests run the schedule in simulated time.
    """

    def __init__(
        self,
        client: PlatformClient,
        health: Health,
        *,
        url: str,
        card: Callable[[], dict[str, Any]],
        interval: float = 30.0,
        status: Callable[[], RuntimeStatus] = RuntimeStatus,
        backoff_cap: float = 60.0,
        register_cap: float = 300.0,
        coalesce: float = 0.2,
        sleep: Sleep = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        started: float | None = None,
    ) -> None:
        self.client = client
        self.health = health
        self.url = url
        self.card = card
        self.interval = interval
        self.status = status
        self.backoff_cap = backoff_cap
        self.register_cap = register_cap
        self.coalesce = coalesce
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        # one uptime for heartbeats and /health: the process's start when given
        self._started = clock() if started is None else started
        self.registration = Registration(
            client,
            health,
            url=url,
            card=card,
            cap=register_cap,
            interval=interval,
            on_refused=self._register_refused,
            sleep=sleep,
            rng=rng,
        )
        self.beats_sent = 0
        self._last_unscheduled = -MIN_UNSCHEDULED_GAP
        self._urgent = False
        # how long re-registrations after a platform restart are spread over
        self.reregister_spread = min(10.0, interval / 3)

    # -- registration (its own owner) -------------------------------------------------

    @property
    def registered(self) -> bool:
        return self.registration.registered

    @registered.setter
    def registered(self, value: bool) -> None:
        self.registration.registered = value

    async def register_once(self) -> bool:
        """One register attempt; the outcome goes to ``health``; True on success."""
        return await self.registration.once()

    def safe_card(self) -> dict[str, Any]:
        return self.registration.safe_card()

    def _register_refused(self) -> None:
        # the refusal stamped a failure marker on the platform: a card-bearing heartbeat
        # right away clears it, instead of degraded until the next beat
        self._urgent = True
        self.health.poke()

    # -- heartbeats -------------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        return heartbeat_body(
            self.client.workspace_id,
            self.safe_card(),
            self.health,
            self.status(),
            self._clock() - self._started,
        )

    async def beat(self) -> None:
        """One heartbeat, no retry; a success clears platform errors other than a refused
        registration."""
        started = time.perf_counter()
        with telemetry.span("heartbeat") as current:
            try:
                await self.client.heartbeat(self.body())
            except PlatformError as error:
                telemetry.set_attributes(
                    current, **{"error.type": error.kind, "http.response.status_code": error.status}
                )
                telemetry.count("heartbeat.failures", kind=error.kind)
                raise
            finally:
                telemetry.observe("heartbeat.duration", time.perf_counter() - started)
            telemetry.set_attributes(current, **{"http.response.status_code": 200})
        self.beats_sent += 1
        self.health.record_success("platform", operation=BEAT)

    def _before_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = state.upcoming_sleep
        log.warning("heartbeat failed (%s); next try in %.1f s", error, delay)
        if isinstance(error, PlatformError):
            # the platform cannot hear this, but /health, doctor and the logs can
            self.health.record_failure(classify(error, "platform"), operation=BEAT)

    async def _beat_with_backoff(self) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((PlatformUnavailable, PlatformAuthError)),
            wait=PlatformWait(interval=self.interval, cap=self.backoff_cap, rng=self._rng),
            stop=stop_never,
            sleep=self._sleep,
            before_sleep=self._before_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.beat()

    async def _wait_next(self, version: int) -> None:
        """Sleep one interval ±10 %, or until health changes (then coalesce briefly)."""
        delay = self.interval * (0.9 + 0.2 * self._rng())
        async with anyio.create_task_group() as group:

            async def interval() -> None:
                await self._sleep(delay)
                group.cancel_scope.cancel()

            async def change() -> None:
                await self.health.wait_changed(version)
                gap = self._last_unscheduled + MIN_UNSCHEDULED_GAP - self._clock()
                if self._urgent:
                    # a refused register is already backed off: its marker-clearing beat
                    # goes at once, whatever the flap limit says
                    gap, self._urgent = 0.0, False
                await self._sleep(max(self.coalesce, gap))
                self._last_unscheduled = self._clock()
                group.cancel_scope.cancel()

            group.start_soon(interval)
            group.start_soon(change)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Register, then heartbeat forever; ``task_status.started()`` after the first
        register attempt."""
        async with anyio.create_task_group() as group:
            if not await self.register_once():
                group.start_soon(self.registration.until_done)
            task_status.started()
            while True:
                version = self.health.version
                try:
                    await self._beat_with_backoff()
                except WorkspaceUnknown:
                    # a platform that lost its state is being hit by its whole fleet:
                    # register again after a jittered pause, not all at the same instant
                    log.warning("the platform does not know this workspace; registering again")
                    self.registered = False
                    group.start_soon(self.registration.until_done, self.reregister_spread)
                except PlatformRejected as error:
                    # a 4xx other than 401/404/408/429: not retried in a tight loop
                    self.health.record_failure(classify(error, "platform"), operation=BEAT)
                    log.warning("heartbeat refused: %s", error)
                except Exception:  # the loop never dies
                    log.exception("unexpected error in the heartbeat loop; continuing")
                await self._wait_next(version)
