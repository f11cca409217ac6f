"""The template's ``runtime_config``, validated (a bad value is a config error naming
the field), and where its sessions live."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime_adapter import AdapterContext, ConfigError

__all__ = ["Settings", "load_settings", "sessions_root", "tasks_path"]

log = logging.getLogger("runtime_adapter.templates.claude_code")


@dataclass(frozen=True)
class Settings:
    """``runtime_config`` of the template."""

    max_turns: int = 30
    turn_timeout: float = 900.0
    max_concurrent_turns: int = 4
    permission_mode: str | None = None
    system_prompt_file: str = "system-prompt.md"
    sessions_dir: str | None = None
    keep_alive_seconds: float = 600.0  # 0: a CLI per turn
    max_live_sessions: int = 4  # never below max_concurrent_turns
    # the CLI's background jobs and scheduled prompts start turns of its own, with no
    # caller to answer: off unless asked for
    background_tasks: bool = False
    # what one caller can make the workspace hold (DESIGN §12)
    max_message_chars: int = 100_000
    max_queued_turns: int = 32  # waiting beyond the running ones
    # tasks outlive the process; finished ones are kept this long, this many at most
    tasks_db: str | None = None  # default <config>/.a2a/tasks.db
    task_retention_days: float = 30.0
    task_retention_count: int = 10_000


def _refused(ctx: AdapterContext, key: str, kind: str, example: str) -> ConfigError:
    config = ctx.config
    line, column = config.position("runtime_config", key)
    return ConfigError(
        f"runtime_config.{key} in {config.file or 'config.yaml'} must be {kind}",
        hint=f"set runtime_config.{key} to {example}, or remove it",
        file=config.file,
        line=line,
        column=column,
        field=f"runtime_config.{key}",
    )


def _number(
    raw: dict[str, Any], key: str, default: float, ctx: AdapterContext, *, integer: bool
) -> float:
    value = raw.get(key)
    if value is None:
        return default
    try:
        number = int(value) if integer else float(value)
        if isinstance(value, bool) or number <= 0:
            raise ValueError
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise _refused(ctx, key, f"{kind} above 0", f"{kind} such as {default:g}") from None
    return number


def _flag(raw: dict[str, Any], key: str, ctx: AdapterContext) -> bool:
    value = raw.get(key)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise _refused(ctx, key, "true or false", "true or false")


def load_settings(ctx: AdapterContext) -> Settings:
    raw = dict(ctx.config.runtime_config.model_extra or {})
    concurrent = int(_number(raw, "max_concurrent_turns", 4, ctx, integer=True))
    if raw.get("keep_alive_seconds") in (0, "0"):
        keep_alive = 0.0
    else:
        keep_alive = float(_number(raw, "keep_alive_seconds", 600.0, ctx, integer=False))
    live = int(_number(raw, "max_live_sessions", concurrent, ctx, integer=True))
    return Settings(
        max_turns=int(_number(raw, "max_turns", 30, ctx, integer=True)),
        turn_timeout=float(_number(raw, "turn_timeout", 900.0, ctx, integer=False)),
        max_concurrent_turns=concurrent,
        permission_mode=str(raw["permission_mode"]) if raw.get("permission_mode") else None,
        system_prompt_file=str(raw.get("system_prompt_file") or "system-prompt.md"),
        sessions_dir=str(raw["sessions_dir"]) if raw.get("sessions_dir") else None,
        keep_alive_seconds=keep_alive,
        # every running turn has its CLI: fewer live CLIs than turns would thrash
        max_live_sessions=max(live, concurrent),
        background_tasks=_flag(raw, "background_tasks", ctx),
        max_message_chars=int(_number(raw, "max_message_chars", 100_000, ctx, integer=True)),
        max_queued_turns=int(_number(raw, "max_queued_turns", 32, ctx, integer=True)),
        tasks_db=str(raw["tasks_db"]) if raw.get("tasks_db") else None,
        task_retention_days=float(_number(raw, "task_retention_days", 30.0, ctx, integer=False)),
        task_retention_count=int(_number(raw, "task_retention_count", 10_000, ctx, integer=True)),
    )


def sessions_root(ctx: AdapterContext, settings: Settings) -> Path:
    """Where sessions live: ``runtime_config.sessions_dir``, else the config volume, else
    the workspace volume; never only ``$HOME``, which a re-created container loses, and,
    unless nothing else is writable, outside the agent's working directory (its file
    tools must not open another context's conversation without asking)."""
    if settings.sessions_dir:
        given = Path(settings.sessions_dir)
        return given if given.is_absolute() else ctx.settings.config_path / given
    config = ctx.settings.config_path
    if config.is_dir() and os.access(config, os.W_OK):
        return config / ".claude-code"
    workspace = Path(os.environ.get("WORKSPACE_DIR", "/workspace"))
    log.warning(
        "the config volume is not writable: Claude Code sessions go to %s, inside the "
        "agent's working directory; set runtime_config.sessions_dir to a directory outside it",
        workspace / ".claude-code",
    )
    return workspace / ".claude-code"


def tasks_path(ctx: AdapterContext, settings: Settings) -> Path:
    """The task database: ``runtime_config.tasks_db``, else ``<config>/.a2a/tasks.db``,
    with the runtime's own files (it holds every caller's prompts and webhook
    credentials: not in the sessions directory the agent's user owns)."""
    if settings.tasks_db:
        given = Path(settings.tasks_db)
        return given if given.is_absolute() else ctx.settings.config_path / given
    return ctx.settings.config_path / ".a2a" / "tasks.db"
