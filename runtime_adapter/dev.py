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
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TextIO

import httpx

from .adapter import ENTRY_POINT_GROUP
from .devpage import DevPage, Sandbox
from .errors import ConfigError
from .inbound import bearer_tokens
from .testing import FakeLLM, PlatformEmulator, free_port, message_send, serve_in_thread
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


# what the sandbox takes from the shell: enough to run Python, nothing that changes
# what the demo does (a MODEL_PROVIDER or a real key left in the shell must not)
_PASSED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "TMPDIR", "PYTHONPATH")


@dataclass(frozen=True)
class _Shown:
    """What the display shows; a change of any of it is news."""

    status: str
    runtime_state: str
    provider: str
    model: str
    active: int
    error: str
    hint: str

    def line(self, beat_age: float | None) -> str:
        beat = f"beat {beat_age:.0f} s ago" if beat_age is not None else "no beat yet"
        text = (
            f"status {self.status}  runtime_state {self.runtime_state or '-'}  "
            f"{self.provider}/{self.model}  active tasks {self.active}  {beat}"
        )
        if self.error:
            text += f"\n  sample_error {self.error}"
            if self.hint:
                text += f"\n  hint {self.hint}"
        return text


def _shown(view: dict[str, Any] | None, health: dict[str, Any] | None) -> _Shown | None:
    if view is None:
        return None
    detail = view.get("last_sample_error_detail") or {}
    return _Shown(
        status=str(view.get("status")),
        runtime_state=str(view.get("runtime_state") or ""),
        provider=str((health or {}).get("provider") or "-"),
        model=str((health or {}).get("model") or "-"),
        active=int(view.get("active_tasks") or 0),
        error=str(view.get("last_sample_error") or ""),
        hint=str(detail.get("hint") or ""),
    )


def _beat_age(view: dict[str, Any] | None) -> float | None:
    stamp = (view or {}).get("last_heartbeat_at")
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        answer = httpx.get(url, timeout=2)
        data = answer.json()
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sample_message(url: str) -> str:
    """One A2A message (0.3 message/send, as the platform's proxy sends it); the reply."""
    body = message_send("Hello from runtime-adapter dev", message_id=f"dev-{secrets.token_hex(4)}")
    try:
        answer = httpx.post(url + "/", json=body, timeout=120)
    except httpx.HTTPError as error:
        return f"no answer ({type(error).__name__})"
    if answer.status_code == 404:
        return "this adapter serves no A2A route"
    try:
        result = answer.json().get("result") or {}
    except ValueError:
        return f"HTTP {answer.status_code}"
    texts = [
        part.get("text", "")
        for artifact in result.get("artifacts") or []
        for part in artifact.get("parts") or []
    ]
    state = (result.get("status") or {}).get("state", "?")
    if not texts:
        texts = [
            part.get("text", "")
            for part in ((result.get("status") or {}).get("message") or {}).get("parts") or []
        ]
    said = " ".join(texts)[:300]
    return said if said.startswith(f"{state}:") else f"{state}: {said}"


def _poll_sample(emulator: PlatformEmulator, workspace_id: str, out: TextIO) -> str:
    """The sample message queued at the platform for a poll-mode workspace; the reply
    as it arrives at the platform (``/notify``) and how long it took."""
    before = len((emulator.view(workspace_id) or {}).get("notifications") or [])
    emulator.send_message(workspace_id, "Hello from runtime-adapter dev")
    queued = time.monotonic()
    out.write("queued at the platform (poll) -> ")
    out.flush()
    while time.monotonic() - queued < 120:
        notes = (emulator.view(workspace_id) or {}).get("notifications") or []
        if len(notes) > before:
            took = time.monotonic() - queued
            return f"reply at the platform after {took:.1f} s: {str(notes[-1]['message'])[:300]}"
        time.sleep(0.1)
    return "no reply within 120 s"


