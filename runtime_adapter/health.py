"""The workspace's health as the platform sees it (DESIGN §8).

``classify`` turns an exception into a structured ``SampleError`` (pure, no
I/O). ``Health`` keeps the sticky error of each operation (register,
heartbeat, probe, ...; it stays until a later success of the same operation),
a rolling window of LLM call outcomes for ``error_rate``, and a change counter
the heartbeat loop waits on. A sample error's text is always redacted and at
most 512 characters.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import httpx

from .errors import ConfigError, PlatformError, Redactor

__all__ = [
    "Health",
    "LLMContext",
    "SampleError",
    "classify",
    "classify_status",
]

Source = Literal["llm_probe", "llm_call", "platform", "config", "runtime"]
Severity = Literal["error", "warning"]
MAX_SAMPLE_ERROR = 512
_MESSAGE_LIMIT = 300
# failures that are the workspace's own (count in error_rate); a caller's bad request is not
_OWN_FAILURES = frozenset(
    {"auth_failed", "permission_denied", "upstream_error", "network_error", "timeout"}
)
_LLM_SOURCES = frozenset({"llm_probe", "llm_call"})
_BEAT_OPERATION = "heartbeat"  # heartbeat.BEAT: the platform's own failure to take a beat


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class LLMContext:
    """What the env plan says about the LLM credential, for error messages (no values)."""

    provider: str | None = None
    endpoint: str | None = None
    auth_scheme: str | None = None
    credential_env: str | None = None
    credential_fingerprint: str | None = None

    @classmethod
    def from_plan(cls, plan: Any) -> LLMContext:
        """From an ``EnvPlan`` (duck-typed to keep this module below envplan)."""
        credential = plan.credential
        base = plan.base_url or ("https://api.anthropic.com" if plan.arm is not None else None)
        return cls(
            provider=plan.provider,
            endpoint=urlsplit(base).hostname if base else None,
            auth_scheme=credential.auth_scheme if credential else None,
            credential_env=(credential.variable or "workspace token") if credential else None,
            credential_fingerprint=credential.fingerprint if credential else None,
        )


@dataclass(frozen=True)
class SampleError:
    """One structured sample error (DESIGN §8)."""

    kind: str
    severity: Severity
    source: Source
    message: str
    hint: str | None = None
    status: int | None = None
    provider: str | None = None
    endpoint: str | None = None
    auth_scheme: str | None = None
    credential_env: str | None = None
    credential_fingerprint: str | None = None
    variable: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None
    count: int = 1
    first_seen: float = dataclass_field(default_factory=time.time)
    last_seen: float = dataclass_field(default_factory=time.time)

    def detail(self) -> dict[str, Any]:
        """The ``sample_error_detail`` object: absent facts are left out."""
        detail: dict[str, Any] = {
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status,
            "source": self.source,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "auth_scheme": self.auth_scheme,
            "credential_env": self.credential_env,
            "credential_fingerprint": self.credential_fingerprint,
            "message": self.message,
            "hint": self.hint,
            "variable": self.variable,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "count": self.count,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
        }
        return {key: value for key, value in detail.items() if value is not None}

    def summary(self) -> str:
        """The ``sample_error`` string, e.g. ``auth_failed: 401 from api.minimax.io
        (minimax, bearer MINIMAX_API_KEY sha256:1a2b3c4d): invalid api key``."""
        head = self.kind + ":"
        if self.status is not None:
            head += f" {self.status}"
        if self.endpoint:
            head += f" from {self.endpoint}"
        who = " ".join(
            part
            for part in (self.auth_scheme, self.credential_env, self.credential_fingerprint)
            if part
        )
        facts = ", ".join(part for part in (self.provider, who) if part)
        if facts:
            head += f" ({facts})"
        text = f"{head} {self.message}" if head.endswith(":") else f"{head}: {self.message}"
        if len(text) > MAX_SAMPLE_ERROR:
            text = text[: MAX_SAMPLE_ERROR - 1] + "…"
        return text


def _status_kind(status: int) -> tuple[str, Severity]:
    if status == 401:
        return "auth_failed", "error"
    if status == 403:
        return "permission_denied", "error"
    if status == 429:
        return "rate_limited", "warning"
    if status == 408:
        return "timeout", "warning"
    if status == 404:
        return "config_error", "error"
    return "upstream_error", "warning"


_HINTS = {
    "auth_failed": "the {provider} credential was rejected; check {credential}",
    "permission_denied": "the {provider} credential may not use this model or endpoint; "
    "check {credential} and the model",
    "rate_limited": "the provider is rate limiting; it recovers by itself",
    "config_error": "the endpoint or model was not found; check the model id and base URL",
}


def _upstream_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return str(exc) or type(exc).__name__


def classify_status(
    status: int,
    message: str,
    source: Source,
    context: LLMContext | None = None,
    *,
    redact: Callable[[str], str] | None = None,
) -> SampleError:
    """The sample error for an HTTP ``status`` an LLM answered with, seen without an
    exception (e.g. in a CLI's event stream)."""
    error = _StatusError(message)
    error.status_code = status
    return classify(error, source, context, redact=redact)


class _StatusError(Exception):
    status_code: int


def classify(
    exc: BaseException,
    source: Source,
    context: LLMContext | None = None,
    *,
    redact: Callable[[str], str] | None = None,
    now: float | None = None,
) -> SampleError:
    """The structured sample error for ``exc`` seen by ``source`` (pure)."""
    now = time.time() if now is None else now
    ctx = context or LLMContext()
    redact = redact or Redactor()

    def make(kind: str, severity: Severity, message: str, **extra: Any) -> SampleError:
        message = redact(" ".join(message.split()))[:_MESSAGE_LIMIT]
        llm = source in _LLM_SOURCES
        fields: dict[str, Any] = {
            "provider": ctx.provider if llm else None,
            "endpoint": ctx.endpoint if llm else None,
            "auth_scheme": ctx.auth_scheme if llm else None,
            "credential_env": ctx.credential_env if llm else None,
            "credential_fingerprint": ctx.credential_fingerprint if llm else None,
            **extra,
        }
        if "hint" not in fields and llm and kind in _HINTS:
            fields["hint"] = _HINTS[kind].format(
                provider=ctx.provider or "LLM", credential=ctx.credential_env or "the key"
            )
        return SampleError(kind, severity, source, message, first_seen=now, last_seen=now, **fields)

    if isinstance(exc, ConfigError):
        return make(
            "config_error",
            "error",
            exc.located(),
            hint=exc.hint,
            variable=exc.variable,
            file=exc.file,
            line=exc.line,
            column=exc.column,
            field=exc.field,
        )
    if isinstance(exc, PlatformError):
        # the agent still works when the platform refuses or is away: a warning
        return make(exc.kind, "warning", exc.message, status=exc.status, endpoint=exc.endpoint)
    status = getattr(exc, "status_code", None)
    module = type(exc).__module__
    if isinstance(status, int) and (
        module.startswith("anthropic") or isinstance(exc, _StatusError)
    ):
        kind, severity = _status_kind(status)
        return make(kind, severity, _upstream_message(exc), status=status)
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException | TimeoutError) or name == "APITimeoutError":
        return make("timeout", "warning", _upstream_message(exc) or "timed out")
    if isinstance(exc, httpx.TransportError | ConnectionError) or name == "APIConnectionError":
        return make("network_error", "warning", _upstream_message(exc))
    if isinstance(exc, httpx.HTTPStatusError):
        kind, severity = _status_kind(exc.response.status_code)
        return make(kind, severity, _upstream_message(exc), status=exc.response.status_code)
    return make("runtime_crash", "error", f"{name}: {_upstream_message(exc)}")


