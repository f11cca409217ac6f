"""The package's exceptions, and how a secret may be shown.

Every exception the package raises on purpose derives from
``RuntimeAdapterError``. Branches follow what the caller does next::

    RuntimeAdapterError
    ├── ConfigError          an operator must change an input: report it, wait for a change
    │   ├── SettingsError    an environment variable has a bad value
    │   ├── VolumeError      a file on the config volume is missing or malformed
    │   └── ProviderError    the provider environment cannot be planned
    └── EnvGuardError        the applied environment lacks what the plan promised (a bug)

Nothing here may put a secret value into a message: callers pass
fingerprints (``fingerprint``), never values.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "EnvGuardError",
    "ProviderError",
    "RuntimeAdapterError",
    "SettingsError",
    "VolumeError",
    "fingerprint",
]


def fingerprint(secret: str) -> str:
    """``sha256:<first 8 hex>`` of a secret: enough to compare, never enough to use."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


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

    def __str__(self) -> str:
        text = self.message
        location = self.location
        if self.file is not None and location is not None and text.startswith(self.file):
            text = location + text[len(self.file) :]
        elif location is not None and location not in text:
            text = f"{location}: {text}"
        if self.hint:
            text += f" ({self.hint})"
        return text

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
