"""``runtime-adapter dev``: a local sandbox for template authors, no keys needed.

It serves the platform emulator and a fake Anthropic-compatible LLM on
loopback, copies the example config volume to a temporary directory, runs
``runtime-adapter run`` against them in a child process, and prints the
workspace's status as the platform sees it whenever it changes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from .testing import FakeLLM, PlatformEmulator, serve_in_thread

__all__ = ["run_dev"]

DEV_KEY = "dev-fake-minimax-key"  # not a secret: the fake LLM accepts anything
EXAMPLE_CONFIG = """\
name: Example agent
description: The runtime-adapter dev sandbox's example workspace.
runtime: claude-code
model: MiniMax-M2.7
skills: [echo]
"""


def example_volume() -> Path | None:
    """The claude-code example volume of a source checkout, if there is one."""
    candidate = Path(__file__).resolve().parent.parent / "templates" / "claude-code"
    return candidate if (candidate / "config.yaml").is_file() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status_line(view: dict[str, object] | None, started: float) -> str:
    elapsed = time.monotonic() - started
    if view is None:
        return f"[{elapsed:5.1f}s] workspace not registered yet"
    error = view.get("last_sample_error") or "-"
    beat = view["last_heartbeat_at"] or "-"
    return (
        f"[{elapsed:5.1f}s] status {view['status']}  url {view['url']}  "
        f"runtime_state {view['runtime_state'] or '-'}  last beat {beat}"
        f"\n         sample_error {error}"
    )


def run_dev(
    *,
    volume: Path | None,
    adapter: str,
    duration: float | None,
    refuse_key: bool,
    out: TextIO = sys.stdout,
) -> int:
    """Run the sandbox until ``duration`` seconds pass or Ctrl-C; 0 on a clean stop."""
    workspace_id = f"dev-{secrets.token_hex(6)}"
    emulator = PlatformEmulator(deploy_mode="local")
    llm = FakeLLM(refuse_key=refuse_key)
    with ExitStack() as stack:
        platform_url = stack.enter_context(serve_in_thread(emulator.app))
        llm_url = stack.enter_context(serve_in_thread(llm.app))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ra-dev-")))
        configs = workdir / "configs"
        source = volume or example_volume()
        if source is not None:
            shutil.copytree(source, configs)
        else:
            configs.mkdir()
            (configs / "config.yaml").write_text(EXAMPLE_CONFIG)
        port = _free_port()
        env = {
            **os.environ,
            "WORKSPACE_ID": workspace_id,
            "PLATFORM_URL": platform_url,
            "WORKSPACE_CONFIG_PATH": str(configs),
            "ADAPTER_MODULE": adapter,
            "PORT": str(port),
            "MINIMAX_API_KEY": DEV_KEY,
            "MINIMAX_BASE_URL": llm_url,
            "LLM_PROXY_URL": llm_url,
            "HEARTBEAT_INTERVAL_SECONDS": "5",
            "LOG_FORMAT": "json",
        }
        log_path = workdir / "runtime.log"
        out.write(
            f"platform emulator {platform_url}  fake LLM {llm_url}"
            f"{' (refusing the key)' if refuse_key else ''}\n"
            f"volume {configs} (from {source or 'the built-in example'})\n"
            f"workspace {workspace_id} on http://127.0.0.1:{port}  logs {log_path}\n"
        )
        out.flush()
        with log_path.open("w") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "runtime_adapter", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            started = time.monotonic()
            last = ""
            try:
                while child.poll() is None:
                    if duration is not None and time.monotonic() - started >= duration:
                        break
                    line = _status_line(emulator.view(workspace_id), started)
                    state = line.split("]", 1)[1]
                    if state != last:
                        out.write(line + "\n")
                        out.flush()
                        last = state
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            finally:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
                try:
                    code = child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    code = child.wait()
        out.write(_status_line(emulator.view(workspace_id), started) + "\n")
        out.write(f"runtime exited with {code}\n")
        if code != 0:
            out.write(log_path.read_text()[-3000:])
        out.flush()
        return 0 if code == 0 else 1
