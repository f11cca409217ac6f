"""The emulated platform's faults (DESIGN §11): fail, drop, raw bytes, drip, latency
and outage, per path, for tests and benchmarks."""

from __future__ import annotations

import json
from dataclasses import dataclass

import anyio
import httpx
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ._records import Shared

__all__ = ["Fault", "Faults"]


@dataclass
class Fault:
    """An injected fault on one path: fail ``count`` requests, delay, or drop them."""

    count: int = 0
    status: int = 503
    retry_after: str | None = None
    drop: bool = False
    raw: tuple[tuple[tuple[str, str], ...], bytes] | None = None  # (headers, body) as given
    drip: float = 0.0  # seconds between the bytes of a 200 answer


class _Dropped(httpx.RemoteProtocolError):
    """Raised inside the app to cut a connection: over ASGITransport the client sees
    this httpx error; over a socket uvicorn closes the connection mid-response."""


class Faults:
    """The faults to inject, per path: ``take(path)`` is the one for this request."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._faults: dict[str, Fault] = {}
        self._latency: dict[str, float] = {}
        self._outage: tuple[float, int] | None = None

    def fail_next(
        self,
        path: str,
        count: int = 1,
        status: int = 503,
        retry_after: str | float | None = None,
    ) -> None:
        """Answer the next ``count`` requests to ``path`` with ``status`` (``retry_after``
        in seconds, or an HTTP date)."""
        if not 100 <= int(status) <= 599:
            raise ValueError("status must be an HTTP status from 100 to 599")
        if isinstance(retry_after, bool) or not isinstance(retry_after, str | int | float | None):
            raise TypeError("retry_after must be seconds (a number) or an HTTP-date string")
        if isinstance(retry_after, int | float):
            retry_after = str(max(0, round(retry_after)))
        with self.shared.lock:
            self._faults[path] = Fault(count=count, status=status, retry_after=retry_after)

    def drop_next(self, path: str, count: int = 1) -> None:
        """Cut the connection of the next ``count`` requests to ``path``."""
        with self.shared.lock:
            self._faults[path] = Fault(count=count, drop=True)

    def raw_next(
        self,
        path: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` requests to ``path`` with exactly these bytes, as a
        broken proxy does (e.g. ``Content-Encoding: gzip`` on a body that is not)."""
        with self.shared.lock:
            self._faults[path] = Fault(
                count=count, status=status, raw=(tuple((headers or {}).items()), body)
            )

    def drip_next(self, path: str, *, every: float, count: int = 1) -> None:
        """Answer the next ``count`` requests to ``path`` one byte every ``every`` seconds
        (each read arrives in time; only a deadline on the whole exchange helps)."""
        with self.shared.lock:
            self._faults[path] = Fault(count=count, status=200, drip=every)

    def set_latency(self, path: str, seconds: float) -> None:
        """Delay every request to ``path`` (0 removes the delay)."""
        with self.shared.lock:
            self._latency[path] = seconds

    def outage(self, seconds: float, status: int = 503) -> None:
        """Answer every platform API request (``/registry/*``, ``/workspaces/*``) with
        ``status`` for ``seconds`` of ``clock``."""
        with self.shared.lock:
            self._outage = (self.shared.clock() + seconds, status)

    def clear(self) -> None:
        """Forget every fault (the lock held)."""
        self._faults.clear()
        self._latency.clear()
        self._outage = None

    def take(self, path: str) -> tuple[Fault | None, float]:
        """The fault this request to ``path`` meets (counted down), and its delay."""
        with self.shared.lock:
            delay = self._latency.get(path, 0.0)
            fault = self._faults.get(path)
            if fault is not None and fault.count > 0:
                fault.count -= 1
            else:
                fault = None
            if self._outage is not None and path.startswith(("/registry/", "/workspaces/")):
                until, outage_status = self._outage
                if self.shared.clock() < until:
                    fault = Fault(count=0, status=outage_status)
        return fault, delay

    @staticmethod
    async def serve(
        fault: Fault | None,
        scope: Scope,
        replay: Receive,
        send: Send,
        recording_send: Send,
        router: ASGIApp,
    ) -> None:
        """Answer as ``fault`` says, or through ``router`` when there is none."""
        if fault is not None and fault.drop:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", b"64"),
                        (b"content-type", b"application/json"),
                    ],
                }
            )
            raise _Dropped("connection dropped by the platform emulator")
        if fault is not None and fault.raw is not None:
            raw_headers, body = fault.raw
            await recording_send(
                {
                    "type": "http.response.start",
                    "status": fault.status,
                    "headers": [
                        (k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in (*raw_headers, ("content-length", str(len(body))))
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif fault is not None and fault.drip:
            body = json.dumps({"status": "ok", "padding": " " * 64}).encode()
            await recording_send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            for index in range(len(body)):
                await send(
                    {
                        "type": "http.response.body",
                        "body": body[index : index + 1],
                        "more_body": index + 1 < len(body),
                    }
                )
                await anyio.sleep(fault.drip)
        elif fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            response = JSONResponse(
                {"error": f"injected fault {fault.status}"}, fault.status, headers=headers
            )
            await response(scope, replay, recording_send)
        else:
            await router(scope, replay, recording_send)
