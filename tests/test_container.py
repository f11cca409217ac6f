"""How the container ships: entrypoint.sh run directly, the Dockerfile's facts, and the
Kubernetes example. (No Docker engine here: hadolint and shellcheck run in scripts/check.)"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
ENTRYPOINT = ROOT / "entrypoint.sh"
CHILD = 'trap "echo TERM; exit 0" TERM; echo "$$ $(id -u) $HOME"; while :; do sleep 0.05; done'

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the root path needs root")


def nobody() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody")


def start(env: dict[str, str], *prefix: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*prefix, str(ENTRYPOINT), "sh", "-c", CHILD],
        env={"PATH": os.environ["PATH"], **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_line(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    return process.stdout.readline().split()


@as_root
def test_as_root_it_fixes_ownership_strips_crlf_and_execs_as_the_agent(tmp_path: Path) -> None:
    reachable(tmp_path)
    configs = tmp_path / "configs"
    hooks = configs / ".claude" / "hooks"
    hooks.mkdir(parents=True)
    (configs / "config.yaml").write_text("model: x\n")
    (hooks / "pre.sh").write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    env = {
        "AGENT_USER": "nobody",
        "WORKSPACE_CONFIG_PATH": str(configs),
        "WORKSPACE_DIR": str(workspace),
    }
    process = start(env)
    pid, uid, home = first_line(process)
    assert int(pid) == process.pid  # exec all the way: the program is the same process
    assert (int(uid), home) == (nobody().pw_uid, nobody().pw_dir)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    assert (process.returncode, out) == (0, "TERM\n")
    assert (hooks / "pre.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    for path in (configs, configs / "config.yaml", hooks / "pre.sh", workspace):
        assert path.stat().st_uid == nobody().pw_uid
    assert f"gave {configs} to nobody" in err

    # nothing to fix on the next boot: no chown, no rewrite
    before = {p: p.stat().st_ctime_ns for p in (configs / "config.yaml", hooks / "pre.sh")}
    again = start(env)
    first_line(again)
    again.send_signal(signal.SIGTERM)
    _, err = again.communicate(timeout=10)
    assert "gave" not in err
    assert "stripped" not in err
    assert before == {p: p.stat().st_ctime_ns for p in before}


def reachable(path: Path) -> None:
    """Let the agent user traverse pytest's root-only temporary directories."""
    top = Path(tempfile.gettempdir())
    for parent in (path, *path.parents):
        if parent == top:
            break
        parent.chmod(parent.stat().st_mode | 0o711)


@as_root
def test_a_planted_symlink_never_gets_a_root_write(tmp_path: Path) -> None:
    """The agent owns the hooks directory: whatever it plants there, the entrypoint's
    rewrite runs as the agent, so a root-only file stays as it was."""
    reachable(tmp_path)
    victim = tmp_path / "root-only.sh"
    victim.write_bytes(b"root:x:0:0\r\n")
    victim.chmod(0o644)
    configs = tmp_path / "configs"
    hooks = configs / ".claude" / "hooks"
    hooks.mkdir(parents=True)
    (configs / "config.yaml").write_text("model: x\n")
    (hooks / "x.sh").write_bytes(b"echo x\r\n")
    (hooks / "x.sh.crlf-tmp").symlink_to(victim)  # the old temporary name
    (hooks / "link.sh").symlink_to(victim)
    env = {"AGENT_USER": "nobody", "WORKSPACE_CONFIG_PATH": str(configs)}
    process = start(env)
    first_line(process)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)
    assert victim.read_bytes() == b"root:x:0:0\r\n"
    assert victim.stat().st_uid == 0
    assert (hooks / "x.sh").read_bytes() == b"echo x\n"


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs setpriv")
def test_as_non_root_it_execs_directly(tmp_path: Path) -> None:
    user = nobody()
    process = start(
        {"WORKSPACE_CONFIG_PATH": "/nonexistent", "HOME": "/nonexistent"},
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "--",
    )
    pid, uid, _ = first_line(process)
    assert int(pid) == process.pid
    assert int(uid) == user.pw_uid
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    assert (process.returncode, out, err) == (0, "TERM\n", "")


def instructions() -> list[tuple[str, str]]:
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_facts() -> None:
    steps = instructions()
    kinds = [kind for kind, _ in steps]
    # the base is an argument: a stand-in is passed explicitly, never dressed up as this
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    assert any("useradd" in args and "agent" in args for kind, args in steps if kind == "RUN")
    # dependencies are installed before the source is copied, for layer caching
    deps = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a)
    source = next(
        i for i, (k, a) in enumerate(steps) if k == "COPY" and a.startswith("runtime_adapter/ ")
    )
    assert deps < source
    # ... exactly as locked: every file hash-checked, nothing resolved at build time
    assert "--require-hashes" in steps[deps][1]
    assert "-r requirements.lock" in steps[deps][1]
    env = " ".join(args for kind, args in steps if kind == "ENV")
    assert "ADAPTER_MODULE=claude_code_adapter:ClaudeCodeAdapter" in env
    assert ("EXPOSE", "8000") in steps
    healthcheck = next(args for kind, args in steps if kind == "HEALTHCHECK")
    assert "/health" in healthcheck
    # tini as PID 1 reaps orphans; the built image proves it (tests/container)
    assert ("ENTRYPOINT", '["/usr/bin/tini", "--", "/usr/local/bin/entrypoint.sh"]') in steps
    assert kinds[-1] == "CMD"


def test_kubernetes_example_has_what_the_adapter_relies_on() -> None:
    documents = list(
        yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "workspace.yaml").read_text())
    )
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    secrets_dir = env["RUNTIME_SECRETS_DIR"]["value"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    secret_mount = next(m for m in mounts.values() if m["mountPath"] == secrets_dir)
    assert "secret" in volumes[secret_mount["name"]]
    config_mount = next(
        m for m in mounts.values() if m["mountPath"] == env["WORKSPACE_CONFIG_PATH"]["value"]
    )
    assert config_mount["name"] in volumes
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"].startswith("/health")
    assert spec["terminationGracePeriodSeconds"] > 10
    secret = next(d for d in documents if d["kind"] == "Secret")
    assert secret["metadata"]["name"] == volumes[secret_mount["name"]]["secret"]["secretName"]


def test_the_lock_pins_every_dependency_within_the_pyproject_bounds() -> None:
    """requirements.lock (scripts/lock) is current: each runtime and claude-code
    dependency of pyproject.toml is pinned there, at a version its bounds admit, with
    hashes. A bound changed without running scripts/lock fails here."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["claude-code"]]
    text = (ROOT / "requirements.lock").read_text()
    pinned: dict[str, str] = {}
    for line in text.splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split("==")
            pinned[name.strip().lower().replace("_", "-")] = version.split()[0]
    for spec in wanted:
        requirement = Requirement(spec)
        name = requirement.name.lower().replace("_", "-")
        assert name in pinned, f"{name} is not in requirements.lock: run scripts/lock"
        assert requirement.specifier.contains(pinned[name]), (name, pinned[name], spec)
    blocks = text.split("\n\n")
    assert all("--hash=sha256:" in text for text in blocks if "==" in text)
