"""Simulated time for schedules: ``sleep`` waits on a virtual clock that a driver
advances only when every task is blocked, so 30 s of outage take milliseconds.

Pass ``vt.sleep`` and ``vt`` (the clock) to ``Heartbeat`` and
``PlatformEmulator``, then ``await vt.run_until(condition)``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

import anyio

__all__ = ["VirtualTime"]

T0 = 1_800_000_000.0


async def _all_blocked() -> None:
    """Until every other task waits on something that only time can end: no task
    runnable, no callback queued, no worker thread busy. anyio's own version sleeps
    0.1 s of real time whenever a task is runnable, which makes large simulations
    crawl."""
    try:
        this = asyncio.current_task()
    except RuntimeError:
        await anyio.wait_all_tasks_blocked()
        return
    limiter = anyio.to_thread.current_default_thread_limiter()
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(0)
        if limiter.borrowed_tokens:
            # a task awaiting a worker thread looks blocked but is not: its result would
            # arrive after the clock had jumped past its work
            await asyncio.sleep(0.0005)
            continue
        if getattr(loop, "_ready", None):
            # callbacks still queued (a finished child's done-callback that will wake its
            # task group's host): a task waiting on them only looks blocked
            continue
        for task in asyncio.all_tasks():
            if task is this:
                continue
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is None or waiter.done():
                break
        else:
            return


class VirtualTime:
    """A clock (call it) with a ``sleep`` that only virtual time ends."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        wake = self.now + max(0.0, delay)
        entry = next(self._ids)
        event = anyio.Event()
        heapq.heappush(self._sleepers, (wake, entry, event))
        try:
            await event.wait()
        finally:
            if not event.is_set():
                self._cancelled.add(entry)

    async def run_until(self, done: Callable[[], bool], limit: float = 3600.0) -> None:
        """Advance virtual time sleeper by sleeper until ``done()``; fail past ``limit``."""
        deadline = self.now + limit
        idle = 0
        while True:
            await _all_blocked()
            if done():
                return
            while self._sleepers and self._sleepers[0][1] in self._cancelled:
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                # tasks may be waiting on worker threads (file I/O): give them real time
                idle += 1
                if idle > 5000:
                    raise AssertionError("nothing is sleeping and the condition is not met")
                await anyio.sleep(0.001)
                continue
            idle = 0
            wake, _, event = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            if self.now > deadline:
                raise AssertionError(f"condition not met within {limit} s of virtual time")
            event.set()