def _stop_on_sigterm() -> None:
    """SIGTERM is Ctrl-C for the sandbox (a background ``dev``, where Ctrl-C cannot reach
    and a shell may even ignore SIGINT): the loop ends and the runtime is stopped, not
    left behind."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def run_dev(
    *,
    volume: Path | None,
    adapter: str,
    duration: float | None,
    refuse_key: bool,
    poll: bool = False,
    extra_env: dict[str, str] | None = None,
    keep_logs: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Run the sandbox until ``duration`` seconds pass or Ctrl-C; 0 on a clean stop."""
    workspace_id = f"dev-{secrets.token_hex(6)}"
    emulator = PlatformEmulator(deploy_mode="local")
    llm = FakeLLM(refuse_key=refuse_key)
    tty = out.isatty()
    with ExitStack() as stack:
        platform_url = stack.enter_context(serve_in_thread(emulator.app))
        llm_url = stack.enter_context(serve_in_thread(llm.app))
        workdir = Path(tempfile.mkdtemp(prefix="ra-dev-"))
        if not keep_logs:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        configs = workdir / "configs"
        source = volume or example_volume()
        if source is not None:
            shutil.copytree(source, configs, ignore=_not_volume)
        else:
            configs.mkdir()
            (configs / "config.yaml").write_text(EXAMPLE_CONFIG)
        port = free_port()
        # the provider key as a secret file (RUNTIME_SECRETS_DIR), so the page can rotate
        # it: a new file is what makes the runtime re-plan and probe at once
        secrets_dir = workdir / "secrets"
        secrets_dir.mkdir(mode=0o700)
        (secrets_dir / "MINIMAX_API_KEY").write_text(DEV_KEY + "\n")
        runtime = _runtime_of(configs)
        why = f"the entry point of runtime {runtime!r}" if runtime else ""
        if adapter == "auto":
            if runtime and _installed(runtime):
                adapter = ""
            else:
                adapter = "runtime_adapter.testing.echo"
                why = (
                    f"warning: runtime {runtime!r} of the volume is not installed (no entry "
                    "point in runtime_adapter.adapters): install it (pip install -e DIR) or "
                    "pass --adapter pkg.module"
                    if runtime
                    else "the volume names no runtime"
                )
        else:
            why = "--adapter"
        # sealed: only what Python needs from this shell, the sandbox's own settings,
        # and what the user passed explicitly with --env
        env = {name: os.environ[name] for name in _PASSED if name in os.environ}
        if volume is not None:
            # a template directory holds its package: importable without installing it
            paths = [str(volume.resolve()), env.get("PYTHONPATH", "")]
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env.update(
            {
                "HOME": str(workdir / "home"),
                "WORKSPACE_ID": workspace_id,
                "PLATFORM_URL": platform_url,
                "WORKSPACE_CONFIG_PATH": str(configs),
                "WORKSPACE_DIR": str(workdir / "workspace"),
                "PORT": str(port),
                "RUNTIME_SECRETS_DIR": str(secrets_dir),
                "MINIMAX_BASE_URL": llm_url,
                "LLM_PROXY_URL": llm_url,
                "HEARTBEAT_INTERVAL_SECONDS": "5",
                "LOG_FORMAT": "json",
                **({"DELIVERY_MODE": "poll", "POLL_INTERVAL_SECONDS": "1"} if poll else {}),
                **(extra_env or {}),
            }
        )
        if adapter:
            env["ADAPTER_MODULE"] = adapter
        (workdir / "home").mkdir()
        (workdir / "workspace").mkdir()
        log_path = workdir / "runtime.log"
        log_path.touch()
        agent_url = f"http://127.0.0.1:{port}"
        bearer = bearer_tokens(env.get("A2A_BEARER_TOKENS"))
        page = DevPage(
            Sandbox(
                emulator,
                llm,
                workspace_id,
                runtime_url=agent_url,
                log_path=log_path,
                secrets_dir=secrets_dir,
                bearer=bearer[0] if bearer else None,
                token_path=configs / ".auth_token",
            )
        )
        page_url = stack.enter_context(serve_in_thread(page.app))
        passed = f"; passed: {', '.join(sorted(extra_env))}" if extra_env else ""
        kept = "kept" if keep_logs else "removed on exit; --keep-logs keeps them"
        out.write(
            f"platform emulator {platform_url}  fake LLM {llm_url}"
            f"{' (refusing the key)' if refuse_key else ''}\n"
            f"volume {configs} (from {source or 'the built-in example'})\n"
            f"workspace {workspace_id} on http://127.0.0.1:{port}"
            f"{' (poll delivery: it pulls its messages)' if poll else ''}\n"
            f"adapter {adapter or f'entry point {runtime!r}'} ({why})\n"
            f"environment sealed{passed}\n"
            f"logs {log_path} ({kept})\n"
            f"page: {page_url}/\n"
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
            _stop_on_sigterm()  # a `kill` stops it like Ctrl-C: the runtime is stopped too
            last: _Shown | None = None
            health: dict[str, Any] | None = None
            said_hello = False
            try:
                while child.poll() is None:
                    if duration is not None and time.monotonic() - started >= duration:
                        break
                    view = emulator.view(workspace_id)
                    health = (_get_json(agent_url + "/health") if view else None) or health
                    shown = _shown(view, health)
                    elapsed = time.monotonic() - started
                    if shown is None:
                        pass
                    elif tty:
                        # one status that redraws in place (plain ANSI: one line needs
                        # no terminal library); a multi-line error prints once
                        if shown != last and last is not None and last.error != shown.error:
                            out.write("\n")
                        first, *rest = shown.line(_beat_age(view)).split("\n")
                        out.write(f"\r\x1b[2K[{elapsed:5.1f}s] {first}")
                        if rest and shown != last:
                            out.write("\n" + "\n".join(rest) + "\n")
                    elif shown != last:
                        out.write(f"[{elapsed:5.1f}s] {shown.line(_beat_age(view))}\n")
                    if shown is not None and shown.status == "online" and not said_hello:
                        said_hello = True
                        out.write(("\n" if tty else "") + "sample A2A message -> ")
                        out.flush()
                        if poll:
                            out.write(_poll_sample(emulator, workspace_id, out) + "\n")
                        else:
                            out.write(_sample_message(agent_url) + "\n")
                    out.flush()
                    last = shown if shown is not None else last
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
        final = _shown(emulator.view(workspace_id), health)
        if tty:
            out.write("\n")
        if final is not None:
            out.write(f"final: {final.line(_beat_age(emulator.view(workspace_id)))}\n")
        out.write(f"runtime exited with {code}\n")
        if code != 0:
            out.write(log_path.read_text()[-3000:])
        out.flush()
        return 0 if code == 0 else 1
