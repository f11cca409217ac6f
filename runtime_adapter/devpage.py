"""The dev sandbox's page (DESIGN §3): the workspace as the platform sees it, live.

A small Starlette app beside the emulator, on loopback, serving plain HTML,
CSS and JavaScript from the package (no build step, nothing from the
network) and one server-sent event stream. Every event comes from the real
source, read when it is sent, never from a copy kept for the page: the
emulator's view of the workspace and its recorder of registers and
heartbeats, the runtime's own ``/health``, and the gateway's ``LLM call``
log lines the runtime writes. The chat box sends A2A messages the way the
platform would (the advertised URL in push mode, the platform's queue in
poll mode); the fault buttons act on the emulator and the fake LLM.

Nothing secret reaches the page: the emulator records credentials as
fingerprints, the runtime's log and answers are redacted, and the inbound
secret a platform-authenticated call needs is used here, never sent on.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .testing import FakeLLM, PlatformEmulator

__all__ = ["DevPage", "Sandbox"]

log = logging.getLogger(__name__)

_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
}
_TICK = 0.25  # how often the stream looks at its sources
_TERMINAL = {"completed", "failed", "canceled", "rejected"}
_KEEP = 500  # chat and fault events kept for a page that connects later


@dataclass
class Sandbox:
    """What the page looks at and acts on: the sandbox ``dev`` runs."""

    emulator: PlatformEmulator
    llm: FakeLLM
    workspace_id: str
    runtime_url: str  # where the runtime's own /health is (loopback)
    log_path: Path  # the runtime's JSON log
    secrets_dir: Path  # the provider key's file lives here (a rotation is a new file)
    key_name: str = "MINIMAX_API_KEY"
    bearer: str | None = None  # A2A_BEARER_TOKENS' first token, when the sandbox set one
    token_path: Path | None = None  # the workspace token file (rotated by the provisioner)


@dataclass
class _Events:
    """Chat and fault events, numbered, bounded."""

    items: deque[tuple[int, str, dict[str, Any]]] = field(
        default_factory=lambda: deque(maxlen=_KEEP)
    )
    seq: int = 0

    def add(self, kind: str, data: dict[str, Any]) -> None:
        self.seq += 1
        self.items.append((self.seq, kind, {**data, "at": time.time()}))

    def since(self, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
        return [item for item in self.items if item[0] > seq]


def _sse(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class DevPage:
    """``DevPage(sandbox).app`` is the page's ASGI app."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.events = _Events()
        self.app = Starlette(
            routes=[
                Route("/", self._asset, methods=["GET"]),
                Route("/static/{name}", self._asset, methods=["GET"]),
                Route("/events", self._stream, methods=["GET"]),
                Route("/api/send", self._send, methods=["POST"]),
                Route("/api/fault", self._fault, methods=["POST"]),
            ]
        )

    # -- the page and its stream ---------------------------------------------------------

    async def _asset(self, request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in _ASSETS:
            return Response(status_code=404)
        body = files("runtime_adapter").joinpath("devpage_static", name).read_bytes()
        return Response(body, media_type=_ASSETS[name], headers={"Cache-Control": "no-store"})

    async def _stream(self, request: Request) -> Response:
        return StreamingResponse(
            self._feed(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _feed(self) -> AsyncIterator[bytes]:
        """Everything so far, then what is new, every ``_TICK``; each client keeps its
        own cursors into the sources, so nothing accumulates per client."""
        calls_seen, log_offset, event_seq = 0, 0, 0
        last_state: dict[str, Any] | None = None
        quiet = 0.0
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                state = await self._state(http)
                if state != last_state:
                    last_state = state
                    yield _sse("state", state)
                calls = self.sandbox.emulator.calls
                for call in calls[calls_seen:]:
                    beat = _beat(call)
                    if beat is not None:
                        yield _sse("beat", beat)
                calls_seen = len(calls)
                calls_found, log_offset = await anyio.to_thread.run_sync(
                    _llm_calls, self.sandbox.log_path, log_offset
                )
                for found in calls_found:
                    yield _sse("llm", found)
                for seq, kind, data in self.events.since(event_seq):
                    event_seq = seq
                    yield _sse(kind, data)
                quiet += _TICK
                if quiet >= 15:  # a comment line keeps proxies and the browser patient
                    quiet = 0.0
                    yield b": keep-alive\n\n"
                await anyio.sleep(_TICK)

    async def _state(self, http: httpx.AsyncClient) -> dict[str, Any]:
        sandbox = self.sandbox
        view = sandbox.emulator.view(sandbox.workspace_id) or {}
        health: dict[str, Any] = {}
        try:
            health = (await http.get(f"{sandbox.runtime_url}/health")).json()
        except (httpx.HTTPError, ValueError):
            health = {}
        return {
            "workspace_id": sandbox.workspace_id,
            "status": view.get("status", "not registered"),
            "url": view.get("url"),
            "delivery_mode": view.get("delivery_mode"),
            "runtime_state": view.get("runtime_state", ""),
            "active_tasks": view.get("active_tasks", 0),
            "current_task": view.get("current_task", ""),
            "uptime_seconds": view.get("uptime_seconds", 0),
            "sample_error": view.get("last_sample_error", ""),
            "last_heartbeat_at": view.get("last_heartbeat_at"),
            "provider": health.get("provider"),
            "model": health.get("model"),
            "phase": health.get("phase"),
            "key_refused": sandbox.llm.refuse_key,
        }

    # -- the chat box ----------------------------------------------------------------------

    async def _send(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            text = str(body["text"]).strip()
            context_id = str(body.get("contextId") or uuid.uuid4())
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "send {'text': ..., 'contextId': ...}"}, 400)
        if not text or len(text) > 20000:
            return JSONResponse({"error": "a message of 1 to 20,000 characters"}, 400)
        view = self.sandbox.emulator.view(self.sandbox.workspace_id) or {}
        if view.get("delivery_mode") == "poll":
            return self._queue(text, context_id, view)
        url = view.get("url")
        if not url:
            return JSONResponse({"error": "the workspace has not registered a URL yet"}, 409)
        message_id = f"page-{secrets.token_hex(6)}"
        self.events.add(
            "task",
            {"contextId": context_id, "messageId": message_id, "state": "sending", "text": text},
        )
        return JSONResponse(
            {"contextId": context_id, "messageId": message_id},
            background=BackgroundTask(self._converse, str(url), text, context_id, message_id),
        )

    def _queue(self, text: str, context_id: str, view: dict[str, Any]) -> Response:
        """Poll mode: the platform queues the message; the reply arrives at /notify."""
        sandbox = self.sandbox
        before = len(view.get("notifications") or [])
        row = sandbox.emulator.send_message(sandbox.workspace_id, text, context_id=context_id)
        self.events.add(
            "task",
            {"contextId": context_id, "messageId": row, "state": "queued", "text": text},
        )
        return JSONResponse(
            {"contextId": context_id, "taskId": row},
            background=BackgroundTask(self._await_notify, context_id, row, before),
        )

    async def _await_notify(self, context_id: str, row: str, before: int) -> None:
        sandbox = self.sandbox
        with anyio.move_on_after(300):
            while True:
                notes = (sandbox.emulator.view(sandbox.workspace_id) or {}).get(
                    "notifications"
                ) or []
                if len(notes) > before:
                    answer = str(notes[before].get("message", ""))
                    state = "failed" if answer.startswith("failed:") else "completed"
                    self.events.add(
                        "task",
                        {
                            "contextId": context_id,
                            "messageId": row,
                            "state": state,
                            "answer": answer,
                        },
                    )
                    return
                await anyio.sleep(0.2)

    def _headers(self) -> dict[str, str]:
        """What the platform would present (A2A_AUTH=platform), or the sandbox's bearer."""
        record = self.sandbox.emulator.workspaces.get(self.sandbox.workspace_id)
        secret = record.inbound_secret if record is not None else None
        token = self.sandbox.bearer or secret
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _converse(self, url: str, text: str, context_id: str, message_id: str) -> None:
        """Push mode: ``message/send`` without blocking, then the task's states as they
        change, until it ends."""
        message = {
            "kind": "message",
            "messageId": message_id,
            "role": "user",
            "contextId": context_id,
            "parts": [{"kind": "text", "text": text}],
        }
        send = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "message/send",
            "params": {"message": message, "configuration": {"blocking": False}},
        }
        event: dict[str, Any] = {"contextId": context_id, "messageId": message_id}
        try:
            async with httpx.AsyncClient(timeout=30, headers=self._headers()) as http:
                task = _result(await http.post(url + "/", json=send))
                event["taskId"] = task.get("id")
                seen = ""
                with anyio.fail_after(600):
                    while True:
                        state = str((task.get("status") or {}).get("state", "unknown"))
                        if state != seen:
                            seen = state
                            self.events.add("task", {**event, **_task_view(task)})
                        if state in _TERMINAL or not event["taskId"]:
                            return
                        await anyio.sleep(0.3)
                        get = {
                            "jsonrpc": "2.0",
                            "id": 2,
                            "method": "tasks/get",
                            "params": {"id": event["taskId"]},
                        }
                        task = _result(await http.post(url + "/", json=get))
        except (httpx.HTTPError, ValueError, TimeoutError) as error:
            self.events.add("task", {**event, "state": "failed", "answer": f"no answer: {error}"})

    # -- the faults ------------------------------------------------------------------------

    async def _fault(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            kind = str(body["kind"])
            seconds = float(body.get("seconds") or 20)
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "send {'kind': ..., 'seconds': ...}"}, 400)
        sandbox = self.sandbox
        if kind in ("refuse-key", "accept-key"):
            sandbox.llm.refuse_key = kind == "refuse-key"
            # a new key file: the runtime re-plans and probes it at once, as after a
            # rotation, so the refusal (or the recovery) shows without waiting for a turn
            rotate_key(sandbox.secrets_dir, sandbox.key_name)
            said = "the LLM refuses the key" if kind == "refuse-key" else "the LLM accepts it"
        elif kind == "outage":
            if not 1 <= seconds <= 600:
                return JSONResponse({"error": "an outage of 1 to 600 seconds"}, 400)
            sandbox.emulator.outage(seconds)
            said = f"platform outage for {seconds:.0f} s"
        elif kind == "rotate-token":
            sandbox.emulator.provision(sandbox.workspace_id, token_path=sandbox.token_path)
            said = "the provisioner rotated the workspace token"
        else:
            return JSONResponse({"error": f"unknown fault {kind[:40]!r}"}, 400)
        self.events.add("fault", {"kind": kind, "text": said})
        return JSONResponse({"done": said})