class Health:
    """Sticky sample errors per source, the LLM outcome window, and change notification."""

    def __init__(self, *, window: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.clock = clock
        self._errors: dict[str, SampleError] = {}
        self._outcomes: deque[tuple[float, bool]] = deque()
        self.version = 0
        self._event: anyio.Event | None = None

    # -- reporting ----------------------------------------------------------------

    def record_success(
        self,
        source: Source,
        *,
        operation: str | None = None,
        keep: frozenset[str] = frozenset(),
        count: bool = True,
    ) -> None:
        """A success of ``operation`` (default: the source itself) clears that operation's
        sticky error, unless its kind is in ``keep``; an LLM call's success also counts in
        the error window (unless ``count`` is false: another observer counts that call).
        Errors are owned by their reporter: the runtime's own LLM observations (its probe,
        its gateway) are one reporter, so a success of either clears both; a success
        under an ``operation`` of its own (an adapter's reports) clears only that one.
        A heartbeat's success never clears a register's refusal: each is kept under
        its own operation."""
        if source == "llm_call" and count:
            self._outcome(True)
        if source in _LLM_SOURCES and operation is None:
            # one good answer to the runtime's credential proves it, whichever of its
            # paths saw the error
            cleared = [key for key in self._errors if key in _LLM_SOURCES]
        else:
            key = operation or source
            cleared = [key] if key in self._errors else []
        cleared = [key for key in cleared if self._errors[key].kind not in keep]
        for key in cleared:
            del self._errors[key]
        if cleared and source != "platform":
            self._changed()

    def record_failure(
        self, error: SampleError, *, operation: str | None = None, count: bool = True
    ) -> None:
        """A failure: becomes the sticky error of ``operation`` (default: its source),
        count and first_seen kept while the kind stays the same. An LLM call's own
        failure counts in the error window unless ``count`` is false."""
        # probes are checks, not the agent's work: only calls count in error_rate
        if error.source == "llm_call" and error.kind in _OWN_FAILURES and count:
            self._outcome(False)
        key = operation or error.source
        previous = self._errors.get(key)
        if previous is not None and previous.kind == error.kind:
            error = replace(
                error, count=previous.count + error.count, first_seen=previous.first_seen
            )
        self._errors[key] = error
        # the platform's own trouble is not news to send it now (a refused register
        # pokes explicitly); waking the loop for it doubled the herd after an outage
        if (previous is None or previous.kind != error.kind) and error.source != "platform":
            self._changed()

    def _outcome(self, ok: bool) -> None:
        now = self.clock()
        self._outcomes.append((now, ok))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._outcomes and self._outcomes[0][0] <= now - self.window:
            self._outcomes.popleft()

    # -- reading ------------------------------------------------------------------

    def error_rate(self) -> float:
        """Failed share of LLM calls in the last ``window`` seconds (0.0 with none)."""
        self._trim(self.clock())
        if not self._outcomes:
            return 0.0
        failures = sum(1 for _, ok in self._outcomes if not ok)
        return round(failures / len(self._outcomes), 4)

    def errors(self) -> list[SampleError]:
        return list(self._errors.values())

    def current(self) -> SampleError | None:
        """The error to show (DESIGN §8): errors before warnings; the workspace's own
        problem (config, credential, LLM, runtime, a refused register) before the
        platform's failure to take a beat, which is no news to the platform; then the
        most recent."""
        if not self._errors:
            return None
        return max(
            self._errors.items(),
            key=lambda item: (
                item[1].severity == "error",
                item[0] != _BEAT_OPERATION,
                item[1].last_seen,
            ),
        )[1]

    @property
    def runtime_state(self) -> str:
        """``"wedged"`` while any sticky error has severity error, else ``""``."""
        return "wedged" if any(e.severity == "error" for e in self._errors.values()) else ""

    # -- change notification ----------------------------------------------------------

    def poke(self) -> None:
        """Something the platform should hear about now, though no error changed."""
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_changed(self, since: int) -> None:
        """Return once ``version`` differs from ``since``."""
        while self.version == since:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
