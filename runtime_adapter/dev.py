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
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from importlib.metadata import entry_points
from pathlib import Path
from typing import TextIO

from .adapter import ENTRY_POINT_GROUP
from .errors import ConfigError
from .testing import FakeLLM, PlatformEmulator, free_port, serve_in_thread
from .volume import load_config

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


def _not_volume(directory: str, names: list[str]) -> set[str]:
    """A template directory holds more than its volume: skip code and build files."""
    skipped = {"pyproject.toml", "README.md", "__pycache__"}
    return {
        name
        for name in names
        if name in skipped
        or name.endswith((".py", ".egg-info"))
        or (Path(directory, name) / "__init__.py").exists()
    }


def _runtime_of(configs: Path) -> str | None:
    try:
        return load_config(configs).runtime
    except ConfigError:
        return None


def _installed(runtime: str) -> bool:
    return any(True for _ in entry_points(group=ENTRY_POINT_GROUP, name=runtime))


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
            shutil.copytree(source, configs, ignore=_not_volume)
        else:
            configs.mkdir()
            (configs / "config.yaml").write_text(EXAMPLE_CONFIG)
        port = free_port()
        runtime = _runtime_of(configs)
        if adapter == "auto":
            adapter = "" if runtime and _installed(runtime) else "runtime_adapter.testing.echo"
        env = {
            **os.environ,
            "HOME": str(workdir / "home"),
            "WORKSPACE_ID": workspace_id,
            "PLATFORM_URL": platform_url,
            "WORKSPACE_CONFIG_PATH": str(configs),
            "PORT": str(port),
            "MINIMAX_API_KEY": DEV_KEY,
            "MINIMAX_BASE_URL": llm_url,
            "LLM_PROXY_URL": llm_url,
            "HEARTBEAT_INTERVAL_SECONDS": "5",
            "LOG_FORMAT": "json",
        }
        if adapter:
            env["ADAPTER_MODULE"] = adapter
        (workdir / "home").mkdir()
        log_path = workdir / "runtime.log"
        out.write(
            f"platform emulator {platform_url}  fake LLM {llm_url}"
            f"{' (refusing the key)' if refuse_key else ''}\n"
            f"volume {configs} (from {source or 'the built-in example'})\n"
            f"workspace {workspace_id} on http://127.0.0.1:{port}  adapter "
            f"{adapter or f'entry point {runtime!r}'}\n"
            f"logs {log_path} (removed on exit)\n"
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