def rotate_key(secrets_dir: Path, name: str) -> None:
    """Write a fresh dev key (the fake LLM takes any key unless told to refuse)."""
    path = secrets_dir / name
    temporary = path.with_name(f".{name}.tmp")
    temporary.write_text(f"dev-fake-key-{secrets.token_hex(4)}\n")
    temporary.chmod(0o600)
    temporary.replace(path)


def _result(answer: httpx.Response) -> dict[str, Any]:
    data = answer.json()
    if not isinstance(data, dict):
        raise ValueError("not a JSON-RPC answer")
    if "error" in data:
        error = data["error"] or {}
        raise ValueError(f"{error.get('code')}: {error.get('message')}")
    result = data.get("result") or {}
    if result.get("kind") == "message":  # an adapter that answers with a message
        return {"status": {"state": "completed"}, "artifacts": [{"parts": result.get("parts")}]}
    return dict(result)


def _task_view(task: dict[str, Any]) -> dict[str, Any]:
    status = task.get("status") or {}
    texts = [
        str(part.get("text", ""))
        for artifact in task.get("artifacts") or []
        for part in artifact.get("parts") or []
        if isinstance(part, dict)
    ]
    said = [
        str(part.get("text", ""))
        for part in (status.get("message") or {}).get("parts") or []
        if isinstance(part, dict)
    ]
    state = str(status.get("state", "unknown"))
    view: dict[str, Any] = {"state": state}
    if state in _TERMINAL:
        view["answer"] = "\n".join(texts or said)[:20000]
    elif said:
        view["progress"] = said[-1][:500]
    return view


