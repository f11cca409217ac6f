"""Who may send A2A work, and how much (DESIGN §12, §13): the checks every request
to the adapter's routes passes before anything reads its body.

- ``Callers`` decides who a request comes from, from its ``Authorization``
  header alone: ``A2A_AUTH=none`` accepts everyone (no identity), ``platform``
  the ``platform_inbound_secret`` (§7), ``bearer`` the ``A2A_BEARER_TOKENS``.
  It is the backend of Starlette's ``AuthenticationMiddleware``, so the
  request's ``scope["user"]`` is the caller, and a2a-sdk's task stores scope
  every task to it (``resolve_user_scope``: a task belongs to the caller that
  created it). A refused request is answered 401 with ``WWW-Authenticate:
  Bearer`` and a JSON-RPC error body; comparisons are constant-time; a
  refused credential is logged by fingerprint only.
- ``limit_body`` answers 413 for a body larger than ``A2A_MAX_REQUEST_BYTES``
  without reading it into memory (a declared ``Content-Length`` is refused at
  once, a chunked body as soon as it passes the limit).
- ``drain`` reads and drops whatever a refused request still sends before
  the answer goes out, so the caller reads the answer instead of a reset
  connection; it holds one chunk at a time and gives up after a few seconds.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import anyio
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import SettingsError, fingerprint
from .logs import REDACTOR
from .settings import Settings

__all__ = [
    "PLATFORM_CALLER",
    "Callers",
    "bearer_tokens",
    "drain",
    "guard",
    "limit_body",
    "load_bearer_tokens",
    "rpc_error",
]

log = logging.getLogger(__name__)

# the owner name of work the platform sent (its inbound secret, or a poll-mode row)
PLATFORM_CALLER = "platform"
_DRAIN_SECONDS = 5.0


def rpc_error(status: int, code: int, message: str, **headers: str) -> Response:
    """A JSON-RPC error answer (``id`` null: the request was not read)."""
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def bearer_tokens(raw: str | None) -> tuple[str, ...]:
    """``A2A_BEARER_TOKENS``: comma- or newline-separated, blanks dropped."""
    if not raw:
        return ()
    return tuple(t.strip() for t in raw.replace("\n", ",").split(",") if t.strip())


def load_bearer_tokens(settings: Settings) -> tuple[str, ...]:
    """``A2A_BEARER_TOKENS``: the variable, else the file of that name in the secrets
    dir (blocking: call it from a worker thread); ``A2A_AUTH=bearer`` without any is a
    settings error (fail closed). The tokens are taught to the redactor."""
    raw = settings.a2a_bearer_tokens
    text = raw.get_secret_value() if raw is not None else None
    where = settings.runtime_secrets_dir
    if text is None and where is not None:
        with contextlib.suppress(OSError):
            text = (where / "A2A_BEARER_TOKENS").read_bytes()[:65536].decode("utf-8", "replace")
    tokens = bearer_tokens(text)
    if not tokens:
        raise SettingsError(
            "A2A_AUTH=bearer needs the tokens callers may present",
            hint="set A2A_BEARER_TOKENS (comma-separated) or put a file A2A_BEARER_TOKENS "
            "in RUNTIME_SECRETS_DIR; A2A requests are refused until then",
            variable="A2A_BEARER_TOKENS",
        )
    REDACTOR.add(*tokens)
    return tokens


class _Refused(AuthenticationError):
    pass


@dataclass
class Callers(AuthenticationBackend):
    """The accepted credentials of one ``A2A_AUTH`` mode."""

    mode: str = "none"
    secret: Callable[[], str | None] = lambda: None  # the platform_inbound_secret
    tokens: tuple[str, ...] = ()
    # routes with a check of their own (the transcript takes the workspace token)
    open_paths: frozenset[str] = field(default_factory=lambda: frozenset({"/transcript"}))

    @property
    def on(self) -> bool:
        return self.mode in ("platform", "bearer")

    def identify(self, authorization: str | None) -> str:
        """The caller's owner name, or ``AuthenticationError`` saying why not."""
        if not authorization or not authorization[:7].lower() == "bearer ":
            raise _Refused("no bearer credential")
        presented = authorization[7:].strip().encode("utf-8", "surrogateescape")
        accepted = self._accepted()
        if not accepted:
            raise _Refused(
                "the platform has not sent a platform_inbound_secret yet"
                if self.mode == "platform"
                else "A2A_BEARER_TOKENS is empty"
            )
        match: str | None = None
        for name, value in accepted:  # every one compared: no early exit
            if hmac.compare_digest(presented, value.encode()):
                match = name
        if match is None:
            shown = fingerprint(presented.decode("utf-8", "replace"))
            log.warning("refused an A2A request: credential %s is not accepted", shown)
            raise _Refused("the credential is not accepted")
        return match

    def _accepted(self) -> Iterable[tuple[str, str]]:
        if self.mode == "platform":
            secret = self.secret()
            return [(PLATFORM_CALLER, secret)] if secret else []
        return [(f"bearer:{fingerprint(t)}", t) for t in self.tokens]

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if conn.url.path in self.open_paths:
            return None
        caller = self.identify(conn.headers.get("authorization"))
        return AuthCredentials(["a2a"]), SimpleUser(caller)


def _unauthorized(conn: HTTPConnection, error: AuthenticationError) -> Response:
    return rpc_error(
        401,
        -32600,
        f"authentication required: {error} (send Authorization: Bearer <credential>)",
        **{"WWW-Authenticate": 'Bearer realm="a2a"'},
    )


def guard(app: ASGIApp, callers: Callers) -> ASGIApp:
    """``app`` behind ``callers`` (Starlette's ``AuthenticationMiddleware``)."""
    if not callers.on:
        return app
    return AuthenticationMiddleware(app, backend=callers, on_error=_unauthorized)


def limit_body(app: ASGIApp, max_bytes: int) -> ASGIApp:
    """``app`` with request bodies above ``max_bytes`` answered 413, never read whole."""

    def too_large() -> Response:
        return rpc_error(
            413,
            -32600,
            f"the request body is larger than {max_bytes} bytes (A2A_MAX_REQUEST_BYTES)",
        )

    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await too_large()(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the caller went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                chunks.clear()
                await too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: bytes | None = b"".join(chunks)
        chunks.clear()

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                message = {"type": "http.request", "body": body, "more_body": False}
                body = None
                return message
            return await receive()

        await app(scope, replay, send)

    return limited


def drain(app: ASGIApp) -> ASGIApp:
    """``app``, except that an answer sent before the request body was read whole (a
    401, a 413) waits until the rest of the body is read and dropped, chunk by chunk,
    for a few seconds at most: the caller then reads the answer instead of a reset
    connection, and a refused 200 MiB upload costs bandwidth, never memory."""

    async def draining(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        more = True

        async def tracked() -> Message:
            nonlocal more
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                more = False
            return message

        async def answering(message: Message) -> None:
            if message["type"] == "http.response.start" and more:
                with anyio.move_on_after(_DRAIN_SECONDS):
                    while more:
                        await tracked()
            await send(message)

        await app(scope, tracked, answering)

    return draining


def describe(callers: Callers) -> str:
    """One line for the log and ``doctor``: what the A2A routes accept."""
    if callers.mode == "platform":
        return "A2A callers must present the platform_inbound_secret (A2A_AUTH=platform)"
    if callers.mode == "bearer":
        return f"A2A callers must present one of {len(callers.tokens)} bearer token(s)"
    return "A2A callers are not authenticated (A2A_AUTH=none)"
