"""The LLM gateway (DESIGN §13): the agent's only road to its LLM, and the only
holder of the provider credential.

An Anthropic-compatible endpoint on ``127.0.0.1``. The agent presents the
gateway's per-boot token; the gateway forwards method, path, query and body
to the current plan's real base URL with the real credential in the arm's
scheme (bearer, ``x-api-key``, or bearer plus the OAuth beta header), and
relays the answer as it arrives: a streamed answer chunk by chunk, never
buffered. It must never forward a request without its token, never hand the
credential to the agent, and never let an upstream's answer carry it back:
an error body is redacted whole, a stream through a scrubber that holds back
only a tail that could be the start of a secret. Each upstream answer is
one observation (``Outcomes``): a 401/403 is reported at once, a 2xx is a
success; a 429/5xx is not, since the CLI retries it and the retry is the
same call. The plan is read per request, so a rotated key is used from the
next request on.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import telemetry
from .envplan import EnvPlan
from .errors import fingerprint

__all__ = ["ROUTES", "Call", "Gateway", "Outcomes", "StreamScrub", "upstream_headers"]

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 2**20  # the CLI sends whole conversations: generous, still bounded
MAX_ERROR_BODY = 2**20
ANTHROPIC = "https://api.anthropic.com"
OAUTH_BETA = "oauth-2025-04-20"
# a long answer streams for minutes; what bounds it is the time between bytes
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=10.0)
# what of the agent's request headers goes upstream: what an Anthropic-compatible API
# reads to understand the request; never its credential, cookies, forwarding headers
# or anything else the agent chose to send
_FORWARDED = frozenset(
    {"accept", "anthropic-beta", "anthropic-version", "content-type", "user-agent", "x-app"}
)
_FORWARDED_PREFIXES = ("x-stainless-",)  # the SDK's own request facts (retry count, timeout)
# the only routes forwarded: what the Claude Code CLI and the SDKs call (method, path)
ROUTES = frozenset(
    {("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"), ("GET", "/v1/models")}
)
ROUTES_SHOWN = ("POST /v1/messages", "POST /v1/messages/count_tokens", "GET /v1/models")
KEEP_CALLS = 200
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')
_BACK_DROP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


@dataclass
class Outcomes:
    """Where the gateway's observations go (the runtime wires them to ``Health``)."""

    success: Callable[[], None] = lambda: None
    failure: Callable[[int, str], None] = lambda status, message: None


class StreamScrub:
    """Replaces secrets in a byte stream split anywhere: holds back only the longest
    tail that is the start of a secret, so a normal stream passes at once."""

    def __init__(self, secrets_: list[str]) -> None:
        self._secrets = [(s.encode(), fingerprint(s).encode()) for s in secrets_ if s]
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        keep = 0
        for secret, mark in self._secrets:
            if secret in data:
                data = data.replace(secret, mark)
            # only a tail that starts like the secret can be its beginning
            start = data.find(secret[:1], max(0, len(data) - len(secret) + 1))
            while start != -1:
                if secret.startswith(data[start:]):
                    keep = max(keep, len(data) - start)
                    break
                start = data.find(secret[:1], start + 1)
        self._held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep] if keep else data

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held


def upstream_headers(headers: list[tuple[str, str]], auth: str, credential: str) -> dict[str, str]:
    """The agent's headers for the upstream, by allowlist, with the real credential in
    the arm's scheme; identity encoding, so the answer can be scrubbed as it streams."""
    out: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower not in _FORWARDED and not lower.startswith(_FORWARDED_PREFIXES):
            continue
        out[lower] = f"{out[lower]},{value}" if lower in out else value
    if auth == "x-api-key":
        out["x-api-key"] = credential
    else:
        out["authorization"] = f"Bearer {credential}"
    if auth == "oauth":
        betas = [b for b in out.get("anthropic-beta", "").split(",") if b.strip()]
        if OAUTH_BETA not in betas:
            betas.append(OAUTH_BETA)
        out["anthropic-beta"] = ",".join(betas)
    out["accept-encoding"] = "identity"
    return out


