"""A platform emulator: the Molecule workspace server's registry API, as an ASGI app.

It implements DESIGN §7 and §11 the way the real server does: typed payload
binding (a wrong type is a 400), a bearer token issued on the first
register and required afterwards, URL validation per deploy mode, the
status machine with the register-failure marker, and ``GET /workspaces/{id}``.
Tests add faults (fail, delay, drop, forget everything) and read the
recorder. Credentials are recorded as fingerprints only.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from .._netrules import url_verdict
from ..errors import fingerprint

__all__ = ["Fault", "PlatformCall", "PlatformEmulator", "WorkspaceRecord"]

Resolver = Callable[[str], Sequence[str]]


def _system_resolver(host: str) -> Sequence[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class WorkspaceRecord:
    """What the platform knows about one workspace."""

    id: str
    status: str = "provisioning"
    url: str | None = None
    agent_card: dict[str, Any] | None = None
    token: str | None = field(default=None, repr=False)
    # minted on the first register (DESIGN §7, §11): what the platform presents when it
    # calls the workspace; sent in every register and heartbeat answer
    inbound_secret: str | None = field(default=None, repr=False)
    delivery_mode: str = "push"  # "poll": registered without a URL (§14)
    origin: str | None = None  # the Origin a poll-mode register carried
    received: list[dict[str, Any]] = field(default_factory=list)  # messages at its /a2a
    notifications: list[dict[str, Any]] = field(default_factory=list)  # its /notify
    runtime_state: str = ""
    last_sample_error: str = ""
    last_sample_error_detail: dict[str, Any] | None = None
    error_rate: float = 0.0
    active_tasks: int = 0
    current_task: str = ""
    uptime_seconds: int = 0
    runtime_metadata: dict[str, Any] | None = None
    last_heartbeat_at: float | None = None
    register_failure_at: float | None = None
    register_failure_reason: str | None = None


@dataclass(frozen=True)
class PlatformCall:
    """One recorded request. ``authorization`` is ``Bearer sha256:...`` or None;
    ``status`` 0 means no response was sent (a dropped connection)."""

    time: float
    method: str
    path: str
    status: int
    authorization: str | None
    headers: dict[str, str]
    body: Any


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
        resolver: Resolver = _system_resolver,
    ) -> None:
        if deploy_mode not in ("saas", "self-hosted", "local"):
            raise ValueError("deploy_mode must be 'saas', 'self-hosted' or 'local'")
        self.deploy_mode = deploy_mode
        self.marker_window = marker_window
        self.offline_after = offline_after
        self.clock = clock
        self.resolver = resolver
        self.workspaces: dict[str, WorkspaceRecord] = {}
        self._calls: list[PlatformCall] = []
        self._faults: dict[str, Fault] = {}
        self._latency: dict[str, float] = {}
        self._outage: tuple[float, int] | None = None
        self._lock = threading.Lock()
        self.on_call: Callable[[PlatformCall], None] | None = None
        # poll delivery (§14): a2a_receive rows per workspace, oldest first; ids are
        # increasing; a pruned id is one the activity route answers 410 for
        self.activity: dict[str, list[dict[str, Any]]] = {}
        self._pruned: set[str] = set()
        self._row_seq = 0
        routes = [
            Route("/registry/register", self._register, methods=["POST"]),
            Route("/registry/heartbeat", self._heartbeat, methods=["POST"]),
            Route("/registry/update-card", self._update_card, methods=["POST"]),
            Route("/workspaces/{workspace_id}", self._workspace, methods=["GET"]),
            Route("/workspaces/{workspace_id}/a2a", self._a2a, methods=["POST"]),
            Route("/workspaces/{workspace_id}/notify", self._notify, methods=["POST"]),
            Route("/workspaces/{workspace_id}/activity", self._activity, methods=["GET"]),
            Route("/health", self._health, methods=["GET"]),
        ]
        self._router = Starlette(routes=routes)

    # -- test controls --------------------------------------------------------------

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
        with self._lock:
            self._faults[path] = Fault(count=count, status=status, retry_after=retry_after)

    def drop_next(self, path: str, count: int = 1) -> None:
        """Cut the connection of the next ``count`` requests to ``path``."""
        with self._lock:
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
        with self._lock:
            self._faults[path] = Fault(
                count=count, status=status, raw=(tuple((headers or {}).items()), body)
            )

    def drip_next(self, path: str, *, every: float, count: int = 1) -> None:
        """Answer the next ``count`` requests to ``path`` one byte every ``every`` seconds
        (each read arrives in time; only a deadline on the whole exchange helps)."""
        with self._lock:
            self._faults[path] = Fault(count=count, status=200, drip=every)

    def set_latency(self, path: str, seconds: float) -> None:
        """Delay every request to ``path`` (0 removes the delay)."""
        with self._lock:
            self._latency[path] = seconds

    def outage(self, seconds: float, status: int = 503) -> None:
        """Answer every platform API request (``/registry/*``, ``/workspaces/*``) with
        ``status`` for ``seconds`` of ``clock``."""
        with self._lock:
            self._outage = (self.clock() + seconds, status)

    def restart(self) -> None:
        """Forget every workspace, token and fault: a platform restart with a lost database."""
        with self._lock:
            self.workspaces.clear()
            self._faults.clear()
            self._latency.clear()
            self._outage = None

    def provision(
        self, workspace_id: str, *, token_path: Path | None = None, url: str | None = None
    ) -> str:
        """The provisioner: revoke any token, issue a new one, write it to ``token_path``."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            record = self.workspaces.setdefault(workspace_id, WorkspaceRecord(workspace_id))
            record.token = token
            if url is not None:
                record.url = url
        if token_path is not None:
            temporary = token_path.with_name(token_path.name + ".tmp")
            temporary.write_text(token + "\n")
            temporary.chmod(0o600)
            temporary.replace(token_path)
        return token

    def send_message(
        self,
        workspace_id: str,
        text: str,
        *,
        source_id: str | None = None,
        context_id: str | None = None,
        method: str = "message/send",
    ) -> str:
        """Queue a message for a poll-mode workspace as the platform's proxy does (from
        a peer when ``source_id`` is set, else from the platform's user); its row id."""
        message: dict[str, Any] = {
            "kind": "message",
            "messageId": f"m-{secrets.token_hex(6)}",
            "role": "user",
            "parts": [{"kind": "text", "text": text}],
        }
        if context_id is not None:
            message["contextId"] = context_id
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}}
        with self._lock:
            return self._queue(workspace_id, body, source_id)

    def _queue(self, workspace_id: str, body: Any, source_id: str | None) -> str:
        self._row_seq += 1
        row_id = f"{self._row_seq:012d}"
        method = body.get("method") if isinstance(body, dict) else None
        self.activity.setdefault(workspace_id, []).append(
            {
                "id": row_id,
                "workspace_id": workspace_id,
                "activity_type": "a2a_receive",
                "source_id": source_id,
                "target_id": workspace_id,
                "method": method,
                "summary": None,
                "request_body": body,
                "status": "queued",
                "created_at": _iso(self.clock()),
                "_at": self.clock(),
            }
        )
        return row_id

    def prune_activity(self, workspace_id: str, keep: int = 0) -> None:
        """Forget all but the newest ``keep`` rows (a cursor naming one is then 410)."""
        with self._lock:
            rows = self.activity.get(workspace_id, [])
            cut = rows[: max(0, len(rows) - keep)]
            self._pruned.update(row["id"] for row in cut)
            self.activity[workspace_id] = rows[len(cut) :]

    @property
    def calls(self) -> list[PlatformCall]:
        """Every request so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, path: str) -> list[PlatformCall]:
        return [call for call in self.calls if call.path == path]

    def view(self, workspace_id: str) -> dict[str, Any] | None:
        """What ``GET /workspaces/{id}`` answers, or None for an unknown workspace."""
        with self._lock:
            record = self.workspaces.get(workspace_id)
            return None if record is None else self._view(record)

    # -- ASGI -----------------------------------------------------------------------

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        path = scope["path"]
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

        with self._lock:
            delay = self._latency.get(path, 0.0)
            fault = self._faults.get(path)
            if fault is not None and fault.count > 0:
                fault.count -= 1
            else:
                fault = None
            if self._outage is not None and path.startswith(("/registry/", "/workspaces/")):
                until, outage_status = self._outage
                if self.clock() < until:
                    fault = Fault(count=0, status=outage_status)
        if delay:
            await anyio.sleep(delay)
        try:
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
                await self._router(scope, replay, recording_send)
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
            time=self.clock(),
            method=scope["method"],
            path=scope["path"],
            status=status,
            authorization=authorization,
            headers=headers,
            body=body,
        )
        with self._lock:
            self._calls.append(call)
        if self.on_call is not None:
            self.on_call(call)

    # -- rules ----------------------------------------------------------------------

    @staticmethod
    def _error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status)

    @staticmethod
    async def _json_object(request: Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def _auth(self, request: Request, record: WorkspaceRecord | None) -> JSONResponse | None:
        """None when authorised (or the workspace has no token yet), else the 401."""
        if record is None or record.token is None:
            return None
        header = request.headers.get("authorization")
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            return self._error(401, "missing workspace auth token")
        if not secrets.compare_digest(header[7:].strip(), record.token):
            return self._error(401, "invalid workspace auth token")
        return None

    def _known(self, request: Request, workspace_id: str) -> WorkspaceRecord | Response:
        """The workspace (lock held) if it exists and the request carries its token; else
        the 404 or 401 to answer."""
        record = self.workspaces.get(workspace_id)
        if record is None:
            return self._error(404, "unknown workspace")
        denied = self._auth(request, record)
        return record if denied is None else denied

    def _evaluate(self, record: WorkspaceRecord) -> None:
        now = self.clock()
        marker = (
            record.register_failure_at is not None
            and now - record.register_failure_at < self.marker_window
        )
        if record.runtime_state == "wedged" or record.error_rate >= 0.5 or marker:
            record.status = "degraded"
        elif record.error_rate < 0.1 or record.status in ("provisioning", "offline"):
            record.status = "online"

    def _view(self, record: WorkspaceRecord) -> dict[str, Any]:
        now = self.clock()
        status = record.status
        if (
            record.last_heartbeat_at is not None
            and now - record.last_heartbeat_at > self.offline_after
        ):
            status = "offline"
        fresh = (
            record.register_failure_at is not None
            and now - record.register_failure_at < self.marker_window
        )
        return {
            "id": record.id,
            "status": status,
            "url": record.url,
            "agent_card": record.agent_card,
            "runtime_state": record.runtime_state,
            "last_sample_error": record.last_sample_error,
            "last_sample_error_detail": record.last_sample_error_detail,
            "error_rate": record.error_rate,
            "active_tasks": record.active_tasks,
            "current_task": record.current_task,
            "uptime_seconds": record.uptime_seconds,
            "runtime_metadata": record.runtime_metadata,
            "last_heartbeat_at": _iso(record.last_heartbeat_at),
            "delivery_mode": record.delivery_mode,
            "received": list(record.received),
            "notifications": list(record.notifications),
            "register_failure": (
                {"at": _iso(record.register_failure_at), "reason": record.register_failure_reason}
                if fresh
                else None
            ),
        }

    async def _register(self, request: Request) -> Response:
        body = await self._json_object(request)
        if body is None:
            return self._error(400, "invalid JSON body")
        workspace_id, url, card = body.get("id"), body.get("url"), body.get("agent_card")
        if not isinstance(workspace_id, str) or not workspace_id:
            return self._error(400, "id is required and must be a string")
        poll = body.get("delivery_mode") == "poll"
        if not poll and (not isinstance(url, str) or not url):
            return self._error(400, "url is required and must be a string")
        if not isinstance(card, dict):
            return self._error(400, "agent_card is required and must be an object")
        with self._lock:
            record = self.workspaces.get(workspace_id)
            denied = self._auth(request, record)
        if denied is not None:
            return denied
        if poll:
            origin = request.headers.get("origin")
            if self.deploy_mode == "saas" and not origin:
                return self._error(403, "origin required")  # the SaaS web firewall
            return self._register_poll(workspace_id, card, origin)
        assert isinstance(url, str)
        host = httpx.URL(url).host if url.startswith(("http://", "https://")) else ""
        resolved = await anyio.to_thread.run_sync(self.resolver, host) if host else []
        reason = url_verdict(url, self.deploy_mode, resolved)
        with self._lock:
            record = self.workspaces.setdefault(workspace_id, WorkspaceRecord(workspace_id))
            if reason is not None:
                record.register_failure_at = self.clock()
                record.register_failure_reason = f"url_validate_failed: {reason}"
                self._evaluate(record)
                return self._error(400, f"url_validate_failed: {reason}")
            record.delivery_mode, record.url = "push", url
            answer = self._registered(record, card)
        return JSONResponse(answer)

    def _register_poll(
        self, workspace_id: str, card: dict[str, Any], origin: str | None
    ) -> Response:
        with self._lock:
            record = self.workspaces.setdefault(workspace_id, WorkspaceRecord(workspace_id))
            record.delivery_mode, record.origin, record.url = "poll", origin, None
            answer = {**self._registered(record, card), "delivery_mode": "poll"}
        return JSONResponse(answer)

    def _registered(self, record: WorkspaceRecord, card: dict[str, Any]) -> dict[str, Any]:
        """A register taken (the lock held): the card, the marker cleared, a token issued
        on the first one, the inbound secret minted once and sent every time."""
        record.agent_card = card
        record.register_failure_at = None
        record.register_failure_reason = None
        answer: dict[str, Any] = {"status": "registered"}
        if record.token is None:
            record.token = secrets.token_urlsafe(32)
            answer["auth_token"] = record.token
        if record.inbound_secret is None:
            record.inbound_secret = secrets.token_urlsafe(32)
        answer["platform_inbound_secret"] = record.inbound_secret
        self._evaluate(record)
        return answer

    async def _a2a(self, request: Request) -> Response:
        """The A2A proxy: a message to a poll-mode workspace is queued as an activity row
        (``{"status": "queued", ...}``); anything else is recorded as received there."""
        target = request.path_params["workspace_id"]
        body = await self._json_object(request)
        if body is None:
            return self._error(400, "invalid JSON body")
        source = request.headers.get("x-source-workspace-id")
        with self._lock:
            if source is not None:
                sender = self.workspaces.get(source)
                if sender is not None and sender.token is not None:
                    denied = self._auth(request, sender)  # a workspace speaks as itself
                    if denied is not None:
                        return denied
            record = self.workspaces.setdefault(target, WorkspaceRecord(target))
            if record.delivery_mode == "poll":
                self._queue(target, body, source)
                method = body.get("method")
                return JSONResponse({"status": "queued", "delivery_mode": "poll", "method": method})
            record.received.append({"from": source, "body": body, "at": _iso(self.clock())})
        return JSONResponse({"status": "delivered"})

    async def _notify(self, request: Request) -> Response:
        workspace_id = request.path_params["workspace_id"]
        body = await self._json_object(request)
        if body is None or not isinstance(body.get("message"), str):
            return self._error(400, "message (string) is required")
        with self._lock:
            record = self._known(request, workspace_id)
            if isinstance(record, Response):
                return record
            record.notifications.append({"message": body["message"], "at": _iso(self.clock())})
        return JSONResponse({"status": "ok"})

    async def _activity(self, request: Request) -> Response:
        workspace_id = request.path_params["workspace_id"]
        query = request.query_params
        with self._lock:
            record = self._known(request, workspace_id)
            if isinstance(record, Response):
                return record
            rows = [
                r
                for r in self.activity.get(workspace_id, [])
                if query.get("type") in (None, r["activity_type"])
            ]
            since_id, since_secs = query.get("since_id"), query.get("since_secs")
            if since_id:
                if since_id in self._pruned:
                    return self._error(410, "cursor pruned")
                ids = [r["id"] for r in rows]
                if since_id not in ids:
                    return self._error(410, "cursor unknown")
                rows = rows[ids.index(since_id) + 1 :]
            elif since_secs is not None and since_secs.isdigit():
                rows = [r for r in rows if r["_at"] >= self.clock() - int(since_secs)]
            limit = int(query["limit"]) if query.get("limit", "").isdigit() else 100
            page = [{k: v for k, v in r.items() if k != "_at"} for r in rows[: max(1, limit)]]
        return JSONResponse(page)

    async def _heartbeat(self, request: Request) -> Response:
        body = await self._json_object(request)
        if body is None:
            return self._error(400, "invalid JSON body")
        problem = _heartbeat_problem(body)
        if problem is not None:
            return self._error(400, problem)
        with self._lock:
            record = self.workspaces.get(body["workspace_id"])
            if record is None:
                return self._error(404, "unknown workspace")
            denied = self._auth(request, record)
            if denied is not None:
                return denied
            # the server stores the whole heartbeat: a missing field resets to empty
            record.error_rate = float(body.get("error_rate") or 0.0)
            record.last_sample_error = body.get("sample_error") or ""
            record.last_sample_error_detail = body.get("sample_error_detail")
            record.runtime_state = body.get("runtime_state") or ""
            record.active_tasks = body.get("active_tasks") or 0
            record.current_task = body.get("current_task") or ""
            record.uptime_seconds = body.get("uptime_seconds") or 0
            record.runtime_metadata = body.get("runtime_metadata")
            record.last_heartbeat_at = self.clock()
            card = body.get("agent_card")
            if isinstance(card, dict):
                record.agent_card = card
                if record.token is not None:
                    # a live, authenticated heartbeat carrying a card proves the agent is up
                    record.register_failure_at = None
                    record.register_failure_reason = None
            self._evaluate(record)
            answer = {"status": "ok"}
            if record.inbound_secret is not None:
                answer["platform_inbound_secret"] = record.inbound_secret
        return JSONResponse(answer)

    async def _update_card(self, request: Request) -> Response:
        body = await self._json_object(request)
        if body is None:
            return self._error(400, "invalid JSON body")
        workspace_id, card = body.get("workspace_id"), body.get("agent_card")
        if not isinstance(workspace_id, str) or not isinstance(card, dict):
            return self._error(400, "workspace_id (string) and agent_card (object) are required")
        with self._lock:
            record = self._known(request, workspace_id)
            if isinstance(record, Response):
                return record
            record.agent_card = card
        return JSONResponse({"status": "updated"})

    async def _workspace(self, request: Request) -> Response:
        view = self.view(request.path_params["workspace_id"])
        if view is None:
            return self._error(404, "unknown workspace")
        return JSONResponse(view)

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


def _heartbeat_problem(body: dict[str, Any]) -> str | None:
    """The 400 message for a heartbeat the Go server's typed binding would refuse."""
    if not isinstance(body.get("workspace_id"), str) or not body["workspace_id"]:
        return "workspace_id is required and must be a string"
    strings = ("sample_error", "runtime_state", "current_task")
    for name in strings:
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"{name} must be a string"
    for name in ("active_tasks", "uptime_seconds"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{name} must be an integer"
    rate = body.get("error_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
        return "error_rate must be a number"
    for name in ("agent_card", "sample_error_detail", "runtime_metadata"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            return f"{name} must be an object"
    return None
