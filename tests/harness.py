"""Running ``runtime-adapter run`` as a subprocess against the emulator and a fake LLM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from runtime_adapter.testing import wait_until

from .conftest import clean_env

WS = "8c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
KEY = "mm-lifecycle-secret-31d4"


def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    try:
        return wait_until(condition, timeout, poll=0.05)
    except TimeoutError:
        raise AssertionError("condition not met in time") from None


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
        self.stopped = False

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2)
        except httpx.TransportError:
            return None

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop_and_output(self) -> str:
        self.stop()
        return self.output

    def stop(self) -> int:
        if self.stopped:
            return self.popen.returncode
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, _ = self.popen.communicate(timeout=15)
        self.stopped_in = time.monotonic() - started
        self.output = out
        self.stopped = True
        return self.popen.returncode
