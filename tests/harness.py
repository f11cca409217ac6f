"""Running ``runtime-adapter run`` as a subprocess against the emulator and a fake LLM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
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

    def shutdown_seconds(self) -> float:
        """SIGTERM -> "stopped" as the runtime's own JSON log stamps them: the shutdown's
        own time, which a busy machine does not stretch by the interpreter's exit (or a
        coverage write) around it. The wall-clock time when the log has no such lines."""
        stamps: dict[str, datetime] = {}
        for line in self.output.splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            said = str(entry.get("msg", ""))
            for key, start in (("signal", "received SIG"), ("stopped", "stopped")):
                if said.startswith(start) and "ts" in entry and key not in stamps:
                    stamps[key] = datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00"))
        if len(stamps) < 2:
            return self.stopped_in
        return (stamps["stopped"] - stamps["signal"]).total_seconds()

    def stop(self) -> int:
        if self.stopped:
            return self.popen.returncode
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            out, _ = self.popen.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.output, _ = self.popen.communicate()
            self.stopped = True
            raise AssertionError(
                "the runtime did not exit within 15 s of SIGTERM; its last lines:\n"
                + "\n".join(self.output.splitlines()[-25:])
            ) from None
        self.stopped_in = time.monotonic() - started
        self.output = out
        self.stopped = True
        return self.popen.returncode

    def stopped_within(self, seconds: float) -> bool:
        """``shutdown_seconds() < seconds``, or an assertion naming the shutdown's log."""
        took = self.shutdown_seconds()
        if took >= seconds:
            lines = self.output.splitlines()
            start = next((i for i, line in enumerate(lines) if "received SIG" in line), 0)
            shown = "\n".join(lines[start : start + 40])
            raise AssertionError(f"the shutdown took {took:.2f} s (>= {seconds}):\n{shown}")
        return True
