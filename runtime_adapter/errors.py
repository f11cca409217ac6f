"""The package's exceptions, and how a secret may be shown.

Every exception the package raises on purpose derives from
``RuntimeAdapterError``. Branches follow what the caller does next::

    RuntimeAdapterError
    ├── ConfigError            an operator must change an input: report it, wait for a change
    │   ├── SettingsError      an environment variable has a bad value
    │   ├── VolumeError        a file on the config volume is missing or malformed
    │   └── ProviderError      the provider environment cannot be planned
    ├── EnvGuardError          the applied environment lacks what the plan promised (a bug)
    └── PlatformError          a platform call failed; ``kind`` is its sample-error kind
        ├── PlatformUnavailable    network error, timeout, 408, 429, 5xx: back off, retry
        ├── PlatformAuthError      401: reload the token file, retry once
        ├── WorkspaceUnknown       404 / unknown workspace: register again
        └── PlatformRejected       any other 4xx (e.g. a refused URL): report, no tight retry

Nothing here may put a secret value into a message: callers pass
fingerprints (``fingerprint``), never values, and ``Redactor`` scrubs text
that came from elsewhere (an upstream error body) before it is shown.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "CursorPruned",
    "EnvGuardError",
    "PlatformAuthError",
    "PlatformError",
    "PlatformRejected",
    "PlatformUnavailable",
    "ProviderError",
    "Redactor",
    "RuntimeAdapterError",
    "SettingsError",
    "VolumeError",
    "WorkspaceUnknown",
    "fingerprint",
]


def fingerprint(secret: str) -> str:
    """``sha256:<first 8 hex>`` of a secret: enough to compare, never enough to use."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{12,}|eyJ[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_.\-]+)")
_BEARER = re.compile(r"(?i)\b(bearer|x-api-key[\"']?\s*[:=])\s*[\"']?([A-Za-z0-9_\-.~+/=]{8,})")


# what a sample error says of a credential: "bearer MINIMAX_API_KEY sha256:..." names
# the variable, which is no secret; a fingerprint is already one
_NAMED = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+|sha256:[0-9a-f]{8}")


def _fingerprint_bearer(match: re.Match[str]) -> str:
    value = match.group(2)
    if _NAMED.fullmatch(value):
        return match.group(0)
    return f"{match.group(1)} {fingerprint(value)}"


class Redactor:
    """Replaces every known secret, and anything shaped like a key, with its fingerprint.

    Known secrets are the values in play (provider keys, the platform token);
    shapes catch a key echoed back by an upstream we never gave it to.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        # very short values would turn ordinary words into fingerprints
        self._secrets.update(secret for secret in secrets if secret and len(secret) >= 6)

    def secrets(self) -> list[str]:
        """The known secret values (to seed another redactor; never to print)."""
        return list(self._secrets)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, fingerprint(secret))
        text = _BEARER.sub(_fingerprint_bearer, text)
        return _KEY_LIKE.sub(lambda m: fingerprint(m.group(1)), text)


class RuntimeAdapterError(Exception):
    """Root of every error the package raises on purpose."""


class ConfigError(RuntimeAdapterError):
    """An input an operator controls is wrong; the remedy is to change it.

    ``message`` says what is wrong, ``hint`` what to do. Location attributes
    say where: an environment ``variable``, or a ``file`` with ``line`` and
    ``column`` (1-based) and the dotted ``field`` inside it.
    """

    kind = "config_error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        variable: str | None = None,
        file: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.hint = hint
        self.variable = variable
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.field = field
        super().__init__(self.__str__())

    @property
    def location(self) -> str | None:
        """``file:line:column`` (as far as known), else the variable name."""
        if self.file is not None:
            loc = self.file
            if self.line is not None:
                loc += f":{self.line}"
                if self.column is not None:
                    loc += f":{self.column}"
            return loc
        return self.variable

    def located(self) -> str:
        """The message with its location (file:line:column or variable) in front."""
        text = self.message
        location = self.location
        if self.file is not None and location is not None and text.startswith(self.file):
            text = location + text[len(self.file) :]
        elif location is not None and location not in text:
            text = f"{location}: {text}"
        return text

    def __str__(self) -> str:
        return f"{self.located()} ({self.hint})" if self.hint else self.located()

    def detail(self) -> dict[str, Any]:
        """The structured form, the config part of a sample error (DESIGN §8)."""
        detail: dict[str, Any] = {
            "kind": self.kind,
            "severity": "error",
            "source": "config",
            "message": self.message,
            "hint": self.hint,
        }
        for name in ("variable", "file", "line", "column", "field"):
            value = getattr(self, name)
            if value is not None:
                detail[name] = value
        return detail


class SettingsError(ConfigError):
    """An environment variable read by the settings has a value of the wrong form."""


class VolumeError(ConfigError):
    """A config volume file is missing, unreadable or malformed."""


class ProviderError(ConfigError):
    """The provider environment cannot be planned: a contradiction, a missing
    key, a key that is not clean, or a bad provider arm."""


class EnvGuardError(RuntimeAdapterError):
    """After applying a plan, a variable the LLM SDK reads is not what the plan set.

    This is a bug (something changed the environment under us), not an
    operator mistake.
    """

    def __init__(self, variables: list[str]) -> None:
        self.variables = variables
        super().__init__(
            "the applied provider environment does not hold what the plan set: "
            + ", ".join(variables)
        )


class PlatformError(RuntimeAdapterError):
    """A platform call failed. ``kind`` is the sample-error kind (DESIGN §8);
    ``status`` the HTTP status (None: no answer); ``retry_after`` in seconds."""

    kind = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        kind: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.retry_after = retry_after
        if kind is not None:
            self.kind = kind
        status_text = f"{status} " if status is not None else ""
        super().__init__(f"{endpoint}: {status_text}{message}")


class PlatformUnavailable(PlatformError):
    """No usable answer now (network, timeout, 408, 429, 5xx): back off and retry."""


class PlatformAuthError(PlatformError):
    """401: the token is missing, revoked or rotated."""

    kind = "auth_failed"


class WorkspaceUnknown(PlatformError):
    """404: the platform does not know this workspace (it forgot it): register again."""


class PlatformRejected(PlatformError):
    """Any other 4xx: the platform refused the request as it is; retrying it now won't help."""


class CursorPruned(PlatformRejected):
    """410 on the activity route: the poll cursor is older than what the platform keeps."""
