"""``PlatformEmulator``: the Molecule workspace server's API as one ASGI app, made of
its parts (``Registry``, ``Proxy``, ``Faults``) and a recorder of every call.

It implements DESIGN §7 and §11 the way the real server does: typed payload
binding (a wrong type is a 400), a bearer token issued on the first
register and required afterwards, URL validation per deploy mode, the
status machine with the register-failure marker, and ``GET /workspaces/{id}``.
Tests add faults (fail, delay, drop, forget everything) and read the
recorder. Credentials are recorded as fingerprints only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from ...errors import fingerprint
from ._faults import Faults
from ._proxy import Proxy
from ._records import PlatformCall, Resolver, Shared, WorkspaceRecord, system_resolver
from ._registry import Registry

__all__ = ["PlatformEmulator"]


class PlatformEmulator:
    """The emulated workspace server. ``PlatformEmulator().app`` is the ASGI app.

    ``deploy_mode`` is 'saas', 'self-hosted' or 'local' (local also accepts
    loopback, as in ``runtime-adapter dev``). ``clock`` drives the status
    machine (marker window, offline detection) so tests can move time.
    """

    def __init__(
        self,
        *,
        deploy_mode: str = "local",
        marker_window: float = 300.0,
        offline_after: float = 90.0,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = system_resolver,
    ) -> None:
        if deploy_mode not in ("saas", "self-hosted", "local"):
            raise ValueError("deploy_mode must be 'saas', 'self-hosted' or 'local'")
        self.shared = Shared(clock=clock)
        self.registry = Registry(
            self.shared,
            deploy_mode=deploy_mode,
            marker_window=marker_window,
            offline_after=offline_after,
            resolver=resolver,
        )
        self.proxy = Proxy(self.shared, self.registry)
        self.faults = Faults(self.shared)
        self.on_call: Callable[[PlatformCall], None] | None = None
        self._calls: list[PlatformCall] = []
        health = Route("/health", self._health, methods=["GET"])
        self._router = Starlette(routes=[*self.registry.routes(), *self.proxy.routes(), health])
        # the test controls, as they always were: each is its part's
        self.fail_next = self.faults.fail_next
        self.drop_next = self.faults.drop_next
        self.raw_next = self.faults.raw_next
        self.drip_next = self.faults.drip_next
        self.set_latency = self.faults.set_latency
        self.outage = self.faults.outage
        self.provision = self.registry.provision
        self.view = self.registry.view
        self.send_message = self.proxy.send_message
        self.prune_activity = self.proxy.prune_activity

    @property
    def deploy_mode(self) -> str:
        return self.registry.deploy_mode

    @deploy_mode.setter
    def deploy_mode(self, value: str) -> None:
        self.registry.deploy_mode = value

    @property
    def marker_window(self) -> float:
        return self.registry.marker_window

    @marker_window.setter
    def marker_window(self, value: float) -> None:
        self.registry.marker_window = value

    @property
    def offline_after(self) -> float:
        return self.registry.offline_after

    @offline_after.setter
    def offline_after(self, value: float) -> None:
        self.registry.offline_after = value

    @property
    def resolver(self) -> Resolver:
        return self.registry.resolver

    @resolver.setter
    def resolver(self, value: Resolver) -> None:
        self.registry.resolver = value

    @property
    def clock(self) -> Callable[[], float]:
        return self.shared.clock

    @property
    def workspaces(self) -> dict[str, WorkspaceRecord]:
        return self.shared.workspaces

    @property
    def activity(self) -> dict[str, list[dict[str, Any]]]:
        return self.proxy.activity

    def restart(self) -> None:
        """Forget every workspace, token and fault: a platform restart with a lost database."""
        with self.shared.lock:
            self.shared.workspaces.clear()
            self.faults.clear()

    @property
    def calls(self) -> list[PlatformCall]:
        """Every request so far, oldest first."""
        with self.shared.lock:
            return list(self._calls)

    def calls_to(self, path: str) -> list[PlatformCall]:
        return [call for call in self.calls if call.path == path]

    # -- ASGI -----------------------------------------------------------------------

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)

        async def replay() -> Message:
            return {"type": "http.request", "body": raw, "more_body": False}

        status_box: list[int] = []

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                # recorded before the client can see the answer, so tests never race it
                status_box.append(message["status"])
                self._record(scope, raw, message["status"])
            await send(message)

        fault, delay = self.faults.take(scope["path"])
        if delay:
            await anyio.sleep(delay)
        try:
            await self.faults.serve(fault, scope, replay, send, recording_send, self._router)
        finally:
            if not status_box:
                self._record(scope, raw, 0)

    def _record(self, scope: Scope, raw: bytes, status: int) -> None:
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        authorization = headers.pop("authorization", None)
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            authorization = f"{scheme} {fingerprint(token)}" if token else fingerprint(scheme)
        try:
            body: Any = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = raw.decode("utf-8", "replace")
        call = PlatformCall(
            time=self.shared.clock(),
            method=scope["method"],
            path=scope["path"],
            status=status,
            authorization=authorization,
            headers=headers,
            body=body,
        )
        with self.shared.lock:
            self._calls.append(call)
        if self.on_call is not None:
            self.on_call(call)

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})
