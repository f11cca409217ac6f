"""The LLM gateway as the runtime serves it (DESIGN §13): its loopback socket, the
plan the agent gets (the gateway's URL and per-boot token instead of the
credential), its observations reported to ``Health``, and when it serves.

The gateway serves once the boot's own work (first register, probe) is done,
or after ``GATEWAY_AFTER``: no agent request can come before the first A2A
message anyway, and the boot's imports compete for the GIL meanwhile.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Callable

import anyio

from . import prefetch, telemetry
from .envplan import EnvPlan, agent_plan
from .errors import RuntimeAdapterError
from .gateway import Gateway, Outcomes
from .health import Health, LLMContext, classify_status
from .logs import REDACTOR
from .server import bind, serve

__all__ = ["GATEWAY_AFTER", "GatewayServing"]

log = logging.getLogger("runtime_adapter.lifecycle")

GATEWAY_AFTER = 3.0


class GatewayServing:
    """``Gateway`` on ``127.0.0.1:<ephemeral>``. ``current_plan`` is the direct plan
    (the real credential), read per request, so a rotated key is used at once."""

    def __init__(
        self,
        current_plan: Callable[[], EnvPlan | None],
        health: Health,
        *,
        drain_until: Callable[[], float | None],
    ) -> None:
        self.current_plan, self.health = current_plan, health
        self.drain_until = drain_until
        self.gateway = Gateway(
            current_plan,
            outcomes=Outcomes(success=self._success, failure=self._failure),
            redact=REDACTOR,
        )
        self._sock: socket.socket | None = None
        self._bound = anyio.Event()  # a plan for the agent was made: there is a socket

    def renew_token(self) -> None:
        """A new gateway token: every boot's agent gets its own."""
        self.gateway.token = secrets.token_urlsafe(32)

    def agent_plan(self, plan: EnvPlan) -> EnvPlan:
        """The plan as the agent gets it: the gateway's loopback URL and token."""
        if self._sock is None:
            self._sock = bind("127.0.0.1", 0)
            self._bound.set()
        port = self._sock.getsockname()[1]
        return agent_plan(plan, url=f"http://127.0.0.1:{port}", token=self.gateway.token)

    async def run(
        self, quiet: anyio.Event, on_problem: Callable[[RuntimeAdapterError], None]
    ) -> None:
        """Serve once a plan for the agent exists (a boot that failed earlier may make
        one later) and ``quiet`` is set (or ``GATEWAY_AFTER``); a request meanwhile
        waits in the backlog."""
        await self._bound.wait()
        assert self._sock is not None
        with anyio.move_on_after(GATEWAY_AFTER):
            await quiet.wait()
        await anyio.to_thread.run_sync(self.gateway.open, prefetch.tls_context(0))
        try:
            await serve(self.gateway.app, self._sock, drain_until=self.drain_until)
        except RuntimeAdapterError as error:
            on_problem(error)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await self.gateway.aclose()

    def _success(self) -> None:
        self.health.record_success("llm_call")
        telemetry.count("llm.outcomes", kind="success")

    def _failure(self, status: int, message: str) -> None:
        plan = self.current_plan()
        llm = LLMContext.from_plan(plan) if plan is not None else None
        failure = classify_status(status, message, "llm_call", llm, redact=REDACTOR)
        self.health.record_failure(failure)
        telemetry.count("llm.outcomes", kind=failure.kind)
