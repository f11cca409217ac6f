"""A fake Anthropic-compatible Messages endpoint that records what reaches it.

Credentials are recorded as fingerprints only, so a test can compare them
with the key it set without the key ever appearing in test output. The
fake answers like the real API: a message (JSON, or SSE when ``stream`` is
true), or, when told to refuse, a 401 ``authentication_error``. A ``script``
plays a model: it sees each request's body and answers with text or a
``ToolUse``, which makes the real Claude Code CLI run its real tool and send
the tool's result in its next request.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import fingerprint

__all__ = ["FakeLLM", "LLMRequest", "ToolUse", "last_user_text"]


@dataclass(frozen=True)
class ToolUse:
    """A scripted answer that calls a tool: ``ToolUse("Bash", {"command": "env"})``."""

    name: str
    input: dict[str, Any]


# what a script answers: the text, or a tool call (text before it is allowed)
Reply = str | ToolUse
Script = Callable[[dict[str, Any]], Reply]


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the request's last user message, tool results included (a script's
    usual question: what did the CLI just send?)."""
    users = [
        m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"
    ]
    if not users:
        return ""
    content = users[-1].get("content")
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "tool_result":
            inner = part.get("content")
            if isinstance(inner, list):
                texts += [str(i.get("text", "")) for i in inner if isinstance(i, dict)]
            else:
                texts.append(str(inner or ""))
    return "\n".join(texts)


@dataclass(frozen=True)
class LLMRequest:
    """One recorded request. ``authorization`` is ``Bearer sha256:...``, never the token."""

    time: float
    method: str
    path: str
    model: str | None
    stream: bool
    authorization: str | None
    api_key: str | None
    headers: dict[str, str] = field(repr=False)
    # the conversation as sent: (role, text of its text blocks), oldest first
    messages: tuple[tuple[str, str], ...] = field(default=(), repr=False)


_ERRORS = {
    400: ("invalid_request_error", "bad request"),
    401: ("authentication_error", "invalid api key"),
    403: ("permission_error", "this key may not use this model"),
    404: ("not_found_error", "model not found"),
    429: ("rate_limit_error", "rate limit exceeded"),
    529: ("overloaded_error", "overloaded"),
}


