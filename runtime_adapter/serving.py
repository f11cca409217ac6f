"""Serving the runtime's own HTTP surface (``server``) on ``PORT``: binding it, its
port problems, when it starts serving, the self-check, and the stop.

A port that cannot be bound is the operator's to change: it becomes a
``config_error`` naming ``PORT`` (and the platform's own port when it is
that), reported before the process exits 1. Serving begins once the first
register attempt is out (or after ``SERVE_AFTER``), so importing uvicorn
never delays it; a connection meanwhile waits in the backlog.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import replace

import anyio
import httpx

from .errors import ConfigError, RuntimeAdapterError
from .health import Health, classify
from .logs import REDACTOR
from .server import ServerState, bind, build_app, serve

__all__ = ["SERVE_AFTER", "Serving", "is_platform_address"]

log = logging.getLogger("runtime_adapter.lifecycle")

SERVE_AFTER = 1.0  # serve once the first register is out, or after this long


def is_platform_address(platform_url: str, port: int) -> bool:
    """``PLATFORM_URL`` is on this host and on ``port``."""
    platform = httpx.URL(platform_url)
    local = platform.host in ("127.0.0.1", "localhost", "::1", "0.0.0.0")  # noqa: S104
    return local and (platform.port or {"http": 80, "https": 443}[platform.scheme]) == port


class Serving:
    """The A2A/health server: ``bind()``, then ``run()`` in the task group, ``stop()``
    when the shutdown begins. ``failed`` is set when it cannot listen or serve."""

    def __init__(
        self,
        state: ServerState,
        health: Health,
        *,
        host: str,
        platform_url: str,
        drain_until: Callable[[], float | None],
    ) -> None:
        self.state, self.health = state, health
        self.host, self.platform_url = host, platform_url
        self.drain_until = drain_until
        self.sock: socket.socket | None = None
        self.port = 0
        self.failed = False
        self._stop = anyio.Event()

    def bind(self, port: int) -> bool:
        """Listen on ``port`` now (the kernel queues connections from here on); False,
        with the problem reported, when it cannot."""
        self.port = port
        try:
            self.sock = bind(self.host, port)
        except RuntimeAdapterError as error:
            self.cannot_listen(self.port_problem(port, error))
            return False
        self.port = self.sock.getsockname()[1]
        return True

    async def run(self, registered: anyio.Event, on_failure: Callable[[], None]) -> None:
        """Serve the bound socket once ``registered`` is set (or ``SERVE_AFTER``)."""
        assert self.sock is not None
        with anyio.move_on_after(SERVE_AFTER):
            await registered.wait()
        try:
            await serve(
                build_app(self.state), self.sock, stop=self._stop, drain_until=self.drain_until
            )
        except RuntimeAdapterError as error:
            self.cannot_listen(error)
            on_failure()

    def stop(self) -> None:
        """Stop accepting: new A2A work gets 503, no new connection; open ones finish
        within the shutdown budget."""
        self.state.accepting = False
        self._stop.set()

    def port_problem(self, port: int, error: RuntimeAdapterError) -> ConfigError:
        same = is_platform_address(self.platform_url, port)
        return ConfigError(
            f"PORT {port}: {error}"
            + (f"; it is the platform's own port ({self.platform_url})" if same else ""),
            hint="set PORT (or a2a.port in config.yaml) to a free port",
            variable="PORT",
        )

    def cannot_listen(self, error: RuntimeAdapterError) -> None:
        # reported before the process ends: a silent exit is what §2's incidents were
        if isinstance(error, ConfigError):
            crash = classify(error, "config", redact=REDACTOR)
        else:
            crash = replace(
                classify(error, "runtime", redact=REDACTOR), kind="runtime_crash", severity="error"
            )
        self.health.record_failure(crash, operation="listen")
        self.failed = True
        log.error("%s; reporting it and shutting down", error)

    @staticmethod
    async def check_reachable(url: str) -> None:
        """GET <advertised>/health from inside, once, and log what happened."""
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                answer = await client.get(f"{url}/health")
            log.info("self-check: GET %s/health answered %s", url, answer.status_code)
        except httpx.HTTPError as error:
            log.warning("self-check: GET %s/health failed: %s", url, error)
