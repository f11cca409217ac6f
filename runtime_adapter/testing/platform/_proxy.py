"""The emulated A2A proxy and poll side (DESIGN §11, §14): a message to a poll-mode
workspace is queued as an ``a2a_receive`` activity row, the activity route pages
by cursor (410 for a pruned one), and ``/a2a`` and ``/notify`` record replies."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._records import Shared, WorkspaceRecord, error, iso, json_object
from ._registry import Registry

__all__ = ["Proxy"]


class Proxy:
    """Messages to and from workspaces through the platform."""

    def __init__(self, shared: Shared, registry: Registry) -> None:
        self.shared, self.registry = shared, registry
        # poll delivery (§14): a2a_receive rows per workspace, oldest first; ids are
        # increasing; a pruned id is one the activity route answers 410 for
        self.activity: dict[str, list[dict[str, Any]]] = {}
        self._pruned: set[str] = set()
        self._row_seq = 0

    def routes(self) -> list[Route]:
        return [
            Route("/workspaces/{workspace_id}/a2a", self._a2a, methods=["POST"]),
            Route("/workspaces/{workspace_id}/notify", self._notify, methods=["POST"]),
            Route("/workspaces/{workspace_id}/activity", self._activity, methods=["GET"]),
        ]

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
        with self.shared.lock:
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
                "created_at": iso(self.shared.clock()),
                "_at": self.shared.clock(),
            }
        )
        return row_id

    def prune_activity(self, workspace_id: str, keep: int = 0) -> None:
        """Forget all but the newest ``keep`` rows (a cursor naming one is then 410)."""
        with self.shared.lock:
            rows = self.activity.get(workspace_id, [])
            cut = rows[: max(0, len(rows) - keep)]
            self._pruned.update(row["id"] for row in cut)
            self.activity[workspace_id] = rows[len(cut) :]

    async def _a2a(self, request: Request) -> Response:
        """The A2A proxy: a message to a poll-mode workspace is queued as an activity row
        (``{"status": "queued", ...}``); anything else is recorded as received there."""
        target = request.path_params["workspace_id"]
        body = await json_object(request)
        if body is None:
            return error(400, "invalid JSON body")
        source = request.headers.get("x-source-workspace-id")
        with self.shared.lock:
            if source is not None:
                sender = self.shared.workspaces.get(source)
                if sender is not None and sender.token is not None:
                    denied = self.registry.auth(request, sender)  # a workspace speaks as itself
                    if denied is not None:
                        return denied
            record = self.shared.workspaces.setdefault(target, WorkspaceRecord(target))
            if record.delivery_mode == "poll":
                self._queue(target, body, source)
                method = body.get("method")
                return JSONResponse({"status": "queued", "delivery_mode": "poll", "method": method})
            record.received.append({"from": source, "body": body, "at": iso(self.shared.clock())})
        return JSONResponse({"status": "delivered"})

    async def _notify(self, request: Request) -> Response:
        workspace_id = request.path_params["workspace_id"]
        body = await json_object(request)
        if body is None or not isinstance(body.get("message"), str):
            return error(400, "message (string) is required")
        with self.shared.lock:
            record = self.registry.known(request, workspace_id)
            if isinstance(record, Response):
                return record
            record.notifications.append(
                {"message": body["message"], "at": iso(self.shared.clock())}
            )
        return JSONResponse({"status": "ok"})

    async def _activity(self, request: Request) -> Response:
        workspace_id = request.path_params["workspace_id"]
        query = request.query_params
        with self.shared.lock:
            record = self.registry.known(request, workspace_id)
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
                    return error(410, "cursor pruned")
                ids = [r["id"] for r in rows]
                if since_id not in ids:
                    return error(410, "cursor unknown")
                rows = rows[ids.index(since_id) + 1 :]
            elif since_secs is not None and since_secs.isdigit():
                rows = [r for r in rows if r["_at"] >= self.shared.clock() - int(since_secs)]
            limit = int(query["limit"]) if query.get("limit", "").isdigit() else 100
            page = [{k: v for k, v in r.items() if k != "_at"} for r in rows[: max(1, limit)]]
        return JSONResponse(page)
