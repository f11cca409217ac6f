"""Find the Claude Code settings files that would override the host's provider env.

The Claude Code CLI reads an ``env`` block, ``apiKeyHelper`` and ``model`` from
the user's, the project's and the managed ``settings.json``. Without
``CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST=1`` they win over the process
environment (measured with CLI 2.1.330); with it the plan wins. This module
lists what such files try to set, for ``doctor``. It reads files only and
never returns or prints a value: a key name and where it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .envplan import HOST_FLAG, MANAGED_VARIABLES

__all__ = ["MANAGED_SETTINGS", "SettingsOverride", "find_overrides", "settings_files"]

MANAGED_SETTINGS = Path("/etc/claude-code/managed-settings.json")
_PROVIDER_KEYS = ("apiKeyHelper", "model", "availableModels")
_PROVIDER_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_USE_", "AWS_BEARER_TOKEN")


@dataclass(frozen=True)
class SettingsOverride:
    """One key of one settings file that tries to decide the provider."""

    file: str
    key: str  # "env.ANTHROPIC_BASE_URL", "apiKeyHelper", "model" ...
    held: bool  # True when the host flag makes the CLI ignore it

    def describe(self) -> str:
        effect = (
            f"ignored: {HOST_FLAG}=1 keeps the host's value"
            if self.held
            else f"WINS over the environment: {HOST_FLAG} is not 1"
        )
        return f"{self.file}: {self.key} ({effect})"


def settings_files(
    home: Path | None,
    project_dirs: Iterable[Path],
    managed: Path = MANAGED_SETTINGS,
    config_dirs: Iterable[Path] = (),
) -> list[Path]:
    """The files the CLI reads, user first (``$HOME/.claude`` and every directory a CLI
    may be given as ``CLAUDE_CONFIG_DIR``), then each project directory, then managed."""
    files: list[Path] = []
    if home is not None:
        files.append(home / ".claude" / "settings.json")
    files += [directory / "settings.json" for directory in dict.fromkeys(config_dirs)]
    for directory in dict.fromkeys(project_dirs):
        files += [
            directory / ".claude" / "settings.json",
            directory / ".claude" / "settings.local.json",
        ]
    files.append(managed)
    return files


def _provider_env(name: str) -> bool:
    return name in MANAGED_VARIABLES or name.startswith(_PROVIDER_PREFIXES)


def find_overrides(files: Iterable[Path], environ: Mapping[str, str]) -> list[SettingsOverride]:
    """Every provider key the ``files`` set; unreadable or malformed files are skipped
    (the CLI skips them too)."""
    held = environ.get(HOST_FLAG, "").strip().lower() in ("1", "true", "yes", "on")
    found: list[SettingsOverride] = []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        env = data.get("env")
        if isinstance(env, dict):
            found += [
                SettingsOverride(str(path), f"env.{name}", held)
                for name in env
                if isinstance(name, str) and _provider_env(name)
            ]
        found += [SettingsOverride(str(path), key, held) for key in _PROVIDER_KEYS if key in data]
    return found
