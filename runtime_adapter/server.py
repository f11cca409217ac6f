"""The runtime's own HTTP server: ``/health``, the agent card, and the adapter's routes.

Served by uvicorn inside the lifecycle's task group (uvicorn's own signal
handling is switched off: the lifecycle owns SIGTERM). The adapter's routes
can be swapped at any time (a failed boot has none, a reboot brings them).

Listening and serving are two steps: ``bind`` opens the listening socket at
once (the kernel accepts connections from then on, and an address in use is
known before anything is advertised); ``serve`` imports uvicorn (~80 ms with
h11) and serves that socket, so the lifecycle can send the first register
before paying for it. A connection that arrives in between waits in the
backlog; it is not refused.
"""

from __future__ import annotations

import importlib
import logging
import socket
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from . import telemetry
from .errors import RuntimeAdapterError
from .health import Health
from .inbound import Callers, drain, guard, limit_body

__all__ = ["ServerState", "bind", "build_app", "serve"]

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    """What the server shows; the lifecycle updates it as the workspace boots."""

    health: Health
    card: Callable[[], dict[str, Any]]
    booted: bool = False
    accepting: bool = True  # False once shutting down: adapter routes answer 503
    details: Callable[[], dict[str, Any]] = dict
    # who may call the adapter's routes, and how large a body may be (DESIGN §12)
    callers: Callers = field(default_factory=Callers)
    max_request_bytes: int = 4 * 1024 * 1024
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

    async def current_routes(scope: Scope, receive: Receive, send: Send) -> None:
        await state._router(scope, receive, send)

    # the caller is checked from its headers, then the body is bounded, before any
    # route reads it; a refused request's body is dropped before the answer goes out
    protected = drain(guard(limit_body(current_routes, state.max_request_bytes), state.callers))

    async def adapter_routes(scope: Scope, receive: Receive, send: Send) -> None:
        if not state.accepting and scope["type"] == "http":
            busy = JSONResponse(
                {"error": "shutting down"}, status_code=503, headers={"Retry-After": "10"}
            )
            await drain(busy)(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        with telemetry.remote_parent(headers):  # a caller's trace continues here
            await protected(scope, receive, send)

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/health/live", live, methods=["GET"]),
            Route("/.well-known/agent-card.json", card, methods=["GET"]),
        ]
    )
    app.router.default = adapter_routes  # anything else goes to the adapter's routes
    return app


def bind(host: str, port: int) -> socket.socket:
    """The listening socket on ``host:port`` (0: any free port), or the reason it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise RuntimeAdapterError(
            f"cannot listen on {host}:{port} ({error.strerror or error})"
        ) from None
    log.info("listening on %s:%s", host, sock.getsockname()[1])
    return sock


def _server_class() -> Any:
    uvicorn = importlib.import_module("uvicorn")

    class _Server(uvicorn.Server):  # type: ignore[misc,name-defined]
        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield  # the lifecycle handles signals

    return uvicorn.Config, _Server


async def serve(
    app: Any,
    sock: socket.socket,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    stop: anyio.Event | None = None,
    drain_until: Callable[[], float | None] = lambda: None,
) -> None:
    """Serve ``app`` on the bound ``sock`` until cancelled; ``task_status.started()``
    once uvicorn serves. The socket is closed when serving ends, or if it never starts.

    ``stop`` set: uvicorn stops accepting and lets open connections finish (the
    shutdown has begun). When cancelled, it waits for them until ``drain_until()``
    (the shutdown budget's deadline; 3 s when None), then closes what is left."""
    try:
        # uvicorn and h11 are imported in a worker thread: the loop keeps beating
        config_class, server_class = await anyio.to_thread.run_sync(_server_class)
        host, port = sock.getsockname()[:2]
        config = config_class(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            interface="asgi3",
        )
        await anyio.to_thread.run_sync(config.load)  # imports the protocol classes
        server = server_class(config)
    except BaseException:
        sock.close()
        raise
    done = anyio.Event()

    async def run() -> None:
        try:
            with anyio.CancelScope(shield=True):
                await server.serve(sockets=[sock])
        except SystemExit:
            pass  # uvicorn exits when it cannot start: reported below, as our error
        finally:
            sock.close()
            done.set()

    failed = False

    async def stop_when_told() -> None:
        if stop is not None:
            await stop.wait()
            server.should_exit = True  # no new connection; open ones may finish

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        group.start_soon(stop_when_told)
        try:
            with anyio.move_on_after(10):
                while not server.started and not done.is_set():  # noqa: ASYNC110
                    await anyio.sleep(0.002)
            failed = not server.started
            if not failed:
                task_status.started()
                await anyio.sleep_forever()
        finally:
            # also when cancelled while uvicorn starts: its shielded serve must be told
            # to stop, or the task group would wait for it forever
            server.should_exit = True
            with anyio.CancelScope(shield=True):
                until = drain_until()
                with anyio.move_on_after(3) as drain:
                    if until is not None:
                        drain.deadline = until  # one budget: the shutdown's
                    await done.wait()
                server.force_exit = True
                await done.wait()
            group.cancel_scope.cancel()
    if failed:
        raise RuntimeAdapterError(f"cannot serve on {host}:{port}")
