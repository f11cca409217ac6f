"""What the emulated platform knows and records: workspaces, calls, and the helpers
its routes share (JSON bodies, error answers, time stamps)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["PlatformCall", "Shared", "WorkspaceRecord"]

Resolver = Callable[[str], Sequence[str]]


def system_resolver(host: str) -> Sequence[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def iso(timestamp: float | None) -> str | None:
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

    def view(self, status: str, marker_fresh: bool) -> dict[str, Any]:
        """``GET /workspaces/{id}``'s answer, with the status the clock makes of it."""
        return {
            "id": self.id,
            "status": status,
            "url": self.url,
            "agent_card": self.agent_card,
            "runtime_state": self.runtime_state,
            "last_sample_error": self.last_sample_error,
            "last_sample_error_detail": self.last_sample_error_detail,
            "error_rate": self.error_rate,
            "active_tasks": self.active_tasks,
            "current_task": self.current_task,
            "uptime_seconds": self.uptime_seconds,
            "runtime_metadata": self.runtime_metadata,
            "last_heartbeat_at": iso(self.last_heartbeat_at),
            "delivery_mode": self.delivery_mode,
            "received": list(self.received),
            "notifications": list(self.notifications),
            "register_failure": (
                {"at": iso(self.register_failure_at), "reason": self.register_failure_reason}
                if marker_fresh
                else None
            ),
        }


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
class Shared:
    """What the emulator's parts share: one lock, one clock, the workspaces."""

    clock: Callable[[], float] = time.time
    lock: threading.Lock = field(default_factory=threading.Lock)
    workspaces: dict[str, WorkspaceRecord] = field(default_factory=dict)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


async def json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def heartbeat_problem(body: dict[str, Any]) -> str | None:
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
