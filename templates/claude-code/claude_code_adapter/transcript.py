"""``GET /transcript``: the current session's Claude Code transcript, for the platform.

Only a caller presenting ``Authorization: Bearer <workspace token>`` may read
it; with no token known it answers 401 (fail closed).
"""

from __future__ import annotations

import hmac
import itertools
import json
from pathlib import Path
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
        # the token the runtime holds (in memory on a read-only volume), else the file's
        token = ctx.token() or await anyio.to_thread.run_sync(read_token, ctx.settings.config_path)
        given = request.headers.get("authorization", "")
        scheme, _, presented = given.partition(" ")
        if not token or scheme.lower() != "bearer" or not _same(presented, token):
            # fail closed: no token known means nobody may read the conversation
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            since = max(0, int(request.query_params.get("since", "0")))
            limit = min(LIMIT, max(1, int(request.query_params.get("limit", "100"))))
        except ValueError:
            return JSONResponse({"error": "since and limit are integers"}, status_code=400)
        path = await anyio.to_thread.run_sync(book.latest)
        raw: list[str] = []
        more = False
        if path is not None:
            raw, more = await anyio.to_thread.run_sync(_page, path, since, limit)
        lines: list[Any] = []
        for line in raw:
            try:
                lines.append(json.loads(ctx.redact(line)))
            except ValueError:
                continue
        return JSONResponse(
            {
                "runtime": self.runtime,
                "supported": True,
                "lines": lines,
                "cursor": since + len(raw),
                "more": more,
                "source": path.name if path is not None else None,
            }
        )


def _same(presented: str, token: str) -> bool:
    """Constant time, on bytes: a header that is not ASCII is a wrong token, not a 500."""
    return hmac.compare_digest(presented.encode("utf-8", "replace"), token.encode())


def _page(path: Path, since: int, limit: int) -> tuple[list[str], bool]:
    """Lines ``since`` .. ``since + limit`` of ``path`` and whether more follow, reading
    no further than one line past the page."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        page = list(itertools.islice(lines, since, since + limit + 1))
    return [line.rstrip("\n") for line in page[:limit]], len(page) > limit
