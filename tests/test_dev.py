"""``runtime-adapter dev`` runs with no keys and shows the workspace online; with
``--refuse-key`` it shows the auth_failed path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import clean_env

pytestmark = pytest.mark.slow


def dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime_adapter", "dev", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dev_shows_the_workspace_online() -> None:
    done = dev("--duration", "10")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status online" in done.stdout
    last = done.stdout.splitlines()[-3]
    assert "status online" in last
    assert "runtime_state -" in last
    assert done.stdout.splitlines()[-1] == "runtime exited with 0"


def test_dev_refuse_key_shows_auth_failed() -> None:
    done = dev("--duration", "6", "--refuse-key")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status degraded" in done.stdout
    assert "runtime_state wedged" in done.stdout
    assert "sample_error auth_failed: 401 from 127.0.0.1 (minimax, bearer MINIMAX_API_KEY" in (
        done.stdout
    )
