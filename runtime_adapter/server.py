"""The runtime's own HTTP server: ``/health``, the agent card, and the adapter's routes.

Served by uvicorn inside the lifecycle's task group (uvicorn's own signal
handling is switched off: the lifecycle owns SIGTERM). The adapter's routes
can be swapped at any time (a failed boot has none, a reboot brings them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from . import telemetry
from .errors import RuntimeAdapterError
from .health import Health

__all__ = ["ServerState", "build_app", "serve"]

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    """What the server shows; the lifecycle updates it as the workspace boots."""

    health: Health
    card: Callable[[], dict[str, Any]]
    booted: bool = False
    accepting: bool = True  # False once shutting down: adapter routes answer 503
    details: Callable[[], dict[str, Any]] = dict
    _router: Router = field(default_factory=lambda: Router(routes=[]))

    def set_routes(self, routes: Sequence[BaseRoute]) -> None:
        self._router = Router(routes=list(routes))

    def health_view(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of ``/health``: 503 failed, 200 degraded, 200 ok."""
        error = self.health.current()
        if not self.booted:
            status, code = "failed", 503
        elif self.health.runtime_state or error is not None:
            status, code = "degraded", 200
        else:
            status, code = "ok", 200
        body = {
            "status": status,
            "runtime_state": self.health.runtime_state,
            "sample_error": error.summary() if error else "",
            "sample_error_detail": error.detail() if error else None,
            **self.details(),
        }
        return code, body


def build_app(state: ServerState) -> Starlette:
    async def health(request: Request) -> Response:
        code, body = state.health_view()
        return JSONResponse(body, status_code=code)

    async def live(request: Request) -> Response:
        # liveness: the process serves requests. A failed boot is alive (it reports and
        # waits for a fix); restarting it would only turn a config error into a crash loop.
        return JSONResponse({"status": "alive"})

    async def card(request: Request) -> Response:
        return JSONResponse(state.card())

    async def adapter_routes(scope: Scope, receive: Receive, send: Send) -> None:
        if not state.accepting and scope["type"] == "http":
            busy = JSONResponse(
                {"error": "shutting down"}, status_code=503, headers={"Retry-After": "10"}
            )
            await busy(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        with telemetry.remote_parent(headers):  # a caller's trace continues here
            await state._router(scope, receive, send)

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/health/live", live, methods=["GET"]),
            Route("/.well-known/agent-card.json", card, methods=["GET"]),
        ]
    )
    app.router.default = adapter_routes  # anything else goes to the adapter's routes
    return app


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the lifecycle handles signals


async def serve(
    app: Any, host: str, port: int, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``app`` until cancelled; ``task_status.started(port)`` once listening."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        interface="asgi3",
    )
    server = _Server(config)
    done = anyio.Event()

    async def run() -> None:
        try:
            # shielded: uvicorn stops through should_exit, closing connections cleanly
            with anyio.CancelScope(shield=True):
                await server.serve()
        except SystemExit:
            pass  # uvicorn exits when it cannot bind: reported below, as our error
        finally:
            done.set()

    failed = False
    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(10):
            # uvicorn exposes readiness only as a flag, not an event to wait on
            while not server.started and not done.is_set():  # noqa: ASYNC110
                await anyio.sleep(0.01)
        failed = not server.started
        if not failed:
            bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
            log.info("listening on %s:%s", host, bound)
            task_status.started(bound)
            try:
                await anyio.sleep_forever()
            finally:
                server.should_exit = True
                with anyio.CancelScope(shield=True):
                    with anyio.move_on_after(3):
                        await done.wait()
                    server.force_exit = True
                    await done.wait()
    if failed:
        # raised outside the task group, so the caller sees this error, not a group
        raise RuntimeAdapterError(f"cannot listen on {host}:{port} (address in use?)")
