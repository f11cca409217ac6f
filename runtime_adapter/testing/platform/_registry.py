"""The emulated registry (DESIGN §7, §11): register, heartbeat and update-card, the
tokens they issue and check, the status machine with its register-failure
marker, and ``GET /workspaces/{id}``."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..._netrules import url_verdict
from ._records import (
    Resolver,
    Shared,
    WorkspaceRecord,
    error,
    heartbeat_problem,
    json_object,
)

__all__ = ["Registry"]


class Registry:
    """Workspaces as the platform's database holds them, and the registry's routes."""

    def __init__(
        self,
        shared: Shared,
        *,
        deploy_mode: str,
        marker_window: float,
        offline_after: float,
        resolver: Resolver,
    ) -> None:
        self.shared = shared
        self.deploy_mode = deploy_mode
        self.marker_window = marker_window
        self.offline_after = offline_after
        self.resolver = resolver

    def routes(self) -> list[Route]:
        return [
            Route("/registry/register", self._register, methods=["POST"]),
            Route("/registry/heartbeat", self._heartbeat, methods=["POST"]),
            Route("/registry/update-card", self._update_card, methods=["POST"]),
            Route("/workspaces/{workspace_id}", self._workspace, methods=["GET"]),
        ]

    def provision(
        self, workspace_id: str, *, token_path: Path | None = None, url: str | None = None
    ) -> str:
        """The provisioner: revoke any token, issue a new one, write it to ``token_path``."""
        token = secrets.token_urlsafe(32)
        with self.shared.lock:
            record = self.shared.workspaces.setdefault(workspace_id, WorkspaceRecord(workspace_id))
            record.token = token
            if url is not None:
                record.url = url
        if token_path is not None:
            temporary = token_path.with_name(token_path.name + ".tmp")
            temporary.write_text(token + "\n")
            temporary.chmod(0o600)
            temporary.replace(token_path)
        return token

    def view(self, workspace_id: str) -> dict[str, Any] | None:
        """What ``GET /workspaces/{id}`` answers, or None for an unknown workspace."""
        with self.shared.lock:
            record = self.shared.workspaces.get(workspace_id)
            return None if record is None else self.view_of(record)

    def auth(self, request: Request, record: WorkspaceRecord | None) -> JSONResponse | None:
        """None when authorised (or the workspace has no token yet), else the 401."""
        if record is None or record.token is None:
            return None
        header = request.headers.get("authorization")
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            return error(401, "missing workspace auth token")
        if not secrets.compare_digest(header[7:].strip(), record.token):
            return error(401, "invalid workspace auth token")
        return None

    def known(self, request: Request, workspace_id: str) -> WorkspaceRecord | Response:
        """The workspace (lock held) if it exists and the request carries its token; else
        the 404 or 401 to answer."""
        record = self.shared.workspaces.get(workspace_id)
        if record is None:
            return error(404, "unknown workspace")
        denied = self.auth(request, record)
        return record if denied is None else denied

    def _evaluate(self, record: WorkspaceRecord) -> None:
        now = self.shared.clock()
        marker = (
            record.register_failure_at is not None
            and now - record.register_failure_at < self.marker_window
        )
        if record.runtime_state == "wedged" or record.error_rate >= 0.5 or marker:
            record.status = "degraded"
        elif record.error_rate < 0.1 or record.status in ("provisioning", "offline"):
            record.status = "online"

    def view_of(self, record: WorkspaceRecord) -> dict[str, Any]:
        now = self.shared.clock()
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
        return record.view(status, fresh)

    async def _register(self, request: Request) -> Response:
        body = await json_object(request)
        if body is None:
            return error(400, "invalid JSON body")
        workspace_id, url, card = body.get("id"), body.get("url"), body.get("agent_card")
        if not isinstance(workspace_id, str) or not workspace_id:
            return error(400, "id is required and must be a string")
        poll = body.get("delivery_mode") == "poll"
        if not poll and (not isinstance(url, str) or not url):
            return error(400, "url is required and must be a string")
        if not isinstance(card, dict):
            return error(400, "agent_card is required and must be an object")
        with self.shared.lock:
            record = self.shared.workspaces.get(workspace_id)
            denied = self.auth(request, record)
        if denied is not None:
            return denied
        if poll:
            origin = request.headers.get("origin")
            if self.deploy_mode == "saas" and not origin:
                return error(403, "origin required")  # the SaaS web firewall
            return self._register_poll(workspace_id, card, origin)
        assert isinstance(url, str)
        host = httpx.URL(url).host if url.startswith(("http://", "https://")) else ""
        resolved = await anyio.to_thread.run_sync(self.resolver, host) if host else []
        reason = url_verdict(url, self.deploy_mode, resolved)
        with self.shared.lock:
            record = self.shared.workspaces.setdefault(workspace_id, WorkspaceRecord(workspace_id))
            if reason is not None:
                record.register_failure_at = self.shared.clock()
                record.register_failure_reason = f"url_validate_failed: {reason}"
                self._evaluate(record)
                return error(400, f"url_validate_failed: {reason}")
            record.delivery_mode, record.url = "push", url
            answer = self._registered(record, card)
        return JSONResponse(answer)

    def _register_poll(
        self, workspace_id: str, card: dict[str, Any], origin: str | None
    ) -> Response:
        with self.shared.lock:
            record = self.shared.workspaces.setdefault(workspace_id, WorkspaceRecord(workspace_id))
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

    async def _heartbeat(self, request: Request) -> Response:
        body = await json_object(request)
        if body is None:
            return error(400, "invalid JSON body")
        problem = heartbeat_problem(body)
        if problem is not None:
            return error(400, problem)
        with self.shared.lock:
            record = self.shared.workspaces.get(body["workspace_id"])
            if record is None:
                return error(404, "unknown workspace")
            denied = self.auth(request, record)
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
            record.last_heartbeat_at = self.shared.clock()
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
        body = await json_object(request)
        if body is None:
            return error(400, "invalid JSON body")
        workspace_id, card = body.get("workspace_id"), body.get("agent_card")
        if not isinstance(workspace_id, str) or not isinstance(card, dict):
            return error(400, "workspace_id (string) and agent_card (object) are required")
        with self.shared.lock:
            record = self.known(request, workspace_id)
            if isinstance(record, Response):
                return record
            record.agent_card = card
        return JSONResponse({"status": "updated"})

    async def _workspace(self, request: Request) -> Response:
        view = self.view(request.path_params["workspace_id"])
        if view is None:
            return error(404, "unknown workspace")
        return JSONResponse(view)
