"""The platform client: register, heartbeat and update-card (DESIGN §7).

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
import ssl
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx
from tenacity import RetryCallState

from ._version import __version__
from .backoff import MAX_RETRY_AFTER, retry_delay
from .errors import (
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
        body = {"id": self.workspace_id, "url": url, "agent_card": card}
        try:
            answer = await self._post("/registry/register", body)
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

    # -- the boundary: httpx in, PlatformError out ------------------------------------

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        # the whole call, a 401's reload-and-retry included, is bounded too
        try:
            with anyio.fail_after(2 * self.total + 5):
                return await self._exchange(path, body)
        except TimeoutError:
            raise PlatformUnavailable(
                f"{path}: no answer within {2 * self.total + 5:.0f} s",
                endpoint=self.endpoint,
                kind="timeout",
            ) from None

    async def _exchange(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await anyio.to_thread.run_sync(self.tokens.refresh)
        response = await self._send(path, body)
        if response.status_code == 401:
            # the provisioner may have rotated the token: read the file again, retry once
            await anyio.to_thread.run_sync(self.tokens.refresh)
            log.info(
                "platform answered 401 on %s; retrying once with token %s",
                path,
                self.tokens.fingerprint or "(none)",
            )
            response = await self._send(path, body)
        return self._answer(path, response)

    async def _send(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """One exchange within ``total`` seconds; whatever fails is a ``PlatformError``.

        Every exception is mapped here, in one place, catching httpx's root (and
        what request building raises, e.g. a header that does not encode), so
        nothing a platform or a proxy answers can reach the caller as anything else.
        """
        headers = {}
        if self.tokens.token:
            headers["Authorization"] = f"Bearer {self.tokens.token}"
        try:
            with anyio.fail_after(self.total):
                return await self._http.post(path, json=body, headers=headers)
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

    def _answer(self, path: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        if 200 <= status < 300:
            return data if isinstance(data, dict) else {}
        message = ""
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            message = data["error"]
        message = message or response.reason_phrase or "error"
        where = f"{path}: {message}"
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 401:
            raise PlatformAuthError(where, endpoint=self.endpoint, status=status)
        if status == 404 or "unknown workspace" in message.lower():
            raise WorkspaceUnknown(where, endpoint=self.endpoint, status=status)
        if status == 408:
            raise PlatformUnavailable(
                where,
                endpoint=self.endpoint,
                status=status,
                kind="timeout",
                retry_after=retry_after,
            )
        if status == 429:
            raise PlatformUnavailable(
                where,
                endpoint=self.endpoint,
                status=status,
                kind="rate_limited",
                retry_after=retry_after,
            )
        if status >= 500:
            raise PlatformUnavailable(
                where, endpoint=self.endpoint, status=status, retry_after=retry_after
            )
        raise PlatformRejected(where, endpoint=self.endpoint, status=status)
