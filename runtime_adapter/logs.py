"""Logging: JSON lines by default outside a TTY, readable lines on a TTY, and a
redaction filter that knows every secret value in play.

The filter rewrites each record's final message through the process-wide
``Redactor`` (provider keys and the platform token are added to it as soon
as they are known), so no handler ever sees a secret.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from .errors import Redactor

__all__ = ["REDACTOR", "RedactingFilter", "setup_logging"]

REDACTOR = Redactor()
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Formats the message once, redacts it, and drops the raw arguments."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # the formatted traceback is redacted too
            record.exc_text = self.redactor(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redactor(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f"  [{extras}]"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def setup_logging(
    log_format: str | None = None, level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Send ``runtime_adapter`` and uvicorn logs to ``stream`` (stderr), redacted."""
    stream = stream or sys.stderr
    if log_format is None:
        log_format = "console" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    # every other library's records (a2a, anthropic, httpx, mcp ...) reach the root
    # logger: the same handler, so they are JSON and redacted too, never Python's
    # last-resort stderr printer
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    for name, logger_level in (
        ("runtime_adapter", level),
        ("uvicorn", "WARNING"),
        ("uvicorn.error", "WARNING"),
        ("uvicorn.access", "WARNING"),
        ("claude_agent_sdk", "WARNING"),
    ):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logger_level)
        logger.propagate = False
