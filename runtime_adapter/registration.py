"""Registration with the platform (DESIGN §7): one attempt, and the retry loop.

A register attempt's outcome goes to ``Health`` under the ``register``
operation, so only a later successful register clears a refusal. After a
refused or failed attempt the card is also pushed with ``update-card``
(older platforms read it only there). A retry waits with backoff; after a
401 (the provisioner's token file has not arrived yet) it ends its wait as
soon as the token file changes. This module never schedules heartbeats.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never

from . import telemetry
from .backoff import retry_delay
from .card import minimal_card
from .errors import PlatformAuthError, PlatformError, PlatformRejected
from .health import Health, classify
from .platform import PlatformClient, PlatformWait

__all__ = ["REGISTER", "Registration"]

log = logging.getLogger("runtime_adapter.heartbeat")

Sleep = Callable[[float], Awaitable[None]]
# sticky errors are kept per operation (§8): a beat's success never clears a refused
# register, and a beat's failure never replaces it
REGISTER = "register"


class Registration:
    """Registers this workspace under ``url`` and keeps trying until it is registered.

    ``card`` is called for every attempt. ``on_refused`` is told when the platform
    refused the register (it stamped a failure marker that a card-bearing heartbeat
    clears). ``sleep`` and ``rng`` are injectable for simulated time.
    """

    def __init__(
        self,
        client: PlatformClient,
        health: Health,
        *,
        url: str,
        card: Callable[[], dict[str, Any]],
        cap: float = 300.0,
        interval: float = 30.0,
        on_refused: Callable[[], None] = lambda: None,
        sleep: Sleep = anyio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.health = health
        self.url = url
        self.card = card
        self.cap = cap
        self.interval = interval  # the schedule's waits grow from it (§7)
        self.on_refused = on_refused
        self._sleep = sleep
        self._rng = rng
        self.registered = False
        self._retrying = False
        self._error: PlatformError | None = None

    def safe_card(self) -> dict[str, Any]:
        """The card, or a minimal one when the adapter's card callback raises: a bug in
        ``skills()`` must not stop registration or heartbeats."""
        try:
            return self.card()
        except Exception as error:
            log.exception("building the agent card failed; sending a minimal card")
            self.health.record_failure(classify(error, "runtime"), operation="card")
            return minimal_card(self.client.workspace_id, self.url, "the card could not be built")

    async def once(self) -> bool:
        """One register attempt; the outcome goes to ``health``; True on success."""
        try:
            await self._attempt()
        except PlatformError:
            return False
        return True

    async def _attempt(self) -> None:
        with telemetry.span("register", **{"url.full": self.url}) as current:
            try:
                await self._register()
            except PlatformError as error:
                telemetry.set_attributes(
                    current, **{"error.type": error.kind, "http.response.status_code": error.status}
                )
                raise

    async def _register(self) -> None:
        try:
            issued = await self.client.register(self.url, self.safe_card())
        except PlatformError as error:
            self._error = error
            self.health.record_failure(classify(error, "platform"), operation=REGISTER)
            log.warning("register as %s failed: %s", self.url, error)
            if not isinstance(error, PlatformAuthError):
                # older platforms read the card only from register and update-card
                try:
                    await self.client.update_card(self.safe_card())
                except PlatformError as card_error:
                    log.info("update-card after a failed register failed: %s", card_error)
            if isinstance(error, PlatformRejected):
                self.on_refused()
            raise
        self.registered = True
        self._error = None
        self.health.record_success("platform", operation=REGISTER)
        log.info("registered as %s%s", self.url, " (token issued)" if issued else "")

    async def until_done(self, spread: float | None = None) -> None:
        """Register, with backoff, until it succeeds (one loop at a time). The first try
        waits a random part of ``spread`` seconds (default: the first backoff step)."""
        if self._retrying:
            return
        self._retrying = True
        try:
            if spread is None:
                # the attempt that just failed counts as the first: wait before the next
                await self._sleep(
                    retry_delay(1, interval=self.interval, cap=self.cap, rng=self._rng)
                )
            else:
                await self._sleep(spread * self._rng())
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(PlatformError),
                # the attempt that failed before this loop was the first of the run
                wait=PlatformWait(interval=self.interval, cap=self.cap, before=1, rng=self._rng),
                stop=stop_never,
                sleep=self._wait,
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    if not self.registered:
                        await self._attempt()
        finally:
            self._retrying = False

    async def _wait(self, delay: float) -> None:
        """The backoff before the next register; after a 401 it ends early when the token
        file changes."""
        if not isinstance(self._error, PlatformAuthError):
            await self._sleep(delay)
            return
        tokens = self.client.tokens
        before = tokens.fingerprint
        waited = 0.0
        while waited < delay:
            step = min(1.0, delay - waited)
            await self._sleep(step)
            waited += step
            await anyio.to_thread.run_sync(tokens.refresh)
            if tokens.fingerprint != before:
                log.info("the token file changed; registering again now")
                return
