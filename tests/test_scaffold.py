"""``runtime-adapter new``: the generated template passes its own tests and runs under
``dev`` as generated, from a clean directory, in subprocesses as a user would."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import clean_env

pytestmark = pytest.mark.slow


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_a_new_template_passes_its_tests_and_runs_under_dev(tmp_path: Path) -> None:
    made = run("-m", "runtime_adapter", "new", "acme-agent", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    template = tmp_path / "acme-agent"
    assert (template / "acme_agent" / "__init__.py").is_file()
    # the commands of this interpreter: a bare `python` may be the system's
    here = shlex.quote(sys.executable)
    assert f"next: {here} -m runtime_adapter dev --volume acme-agent --adapter acme_agent" in (
        made.stdout
    )
    assert f"PYTHONPATH=. {here} -m pytest" in made.stdout

    tested = run("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=template, PYTHONPATH=".")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout

    shown = run(
        "-m",
        "runtime_adapter",
        "dev",
        "--volume",
        "acme-agent",
        "--adapter",
        "acme_agent",
        "--duration",
        "8",
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "status online  runtime_state -  minimax/MiniMax-M2.7" in shown.stdout


@pytest.mark.parametrize(
    ("name", "says"), [("Bad Name", "cannot name a runtime"), ("taken", "not an empty directory")]
)
def test_new_refuses_a_bad_name_or_a_used_directory(tmp_path: Path, name: str, says: str) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    done = run("-m", "runtime_adapter", "new", name, cwd=tmp_path)
    assert done.returncode == 78
    assert says in done.stderr
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