def _beat(call: Any) -> dict[str, Any] | None:
    """A register or heartbeat as the platform received it (what the runtime sent)."""
    if call.path not in ("/registry/register", "/registry/heartbeat"):
        return None
    body = call.body if isinstance(call.body, dict) else {}
    detail = body.get("sample_error_detail") or {}
    return {
        "at": call.time,
        "kind": "register" if call.path.endswith("register") else "heartbeat",
        "status": call.status,
        "token": call.authorization,  # a fingerprint (the recorder keeps no token)
        "sample_error": body.get("sample_error", ""),
        "error_kind": detail.get("kind") if isinstance(detail, dict) else None,
        "severity": detail.get("severity") if isinstance(detail, dict) else None,
        "runtime_state": body.get("runtime_state", ""),
        "active_tasks": body.get("active_tasks"),
    }


def _llm_calls(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The gateway's ``LLM call`` lines after ``offset`` of the runtime's log (blocking)."""
    found: list[dict[str, Any]] = []
    try:
        with path.open("rb") as log_file:
            log_file.seek(offset)
            data = log_file.read(4 * 2**20)
    except OSError:
        return found, offset
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next look
    for line in data[:end].splitlines():
        if b'"llm_call"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        call = entry.get("llm_call")
        if isinstance(call, dict):
            found.append(call)
    return found, offset + end
