"""A minimal adapter for tests and the ``dev`` sandbox: it echoes what it is sent.

It shows the smallest useful template: a name, one route, and outcome
reporting. The credential probe is the default one.
"""

from __future__ import annotations

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

        return [Route("/echo", echo, methods=["POST"])]


Adapter = EchoAdapter
