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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from . import telemetry
from .envplan import EnvPlan
from .errors import fingerprint

__all__ = ["PROBE_HEADER", "Gateway", "Outcomes", "StreamScrub", "upstream_headers"]

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 2**20  # the CLI sends whole conversations: generous, still bounded
MAX_ERROR_BODY = 2**20
ANTHROPIC = "https://api.anthropic.com"
OAUTH_BETA = "oauth-2025-04-20"
# the runtime's own credential probe marks its request: its outcome is the probe's
PROBE_HEADER = "x-runtime-adapter-probe"
# a long answer streams for minutes; what bounds it is the time between bytes
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=10.0)
_HOP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "accept-encoding",
        "authorization",
        "x-api-key",
        PROBE_HEADER,
    }
)
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
    """The agent's headers for the upstream: its credential replaced by the real one in
    the arm's scheme; identity encoding, so the answer can be scrubbed as it streams."""
    out: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in _HOP:
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


class Gateway:
    """``Gateway(current_plan).app`` is the ASGI app; ``token`` is for the agent only.

    ``current_plan`` returns the *direct* plan (with the real credential) for each
    request. ``transport`` is for tests.
    """

    def __init__(
        self,
        current_plan: Callable[[], EnvPlan | None],
        *,
        outcomes: Outcomes | None = None,
        redact: Callable[[str], str] = str,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.current_plan = current_plan
        self.outcomes = outcomes or Outcomes()
        self.redact = redact
        self.token = token or secrets.token_urlsafe(32)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None  # built by open(): it loads the CA store
        self._rewritten: set[str] = set()  # model ids logged once (bounded below)
        self.requests = 0
        self.refused = 0

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
        response = await self._handle(Request(scope, receive))
        await response(scope, receive, send)

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        scheme, _, presented = given.partition(" ")
        if scheme.lower() != "bearer":
            presented = request.headers.get("x-api-key", "")
        try:
            return hmac.compare_digest(presented.encode(), self.token.encode())
        except (TypeError, UnicodeEncodeError):
            return False

    async def _handle(self, request: Request) -> Response:
        if not self._authorized(request):
            self.refused += 1
            log.warning("LLM gateway: a request without the gateway's token was refused")
            return _error(401, "the LLM gateway's token is required", "authentication_error")
        plan = self.current_plan()
        credential = _credential(plan) if plan is not None else None
        if plan is None or plan.arm is None or credential is None:
            return _error(503, "no LLM credential is configured for this workspace")
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_REQUEST:
            return _error(413, "request too large for the LLM gateway", "request_too_large")
        body = await request.body()
        if len(body) > MAX_REQUEST:
            return _error(413, "request too large for the LLM gateway", "request_too_large")
        body, model = self._model_policy(plan, body)
        observed = PROBE_HEADER not in request.headers
        call = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": plan.provider,
            "gen_ai.request.model": model,
        }
        base = (plan.base_url or ANTHROPIC).rstrip("/")
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = upstream_headers(list(request.headers.items()), plan.arm.auth, credential)
        self.requests += 1
        started = time.perf_counter()
        self.open()
        assert self._http is not None
        try:
            outgoing = self._http.build_request(request.method, url, headers=headers, content=body)
            with anyio.fail_after(610):  # to the answer's headers
                upstream = await self._http.send(outgoing, stream=True)
        except (httpx.HTTPError, TimeoutError, ValueError) as error:
            log.warning("LLM gateway: upstream %s failed: %s", base, type(error).__name__)
            return _error(502, f"the LLM upstream could not be reached ({type(error).__name__})")
        back = {k: v for k, v in upstream.headers.items() if k.lower() not in _BACK_DROP}
        if upstream.status_code >= 400:
            return await self._failed(upstream, back, credential, observed, call)
        if 200 <= upstream.status_code < 300 and observed:
            self.outcomes.success()
        return StreamingResponse(
            self._relay(upstream, credential, started, call),
            status_code=upstream.status_code,
            headers=back,
        )

    async def _failed(
        self,
        upstream: httpx.Response,
        back: dict[str, str],
        credential: str,
        observed: bool,
        call: dict[str, Any],
    ) -> Response:
        try:
            raw = b""
            with anyio.move_on_after(30):
                async for chunk in upstream.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_ERROR_BODY:
                        break
        except httpx.HTTPError:
            pass
        finally:
            await upstream.aclose()
        text = self.redact(raw[:MAX_ERROR_BODY].decode("utf-8", "replace"))
        text = text.replace(credential, fingerprint(credential))
        status = upstream.status_code
        if status in (401, 403) and observed:
            self.outcomes.failure(status, _message_of(text.encode()))
        telemetry.count("llm.gateway.errors", status=status)
        name = f"chat {call['gen_ai.request.model'] or ''}".strip()
        with telemetry.span(name, **call) as current:
            telemetry.set_attributes(
                current, **{"http.response.status_code": status, "error.type": str(status)}
            )
        return Response(text.encode(), status_code=status, headers=back)

    async def _relay(
        self, upstream: httpx.Response, credential: str, started: float, call: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        """The upstream's bytes as they arrive, each chunk out as soon as it is in; one
        ``gen_ai`` span per call, with the usage and timings read off the answer."""
        scrub = StreamScrub([credential])
        first: float | None = None
        usage: dict[str, int] = {}
        tail = b""
        name = f"chat {call['gen_ai.request.model'] or ''}".strip()
        with telemetry.span(name, **call) as current:
            try:
                async for chunk in upstream.aiter_raw():
                    if first is None:
                        first = time.perf_counter() - started
                        telemetry.observe("gen_ai.server.time_to_first_token", first)
                    tail = _usage(tail + chunk, usage)
                    out = scrub.feed(chunk)
                    if out:
                        yield out
                rest = scrub.flush()
                if rest:
                    yield rest
            except httpx.HTTPError as error:
                log.warning(
                    "LLM gateway: the upstream's answer broke off: %s", type(error).__name__
                )
            finally:
                with anyio.CancelScope(shield=True):
                    await upstream.aclose()
                seconds = time.perf_counter() - started
                telemetry.observe("gen_ai.client.operation.duration", seconds, **call)
                for kind in ("input", "output"):
                    if f"{kind}_tokens" in usage:
                        telemetry.observe(
                            "gen_ai.client.token.usage",
                            usage[f"{kind}_tokens"],
                            **call,
                            **{"gen_ai.token.type": kind},
                        )
                telemetry.set_attributes(
                    current,
                    **{
                        "http.response.status_code": upstream.status_code,
                        "gen_ai.usage.input_tokens": usage.get("input_tokens"),
                        "gen_ai.usage.output_tokens": usage.get("output_tokens"),
                        "gen_ai.server.time_to_first_token": first,
                    },
                )

    def _model_policy(self, plan: EnvPlan, body: bytes) -> tuple[bytes, str | None]:
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
        if model not in self._rewritten and len(self._rewritten) < 256:
            self._rewritten.add(model)
            log.info(
                "LLM gateway: model %s is not served by arm %s; sent as %s",
                model,
                arm.name,
                data["model"],
            )
        return json.dumps(data).encode(), str(data["model"])


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