def _redact_credential(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return f"{scheme} {fingerprint(token)}" if token else fingerprint(scheme)


class FakeLLM:
    """An Anthropic-compatible fake: ``FakeLLM().app`` is the ASGI app.

    ``refuse_key`` makes every request answer 401 (the bad-key path);
    ``error_status`` any other error status (403, 429, 500, 529 ...);
    ``reply`` is the text the model answers with.
    """

    def __init__(
        self,
        *,
        reply: str = "Hello from the fake LLM.",
        refuse_key: bool = False,
        error_status: int | None = None,
        echo_credential: bool = False,
        delay: float = 0.0,
        script: Script | None = None,
        deltas: int = 1,
        pace: float = 0.0,
    ):
        self.reply = reply
        self.refuse_key = refuse_key
        self.error_status = error_status
        # some providers quote the key they refuse in the error message: a quirk to test
        # redaction against
        self.echo_credential = echo_credential
        self.delay = delay  # seconds before answering: a slow provider
        self.script = script  # plays the model: a text or a tool call per request
        self.deltas = deltas  # a streamed text answer sends its text this many times
        self.pace = pace  # seconds between two of those deltas (a model's token rate)
        self._fail_first: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # when (wall clock) a client went away before its answer was complete: the
        # gateway must close an abandoned call (DESIGN §13)
        self.disconnects: list[float] = []
        self._accepted: frozenset[str] | None = None
        self._requests: list[LLMRequest] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        # any prefix: a base URL such as http://host/anthropic or a platform proxy path
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "HEAD", "POST"])]
        )

    def accept_only(self, *keys: str) -> None:
        """Answer 401 to any credential but these (a revoked or rotated key); kept as
        fingerprints. No argument accepts every credential again."""
        self._accepted = frozenset(fingerprint(key) for key in keys) if keys else None

    def fail_first(self, count: int, status: int) -> None:
        """Answer the next ``count`` message requests with ``status`` (e.g. 529 three
        times, then the normal answer: what a provider brownout looks like)."""
        with self._lock:
            self._fail_first = [status] * count

    def _refused(self, request: Request) -> bool:
        if self.refuse_key:
            return True
        if self._accepted is None:
            return False
        bearer = request.headers.get("authorization", "").partition(" ")[2]
        given = bearer or request.headers.get("x-api-key", "")
        return fingerprint(given) not in self._accepted

    @property
    def requests(self) -> list[LLMRequest]:
        """The requests to ``/v1/messages`` so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_request(self, timeout: float) -> LLMRequest | None:
        """Block until the first ``/v1/messages`` request arrives (None on timeout)."""
        with self._arrived:
            self._arrived.wait_for(lambda: bool(self._requests), timeout=timeout)
            return self._requests[0] if self._requests else None

    async def _record(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            body = {}
        headers = {
            name: value
            for name, value in request.headers.items()
            if name not in ("authorization", "x-api-key")
        }
        messages: list[tuple[str, str]] = []
        for item in body.get("messages", []) if isinstance(body, dict) else []:
            if not isinstance(item, dict):
                continue
            content = item.get("content")
            if isinstance(content, list):
                text = "\n".join(
                    str(part.get("text", ""))
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )
            else:
                text = str(content or "")
            messages.append((str(item.get("role", "")), text))
        entry = LLMRequest(
            messages=tuple(messages),
            time=time.time(),
            method=request.method,
            path=request.url.path,
            model=body.get("model") if isinstance(body, dict) else None,
            stream=bool(body.get("stream")) if isinstance(body, dict) else False,
            authorization=_redact_credential(request.headers.get("authorization")),
            api_key=_redact_credential(request.headers.get("x-api-key")),
            headers=headers,
        )
        with self._arrived:
            self._requests.append(entry)
            self._arrived.notify_all()
        return body if isinstance(body, dict) else {}

    async def _dispatch(self, request: Request) -> Response:
        path = request.url.path
        if request.method == "POST" and path.endswith("/v1/messages"):
            return await self._messages(request)
        if request.method == "POST" and path.endswith("/v1/messages/count_tokens"):
            return await self._count_tokens(request)
        return await self._other(request)

    async def _other(self, request: Request) -> Response:
        return Response(status_code=200 if request.method == "HEAD" else 404)

    async def _count_tokens(self, request: Request) -> Response:
        return JSONResponse({"input_tokens": 1})

    async def _messages(self, request: Request) -> Response:
        body = await self._record(request)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            injected = self._fail_first.pop(0) if self._fail_first else None
        try:
            if self.delay and await self._gone_within(request, self.delay):
                return Response(status_code=499)  # nobody is there to read it
            return self._answer(request, body, injected)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _gone_within(self, request: Request, seconds: float) -> bool:
        """Wait ``seconds`` (a slow provider) unless the client goes away first; True
        when it did (recorded in ``disconnects``)."""
        gone = False
        with anyio.move_on_after(seconds):
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    gone = True
                    break
        if gone:
            with self._lock:
                self.disconnects.append(time.time())
        return gone

    def _answer(self, request: Request, body: dict[str, Any], injected: int | None) -> Response:
        status = 401 if self._refused(request) else injected or self.error_status
        if status is not None:
            kind, message = _ERRORS.get(status, ("api_error", "internal server error"))
            if self.echo_credential:
                given = (
                    request.headers.get("x-api-key")
                    or request.headers.get("authorization", "").partition(" ")[2]
                )
                message = f"{message}: {given}"
            return JSONResponse(
                {"type": "error", "error": {"type": kind, "message": message}},
                status_code=status,
            )
        model = str(body.get("model") or "fake-model")
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        usage = {"input_tokens": 1, "output_tokens": 1}
        reply = self.script(body) if self.script is not None else self.reply
        content: list[dict[str, Any]] = []
        if isinstance(reply, ToolUse):
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": reply.name,
                    "input": reply.input,
                }
            )
        else:
            content.append({"type": "text", "text": reply})
        stop = "tool_use" if isinstance(reply, ToolUse) else "end_turn"
        if body.get("stream"):
            return StreamingResponse(
                self._events(
                    {
                        "id": message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": content,
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": usage,
                    },
                    stop,
                ),
                media_type="text/event-stream",
            )
        return JSONResponse(
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            }
        )

    async def _events(self, start: dict[str, Any], stop: str) -> AsyncIterator[bytes]:
        """The answer as server-sent events; a client gone mid-stream is recorded."""
        finished = False
        try:
            opening = {**start, "content": []}  # the blocks follow, one event each
            yield _event("message_start", {"type": "message_start", "message": opening})
            async for chunk in _blocks(start["content"], stop, self.deltas, self.pace):
                yield chunk
            finished = True
        finally:
            if not finished:  # the client went away mid-stream (Starlette cancelled us)
                with self._lock:
                    self.disconnects.append(time.time())


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def _blocks(
    content: list[dict[str, Any]], stop: str, deltas: int, pace: float
) -> AsyncIterator[bytes]:
    """Each content block as the API streams it, a text ``deltas`` times, ``pace`` apart."""
    for index, block in enumerate(content):
        if block["type"] == "tool_use":
            opened = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            opened = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        yield _event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opened},
        )
        moved = {"type": "content_block_delta", "index": index, "delta": delta}
        for _ in range(deltas if block["type"] == "text" else 1):
            yield _event("content_block_delta", moved)
            if pace:
                await anyio.sleep(pace)
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 1},
        },
    )
    yield _event("message_stop", {"type": "message_stop"})