def _authorized(request: Request, token: str) -> bool:
    """The request presents the gateway's token (bearer or ``x-api-key``), compared in
    constant time."""
    given = request.headers.get("authorization", "")
    scheme, _, presented = given.partition(" ")
    if scheme.lower() != "bearer":
        presented = request.headers.get("x-api-key", "")
    try:
        return hmac.compare_digest(presented.encode(), token.encode())
    except (TypeError, UnicodeEncodeError):
        return False


def _route(scope: Mapping[str, Any]) -> str | None:
    """The allowed route a request names, from its raw path: a percent-encoded path
    (``%2e%2e/``, ``%2F``) is never one, so it cannot leave the base URL's prefix."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else scope.get("path", "")
    return path if (scope.get("method", ""), path) in ROUTES else None


def _shown(scope: Mapping[str, Any]) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope.get("path", ""))
    return path[:100]


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, counted while it is read (a chunked body declares no length):
    None as soon as it passes ``limit``, reading no further."""
    if int(request.headers.get("content-length") or 0) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _reply(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    kept = [(k, v) for k, v in headers if k != b"content-length"]
    kept.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _reply_error(send: Any, status: int, message: str, kind: str = "api_error") -> None:
    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}})
    await _reply(send, status, body.encode(), [(b"content-type", b"application/json")])


def _record(current: Any, call: Call, attributes: dict[str, Any]) -> None:
    """One ended call as telemetry: its duration, tokens and timings."""
    if call.first_byte is not None:
        telemetry.observe("gen_ai.server.time_to_first_token", call.first_byte)
    if call.seconds is not None:
        telemetry.observe("gen_ai.client.operation.duration", call.seconds, **attributes)
    for kind in ("input", "output"):
        tokens = getattr(call, f"{kind}_tokens")
        if tokens is not None:
            telemetry.observe(
                "gen_ai.client.token.usage", tokens, **attributes, **{"gen_ai.token.type": kind}
            )
    telemetry.set_attributes(
        current,
        **{
            "http.response.status_code": call.status,
            "error.type": None if call.outcome == "ok" else call.outcome,
            "gen_ai.usage.input_tokens": call.input_tokens,
            "gen_ai.usage.output_tokens": call.output_tokens,
            "gen_ai.server.time_to_first_token": call.first_byte,
        },
    )


def _credential(plan: EnvPlan) -> str | None:
    for item in plan.assignments:
        if (
            item.secret
            and item.value
            and item.name
            in (
                "ANTHROPIC_AUTH_TOKEN",
                "ANTHROPIC_API_KEY",
                "CLAUDE_CODE_OAUTH_TOKEN",
            )
        ):
            return item.value
    return None


def _error(status: int, message: str, kind: str = "api_error") -> JSONResponse:
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status)


