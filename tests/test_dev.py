"""``runtime-adapter dev`` runs with no keys and shows the workspace online; with
``--refuse-key`` it shows the auth_failed path."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys

import pytest

from .conftest import clean_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def dev(*args: str, until: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``runtime-adapter dev`` until its output has a line with ``until`` (then SIGTERM,
    as a background dev is stopped), or its own 90 s: the test waits on what it checks, never on a
    duration a busy machine could overrun."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime_adapter", "dev", "--duration", "90", *args],
        env={**clean_env(), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if until in line:
            break
    process.send_signal(signal.SIGTERM)
    rest, errors = process.communicate(timeout=30)
    return subprocess.CompletedProcess(
        process.args, process.returncode, "".join(lines) + rest, errors
    )


def test_dev_shows_the_workspace_online() -> None:
    done = dev(until="sample A2A message")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status online" in done.stdout
    final = next(line for line in done.stdout.splitlines() if line.startswith("final: "))
    assert "status online  runtime_state -  minimax/MiniMax-M2.7" in final
    # one sample A2A message through the claude-code template and the fake LLM
    assert "sample A2A message -> completed: Hello from the fake LLM." in done.stdout
    # only real changes are printed, not one block per heartbeat: no status line repeats
    # the one before it (the elapsed time and the beat's age are not news)
    states = [
        line.split("] ", 1)[1].rsplit("  beat ", 1)[0].rsplit("  no beat", 1)[0]
        for line in done.stdout.splitlines()
        if line.startswith("[")
    ]
    assert states
    assert all(before != after for before, after in itertools.pairwise(states))
    assert done.stdout.splitlines()[-1] == "runtime exited with 0"


def test_dev_is_sealed_from_the_shell() -> None:
    done = dev(
        until="sample A2A message",
        MODEL_PROVIDER="zai",
        MINIMAX_API_KEY="sk-a-real-looking-key-0123456789",
        ANTHROPIC_BASE_URL="https://api.anthropic.com",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status online  runtime_state -  minimax/MiniMax-M2.7" in done.stdout
    assert "sk-a-real-looking-key" not in done.stdout + done.stderr


def test_dev_passes_what_it_is_told_to() -> None:
    done = dev("--env", "MODEL_PROVIDER=nonesuch", until="config_error")
    assert "passed: MODEL_PROVIDER" in done.stdout
    assert "config_error" in done.stdout  # the unknown provider reached the runtime


def test_dev_refuse_key_shows_auth_failed() -> None:
    done = dev("--refuse-key", until="  hint ")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status degraded" in done.stdout
    assert "runtime_state wedged" in done.stdout
    assert "hint the minimax credential was rejected; check MINIMAX_API_KEY" in done.stdout
    assert "sample_error auth_failed: 401 from 127.0.0.1 (minimax, bearer MINIMAX_API_KEY" in (
        done.stdout
    )
