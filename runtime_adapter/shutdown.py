"""The stop request and the shutdown budget (DESIGN §9).

``Stopping`` is the request: steps run under ``guard()`` end when it is set.
``Budget`` is the one deadline of the whole shutdown: it hands each part its
share (never past the end), and the servers' wait for open connections ends
with it. Nothing here may extend the budget: a part's own timeout is cut to
what is left.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

__all__ = ["SHUTDOWN_BUDGET", "Budget", "Stopping"]

log = logging.getLogger("runtime_adapter.lifecycle")

SHUTDOWN_BUDGET = 8.0  # SIGTERM -> exit within 10 s in all (DESIGN §9), with margin


class Stopping:
    """The stop request, and the cancel scopes of the steps it ends.

    ``with stopping.guard(): await step()`` runs the step until it returns or the stop
    is requested, whichever comes first: ``set()`` cancels every guarded scope.
    """

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._scopes: set[anyio.CancelScope] = set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()
        for scope in list(self._scopes):
            scope.cancel()

    async def wait(self) -> None:
        await self._event.wait()

    async def on_signals(self) -> None:
        """Set on SIGTERM or SIGINT; a second signal does not kill the shutdown."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for received in signals:
                name = signal.Signals(received).name
                if self.is_set():
                    # the receiver stays open: a second signal must not kill the shutdown
                    log.info("received %s again; already shutting down", name)
                    continue
                log.info("received %s; shutting down", name)
                self.set()

    @contextmanager
    def guard(self) -> Iterator[anyio.CancelScope]:
        with anyio.CancelScope() as scope:
            if self._event.is_set():
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)


class Budget:
    """One deadline for the whole shutdown. ``with budget.run(): ...`` is the one
    shielded scope the shutdown runs in; ``share(seconds)`` is a part's deadline."""

    def __init__(self, seconds: float = SHUTDOWN_BUDGET) -> None:
        self.seconds = seconds
        self.deadline: float | None = None  # set when the shutdown begins

    @contextmanager
    def run(self) -> Iterator[anyio.CancelScope]:
        """The shutdown's scope: shielded from the cancel that ended the run, and
        cancelled itself when the budget is spent."""
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = self.deadline = anyio.current_time() + self.seconds
            yield scope
        if scope.cancelled_caught:
            log.warning("shutdown budget of %.0f s spent; what was left is abandoned", self.seconds)

    def share(self, seconds: float) -> float:
        """A part's deadline: ``seconds`` from now, never past the budget's end."""
        wanted = anyio.current_time() + seconds
        return wanted if self.deadline is None else min(wanted, self.deadline)

    def drain_until(self) -> float | None:
        """Until when a server waits for its open connections (None: not stopping)."""
        return None if self.deadline is None else self.deadline + 0.5
