"""The platform client: register, heartbeat and update-card (DESIGN §7), and the
poll side (§14): the activity rows, and replies through the platform.

Every httpx exception and every non-2xx answer is converted here into the
package's ``PlatformError`` tree; nothing above this module sees httpx.
Timeouts are connect 5 s, total 10 s; TLS verification is never disabled.
A 401 reloads the token file (the provisioner may have rotated it) and
retries once. ``PlatformWait`` gives tenacity DESIGN §7's schedule
(``backoff.retry_delay``), honouring ``Retry-After``.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx
from tenacity import RetryCallState

from ._version import __version__
from .backoff import MAX_RETRY_AFTER, retry_delay
from .errors import (
    CursorPruned,
    PlatformAuthError,
    PlatformError,
    PlatformRejected,
    PlatformUnavailable,
    WorkspaceUnknown,
)
from .tokens import TokenStore

__all__ = [
    "MAX_RETRY_AFTER",
    "PlatformClient",
    "PlatformWait",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# one deadline around a whole exchange (§7): httpx's read timeout restarts on every
# byte, so a server that drips its answer would hold a beat far longer
TOTAL_SECONDS = 10.0


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    body: dict[str, Any] | None
    params: dict[str, str]
    headers: dict[str, str]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class PlatformWait:
    """A tenacity wait strategy: ``backoff.retry_delay`` keyed to our exceptions'
    ``retry_after``. ``before`` counts failures that came before this retry loop."""

    def __init__(
        self,
        *,
        interval: float,
        cap: float = 60.0,
        before: int = 0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.interval, self.cap, self.before, self.rng = interval, cap, before, rng

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = error.retry_after if isinstance(error, PlatformError) else None
        return retry_delay(
            state.attempt_number + self.before,
            interval=self.interval,
            cap=self.cap,
            retry_after=retry_after,
            rng=self.rng,
        )


class PlatformClient:
    """One workspace's link to the platform, on ``httpx.AsyncClient``.

    Use as an async context manager. ``transport`` is for tests (an
    ``httpx.ASGITransport`` around the platform emulator, or respx).
    """

    def __init__(
        self,
        base_url: str,
        workspace_id: str,
        tokens: TokenStore,
        *,
        inbound: TokenStore | None = None,
        delivery: str = "push",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = TIMEOUT,
        total: float = TOTAL_SECONDS,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.total = total
        self.base_url = base_url.rstrip("/")
        self.endpoint = httpx.URL(self.base_url).host or self.base_url
        self.workspace_id = workspace_id
        self.tokens = tokens
        # the platform_inbound_secret a register or heartbeat answer may carry (§7)
        self.inbound = inbound
        self.delivery = delivery  # "poll": registered without a URL (§14)
        parts = httpx.URL(self.base_url)
        port = f":{parts.port}" if parts.port else ""
        self.origin = f"{parts.scheme}://{parts.host}{port}"
        if transport is None:
            # the request's headers and body go out at once: without TCP_NODELAY the
            # body waits for the ACK of the headers, ~40 ms of delayed ACK per POST
            transport = httpx.AsyncHTTPTransport(
                verify=tls if tls is not None else True,  # a verifying context, never off
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            )
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            verify=tls if tls is not None else True,  # a verifying context, never off
            headers={
                "User-Agent": f"runtime-adapter/{__version__}",
                "X-Workspace-ID": workspace_id,
            },
        )

    async def __aenter__(self) -> PlatformClient:
        await self._http.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self._http.aclose()

    # -- calls --------------------------------------------------------------------

    async def register(self, url: str, card: dict[str, Any]) -> bool:
        """Register under ``url``; True when the platform issued a token (then saved).

        A refused register (400, e.g. URL validation) raises ``PlatformRejected``
        with kind ``registration_failed``.
        """
        body: dict[str, Any] = {"id": self.workspace_id, "url": url, "agent_card": card}
        headers: dict[str, str] = {}
        if self.delivery == "poll":
            # no inbound route: no URL; a SaaS web firewall wants the Origin (§14)
            body = {"id": self.workspace_id, "delivery_mode": "poll", "agent_card": card}
            headers["Origin"] = self.origin
        try:
            answer = await self._post("/registry/register", body, headers=headers)
        except PlatformRejected as error:
            error.kind = "registration_failed"
            raise
        await self._adopt_inbound(answer)
        issued = answer.get("auth_token")
        if isinstance(issued, str) and issued.strip() and issued.strip() != self.tokens.token:
            await anyio.to_thread.run_sync(self.tokens.save, issued.strip())
            return True
        return False

    async def heartbeat(self, body: dict[str, Any]) -> None:
        """Send one heartbeat; ``WorkspaceUnknown`` means register again."""
        await self._adopt_inbound(await self._post("/registry/heartbeat", body))

    async def _adopt_inbound(self, answer: dict[str, Any]) -> None:
        secret = answer.get("platform_inbound_secret")
        if self.inbound is None or not isinstance(secret, str) or not secret.strip():
            return
        secret = secret.strip()
        usable = len(secret) <= 4096 and not any(c.isspace() or not c.isprintable() for c in secret)
        if usable and secret != self.inbound.token:
            await anyio.to_thread.run_sync(self.inbound.save, secret)

    async def update_card(self, card: dict[str, Any]) -> bool:
        """Push the card; False when the platform has no such endpoint (404, older servers)."""
        try:
            await self._post(
                "/registry/update-card", {"workspace_id": self.workspace_id, "agent_card": card}
            )
        except WorkspaceUnknown:
            return False
        return True

    # -- poll delivery (§14) ---------------------------------------------------------------

    async def activity(
        self, *, since_id: str | None = None, since_secs: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """``a2a_receive`` rows after ``since_id`` (or of the last ``since_secs``), oldest
        first; ``CursorPruned`` when the platform no longer has ``since_id`` (410)."""
        params: dict[str, str] = {"type": "a2a_receive", "limit": str(limit)}
        if since_id:
            params["since_id"] = since_id
        if since_secs is not None:
            params["since_secs"] = str(since_secs)
        try:
            answer = await self._call(
                "GET", f"/workspaces/{self.workspace_id}/activity", params=params
            )
        except PlatformRejected as error:
            if error.status == 410:
                raise CursorPruned(str(error), endpoint=self.endpoint, status=410) from None
            raise
        rows = answer.get("_list")
        if rows is None:  # an object around the list: {"activities": [...]} or {"rows": [...]}
            rows = answer.get("activities", answer.get("rows", []))
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    async def reply_to_peer(self, source_id: str, body: dict[str, Any]) -> None:
        """A JSON-RPC ``message/send`` to the peer workspace, through the platform."""
        await self._call(
            "POST",
            f"/workspaces/{source_id}/a2a",
            body,
            headers={"X-Source-Workspace-Id": self.workspace_id},
        )

    async def notify(self, text: str) -> None:
        """A message to the platform's user (the canvas)."""
        await self._call("POST", f"/workspaces/{self.workspace_id}/notify", {"message": text})

    # -- the boundary: httpx in, PlatformError out ------------------------------------

    async def _post(
        self, path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return await self._call("POST", path, body, headers=headers)

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        # the whole call, a 401's reload-and-retry included, is bounded too
        request = _Request(method, path, body, params or {}, headers or {})
        try:
            with anyio.fail_after(2 * self.total + 5):
                return await self._exchange(request)
        except TimeoutError:
            raise PlatformUnavailable(
                f"{path}: no answer within {2 * self.total + 5:.0f} s",
                endpoint=self.endpoint,
                kind="timeout",
            ) from None

    async def _exchange(self, request: _Request) -> dict[str, Any]:
        path = request.path
        await anyio.to_thread.run_sync(self.tokens.refresh)
        response = await self._send(request)
        if response.status_code == 401:
            # the provisioner may have rotated the token: read the file again, retry once
            await anyio.to_thread.run_sync(self.tokens.refresh)
            log.info(
                "platform answered 401 on %s; retrying once with token %s",
                path,
                self.tokens.fingerprint or "(none)",
            )
            response = await self._send(request)
        return answer_of(path, response, self.endpoint)

    async def _send(self, request: _Request) -> httpx.Response:
        """One exchange within ``total`` seconds; whatever fails is a ``PlatformError``.

        Every exception is mapped here, in one place, catching httpx's root (and
        what request building raises, e.g. a header that does not encode), so
        nothing a platform or a proxy answers can reach the caller as anything else.
        """
        path = request.path
        headers = dict(request.headers)
        if self.tokens.token:
            headers["Authorization"] = f"Bearer {self.tokens.token}"
        try:
            with anyio.fail_after(self.total):
                return await self._http.request(
                    request.method,
                    path,
                    json=request.body,
                    params=request.params or None,
                    headers=headers,
                )
        except (TimeoutError, httpx.TimeoutException) as error:
            raise PlatformUnavailable(
                f"{path}: no complete answer within {self.total:.0f} s ({type(error).__name__})",
                endpoint=self.endpoint,
                kind="timeout",
            ) from None
        except httpx.HTTPError as error:
            # transport errors, and answers that do not decode (a broken gzip body)
            raise PlatformUnavailable(
                f"{path}: {type(error).__name__}: {error}".rstrip(": "),
                endpoint=self.endpoint,
                kind="network_error",
            ) from None
        except (
            httpx.InvalidURL,
            httpx.CookieConflict,
            UnicodeError,
            ValueError,
            TypeError,
        ) as error:
            raise PlatformRejected(
                f"{path}: the request could not be built ({type(error).__name__})",
                endpoint=self.endpoint,
                kind="network_error",
            ) from None


def answer_of(path: str, response: httpx.Response, endpoint: str) -> dict[str, Any]:
    """A platform answer's JSON object, or the ``PlatformError`` its status means."""
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        data = None
    if 200 <= status < 300:
        if isinstance(data, list):
            return {"_list": data}  # the activity route answers a bare list
        return data if isinstance(data, dict) else {}
    message = ""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        message = data["error"]
    message = message or response.reason_phrase or "error"
    where = f"{path}: {message}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 401:
        raise PlatformAuthError(where, endpoint=endpoint, status=status)
    if status == 404 or "unknown workspace" in message.lower():
        raise WorkspaceUnknown(where, endpoint=endpoint, status=status)
    if status == 408:
        raise PlatformUnavailable(
            where,
            endpoint=endpoint,
            status=status,
            kind="timeout",
            retry_after=retry_after,
        )
    if status == 429:
        raise PlatformUnavailable(
            where,
            endpoint=endpoint,
            status=status,
            kind="rate_limited",
            retry_after=retry_after,
        )
    if status >= 500:
        raise PlatformUnavailable(where, endpoint=endpoint, status=status, retry_after=retry_after)
    raise PlatformRejected(where, endpoint=endpoint, status=status)