def _message_of(body: bytes) -> str:
    try:
        data = json.loads(body)
        return str(data["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:300].decode("utf-8", "replace")


@dataclass
class Call:
    """One call the gateway forwarded, as it ended (for telemetry and the dev page):
    ``outcome`` is ``ok``, ``error`` (the upstream answered 4xx/5xx), ``broken`` (the
    upstream broke off) or ``abandoned`` (the agent went away first)."""

    started: float  # wall clock
    method: str
    path: str
    model: str | None
    status: int | None = None
    outcome: str = "open"
    input_tokens: int | None = None
    output_tokens: int | None = None
    first_byte: float | None = None  # seconds to the answer's first byte
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class Gateway:
    """``Gateway(current_plan).app`` is the ASGI app; ``token`` is for the agent only.

    ``current_plan`` returns the *direct* plan (with the real credential) for each
    request. ``transport`` is for tests. ``calls`` holds the last ``KEEP_CALLS``
    calls as they ended.
    """

    def __init__(
        self,
        current_plan: Callable[[], EnvPlan | None],
        *,
        outcomes: Outcomes | None = None,
        redact: Callable[[str], str] = str,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_request: int = MAX_REQUEST,
    ) -> None:
        self.current_plan = current_plan
        self.max_request = max_request
        self.outcomes = outcomes or Outcomes()
        self.redact = redact
        self.token = token or secrets.token_urlsafe(32)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None  # built by open(): it loads the CA store
        self._rewritten: set[str] = set()  # model ids logged once (bounded below)
        self.requests = 0
        self.refused = 0
        self.abandoned = 0
        self.calls: deque[Call] = deque(maxlen=KEEP_CALLS)

    def open(self, tls: ssl.SSLContext | None = None) -> None:
        """Build the upstream client (blocking: the CA store is read unless ``tls`` is
        given; call it from a worker thread). Done at the first request otherwise."""
        if self._http is not None:
            return
        # no Nagle: a request's headers and body go out as two writes, and the second
        # would wait for the first one's delayed ACK (~40 ms) before the upstream sees it
        road = self._transport or httpx.AsyncHTTPTransport(
            verify=tls if tls is not None else True,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        self._http = httpx.AsyncClient(timeout=TIMEOUT, transport=road, trust_env=False)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        refusal = self._refusal(request)
        if refusal is None:
            body = await _bounded_body(request, self.max_request)
            if body is None:
                refusal = _error(413, "request too large for the LLM gateway", "request_too_large")
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        assert body is not None
        # the agent may go away at any point of the exchange (a cancelled turn, a CLI
        # killed or closed, a stream read half-way): the exchange is cancelled at once,
        # which closes the upstream request, so nobody pays for an answer nobody reads
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            await self._exchange(request, body, send)
            group.cancel_scope.cancel()

    def _refusal(self, request: Request) -> Response | None:
        """Why a request is not forwarded at all: no gateway token, a route the CLI does
        not need, no credential. Nothing refused here reaches the upstream."""
        if not _authorized(request, self.token):
            self.refused += 1
            log.warning("LLM gateway: a request without the gateway's token was refused")
            return _error(401, "the LLM gateway's token is required", "authentication_error")
        route = _route(request.scope)
        if route is None:
            self.refused += 1
            log.warning(
                "LLM gateway: refused %s %s: only the LLM endpoints are forwarded",
                request.method,
                _shown(request.scope),
            )
            return _error(
                403,
                f"the LLM gateway forwards only {', '.join(ROUTES_SHOWN)}; "
                f"{request.method} {_shown(request.scope)} is not one of them",
                "permission_error",
            )
        plan = self.current_plan()
        if plan is None or plan.arm is None or _credential(plan) is None:
            return _error(503, "no LLM credential is configured for this workspace")
        return None

    async def _exchange(self, request: Request, body: bytes, send: Any) -> None:
        """Forward one request and relay its answer to ``send``. Cancelled when the
        agent goes away; the call then counts as neither a success nor an error."""
        plan = self.current_plan()
        credential = _credential(plan) if plan is not None else None
        if plan is None or plan.arm is None or credential is None:  # changed meanwhile
            await _reply_error(send, 503, "no LLM credential is configured for this workspace")
            return
        body, model = model_policy(plan, body, self._rewritten)
        base = (plan.base_url or ANTHROPIC).rstrip("/")
        query = request.scope.get("query_string") or b""
        path = request.scope.get("raw_path") or request.scope["path"].encode()
        url = base + path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        headers = upstream_headers(list(request.headers.items()), plan.arm.auth, credential)
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": plan.provider,
            "gen_ai.request.model": model,
        }
        call = Call(time.time(), request.method, str(request.url.path), model)
        self.calls.append(call)
        self.requests += 1
        started = time.perf_counter()
        self.open()
        assert self._http is not None
        name = f"chat {model or ''}".strip()
        with telemetry.span(name, **attributes) as current:
            try:
                await self._forward(
                    call, url, body, headers, credential, started, send, request.method
                )
            except anyio.get_cancelled_exc_class():
                call.outcome = "abandoned"
                self.abandoned += 1
                log.info(
                    "LLM gateway: the agent went away; the upstream call (%s) was closed",
                    model or "no model",
                )
                raise
            finally:
                call.seconds = time.perf_counter() - started
                _record(current, call, attributes)
                # one line per call, with its facts as fields (``dev``'s page reads them)
                log.info(
                    "LLM call %s %s: %s in %.2f s",
                    call.model or "-",
                    call.status or "-",
                    call.outcome,
                    call.seconds,
                    extra={"llm_call": call.as_dict()},
                )

    async def _forward(
        self,
        call: Call,
        url: str,
        body: bytes,
        headers: dict[str, str],
        credential: str,
        started: float,
        send: Any,
        method: str,
    ) -> None:
        assert self._http is not None
        outgoing = self._http.build_request(method, url, headers=headers, content=body)
        try:
            with anyio.fail_after(610):  # to the answer's headers
                upstream = await self._http.send(outgoing, stream=True)
        except (httpx.HTTPError, TimeoutError, ValueError) as error:
            call.outcome = "broken"
            log.warning("LLM gateway: upstream %s failed: %s", url, type(error).__name__)
            await _reply_error(
                send, 502, f"the LLM upstream could not be reached ({type(error).__name__})"
            )
            return
        try:
            call.status = upstream.status_code
            back = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in upstream.headers.items()
                if k.lower() not in _BACK_DROP
            ]
            if upstream.status_code >= 400:
                await self._failed(call, upstream, back, credential, send)
                return
            await send(
                {"type": "http.response.start", "status": upstream.status_code, "headers": back}
            )
            scrub = StreamScrub([credential])
            tail = b""
            usage: dict[str, int] = {}
            try:
                async for chunk in upstream.aiter_raw():
                    if call.first_byte is None:
                        call.first_byte = time.perf_counter() - started
                    tail = _usage(tail + chunk, usage)
                    out = scrub.feed(chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
            except httpx.HTTPError as error:
                call.outcome = "broken"
                log.warning(
                    "LLM gateway: the upstream's answer broke off: %s", type(error).__name__
                )
            call.input_tokens = usage.get("input_tokens")
            call.output_tokens = usage.get("output_tokens")
            if call.outcome == "open":
                call.outcome = "ok"
                # the whole answer read: the call succeeded (not at its headers: an
                # answer abandoned half-way is not an outcome)
                if 200 <= upstream.status_code < 300:
                    self.outcomes.success()
            await send({"type": "http.response.body", "body": scrub.flush(), "more_body": False})
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await upstream.aclose()

    async def _failed(
        self,
        call: Call,
        upstream: httpx.Response,
        back: list[tuple[bytes, bytes]],
        credential: str,
        send: Any,
    ) -> None:
        raw = b""
        try:
            with anyio.move_on_after(30):
                async for chunk in upstream.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_ERROR_BODY:
                        break
        except httpx.HTTPError:
            pass
        text = self.redact(raw[:MAX_ERROR_BODY].decode("utf-8", "replace"))
        text = text.replace(credential, fingerprint(credential))
        status = upstream.status_code
        call.outcome = "error"
        if status in (401, 403):
            self.outcomes.failure(status, _message_of(text.encode()))
        telemetry.count("llm.gateway.errors", status=status)
        await _reply(send, status, text.encode(), back)


def _usage(buffer: bytes, usage: dict[str, int]) -> bytes:
    """Token counts from the SSE ``data:`` lines complete in ``buffer``; the rest back."""
    *lines, rest = buffer.split(b"\n")
    for line in lines:
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            found = event.get("usage") or (event.get("message") or {}).get("usage") or {}
            for key in ("input_tokens", "output_tokens"):
                if isinstance(found.get(key), int):
                    usage[key] = found[key]
    return rest[-65536:]


def model_policy(plan: EnvPlan, body: bytes, logged: set[str]) -> tuple[bytes, str | None]:
    """For a third-party arm, a model it does not serve becomes the plan's model for
    that slot (the small model for a haiku-class id), logged once per id. The body
    is parsed only when its model is not one the arm serves."""
    arm = plan.arm
    found = _MODEL.search(body[:4096])
    named = found.group(1).decode("utf-8", "replace") if found else None
    if arm is None or arm.anthropic or not plan.model or named is None:
        return body, named
    if arm.serves(named) or named == plan.model:
        return body, named
    try:
        data = json.loads(body)
    except ValueError:
        return body, named
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, str) or arm.serves(model) or model == plan.model:
        return body, model if isinstance(model, str) else named
    small = "haiku" in model.lower() and arm.small_model
    data["model"] = arm.small_model if small else plan.model
    if model not in logged and len(logged) < 256:
        logged.add(model)
        log.info(
            "LLM gateway: model %s is not served by arm %s; sent as %s",
            model,
            arm.name,
            data["model"],
        )
    return json.dumps(data).encode(), str(data["model"])
