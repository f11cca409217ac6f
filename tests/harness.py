"""Running ``runtime-adapter run`` as a subprocess against the emulator and a fake LLM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from .conftest import clean_env

WS = "8c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
KEY = "mm-lifecycle-secret-31d4"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


class Process:
    """``python -m runtime_adapter run`` with ``env``; ``stop()`` sends SIGTERM."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "runtime_adapter", "run"],
            env={**clean_env(), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""
        self.stopped_in = 0.0

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2)
        except httpx.TransportError:
            return None

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, _ = self.popen.communicate(timeout=15)
        self.stopped_in = time.monotonic() - started
        self.output = out
        return self.popen.returncode
