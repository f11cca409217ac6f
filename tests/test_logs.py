"""Every log line is redacted before any handler formats it: known secrets and
key-shaped strings become fingerprints, in the message, the extras and tracebacks."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from runtime_adapter import fingerprint
from runtime_adapter.logs import REDACTOR, setup_logging

SECRET = "mm-log-secret-4e1f9a"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    for name in (
        "runtime_adapter",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "claude_agent_sdk",
    ):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


@pytest.fixture
def stream() -> io.StringIO:
    buffer = io.StringIO()
    setup_logging("json", "DEBUG", stream=buffer)
    REDACTOR.add(SECRET)
    return buffer


def test_message_args_extras_and_traceback_are_redacted(stream: io.StringIO) -> None:
    log = logging.getLogger("runtime_adapter.test")
    log.info("key is %s", SECRET, extra={"detail": f"Bearer {SECRET}"})
    try:
        raise ValueError(f"upstream echoed {SECRET}")
    except ValueError:
        log.exception("call failed")
    log.warning("shape only: sk-ant-api03-abcdefghijklmnopqrstuv")
    text = stream.getvalue()
    assert SECRET not in text
    assert "sk-ant-api03-abcdefghijklmnopqrstuv" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["msg"] == f"key is {fingerprint(SECRET)}"
    assert lines[0]["detail"] == f"Bearer {fingerprint(SECRET)}"
    assert (lines[0]["level"], lines[0]["logger"]) == ("info", "runtime_adapter.test")
    assert "ValueError: upstream echoed " + fingerprint(SECRET) in lines[1]["exc"]


def test_console_format_is_one_readable_line() -> None:
    buffer = io.StringIO()
    setup_logging("console", "INFO", stream=buffer)
    try:
        logging.getLogger("runtime_adapter.test").info(
            "boot stage %s done", "volume", extra={"duration_ms": 2.5}
        )
        line = buffer.getvalue().rstrip("\n")
        assert line.endswith(
            "INFO    runtime_adapter.test: boot stage volume done  [duration_ms=2.5]"
        )
    finally:
        setup_logging("json", "INFO", stream=io.StringIO())


def test_default_format_is_json_when_not_a_tty() -> None:
    buffer = io.StringIO()
    setup_logging(None, "INFO", stream=buffer)
    logging.getLogger("runtime_adapter.test").info("hello")
    assert json.loads(buffer.getvalue())["msg"] == "hello"
