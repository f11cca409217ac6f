"""``GET /transcript``: the current session's Claude Code transcript, for the platform.

Only a caller presenting ``Authorization: Bearer <workspace token>`` may read
it; with no token known it answers 401 (fail closed).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runtime_adapter import AdapterContext
from runtime_adapter.volume import read_token

from .sessions import SessionBook

__all__ = ["LIMIT", "Transcript"]

LIMIT = 1000


class Transcript:
    """``handle`` is the route's endpoint; ``runtime`` names the template in the answer."""

    def __init__(self, runtime: str, ctx: AdapterContext, book: SessionBook) -> None:
        self.runtime, self.ctx, self.book = runtime, ctx, book

    async def handle(self, request: Request) -> Response:
        ctx, book = self.ctx, self.book
        token = await anyio.to_thread.run_sync(read_token, ctx.settings.config_path)
        given = request.headers.get("authorization", "")
        scheme, _, presented = given.partition(" ")
        if not token or scheme.lower() != "bearer" or not hmac.compare_digest(presented, token):
            # fail closed: no token known means nobody may read the conversation
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            since = max(0, int(request.query_params.get("since", "0")))
            limit = min(LIMIT, max(1, int(request.query_params.get("limit", "100"))))
        except ValueError:
            return JSONResponse({"error": "since and limit are integers"}, status_code=400)
        path = await anyio.to_thread.run_sync(book.latest)
        lines: list[Any] = []
        total = 0
        if path is not None:
            raw = await anyio.to_thread.run_sync(path.read_text)
            entries = raw.splitlines()
            total = len(entries)
            for line in entries[since : since + limit]:
                try:
                    lines.append(json.loads(ctx.redact(line)))
                except ValueError:
                    continue
        cursor = min(total, since + limit)
        return JSONResponse(
            {
                "runtime": self.runtime,
                "supported": True,
                "lines": lines,
                "cursor": cursor,
                "more": cursor < total,
                "source": path.name if path is not None else None,
            }
        )
