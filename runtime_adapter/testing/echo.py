"""A minimal adapter for tests and the ``dev`` sandbox: it echoes what it is sent.

It shows the smallest useful template: a name, two routes, and outcome
reporting. The credential probe is the default one. ``/`` answers a JSON-RPC
``message/send`` (or ``SendMessage``) with a completed task whose answer is
the message's text, without a2a-sdk: enough for ``dev`` and poll delivery.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..adapter import AdapterContext, BaseAdapter

__all__ = ["EchoAdapter"]


class EchoAdapter(BaseAdapter):
    """``POST /echo {"text": ...}`` answers ``{"text": ...}``."""

    name = "echo"
    description = "Echoes messages back (runtime-adapter's example adapter)."

    def routes(self, ctx: AdapterContext) -> list[BaseRoute]:
        async def echo(request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"error": "send a JSON object"}, status_code=400)
            text = str(body.get("text", "")) if isinstance(body, dict) else ""
            with ctx.task(f"echo: {text[:40]}"):
                ctx.report_success()
                return JSONResponse({"text": text})

        async def rpc(request: Request) -> Response:
            try:
                body = await request.json()
                method = body["method"]
                parts = body["params"]["message"]["parts"]
            except (ValueError, KeyError, TypeError):
                error = {"code": -32600, "message": "send a JSON-RPC message/send request"}
                return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error})
            text = " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
            with ctx.task(f"echo: {text[:40]}"):
                ctx.report_success()
            answer = {"kind": "text", "text": f"echo: {text}"}
            task: dict[str, Any] = {
                "kind": "task",
                "id": str(uuid.uuid4()),
                "contextId": body["params"]["message"].get("contextId") or str(uuid.uuid4()),
                "status": {"state": "completed"},
                "artifacts": [{"artifactId": "answer", "parts": [answer]}],
            }
            if method in ("SendMessage",):
                task["status"] = {"state": "TASK_STATE_COMPLETED"}
                task["artifacts"] = [{"artifactId": "answer", "parts": [{"text": answer["text"]}]}]
                result: dict[str, Any] = {"task": task}
            else:
                result = task
            return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"), "result": result})

        return [Route("/echo", echo, methods=["POST"]), Route("/", rpc, methods=["POST"])]


Adapter = EchoAdapter
