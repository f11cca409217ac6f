"""The built image, run as a workspace runs it: podman, ``--network host``, the platform
emulator and the fake LLM on this host's loopback.

``scripts/container-test`` builds the image and runs this module with
``RA_IMAGE`` set; without an engine or an image every test is skipped, saying why.
The invariant: what the package promises outside a container holds inside it (online
and authenticated, unprivileged, healthy or unhealthy as /health says, a clean stop
with a last heartbeat, zombies reaped, a read-only root, the restart path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime_adapter import fingerprint
from runtime_adapter.testing import (
    FakeLLM,
    PlatformEmulator,
    ToolUse,
    free_port,
    last_user_text,
    message_send,
    serve_in_thread,
)

from ..harness import wait_for

IMAGE = os.environ.get("RA_IMAGE", "")
PODMAN = shutil.which("podman")
pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(PODMAN is None, reason="no container engine (podman) on this machine"),
    pytest.mark.skipif(not IMAGE, reason="RA_IMAGE is not set: run scripts/container-test"),
]

WS = "5e0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
KEY = "mm-container-secret-0a7c"


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert PODMAN is not None
    return subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=check
    )


@dataclass
class Host:
    emulator: PlatformEmulator
    platform_url: str
    llm: FakeLLM
    llm_url: str
    root: Path
    containers: list[str] = field(default_factory=list)

    def volume(self, config: str = "name: in a container\nmodel: MiniMax-M2.7\n") -> Path:
        configs = self.root / "configs"
        configs.mkdir(exist_ok=True)
        (configs / "config.yaml").write_text(config)
        (self.root / "workspace").mkdir(exist_ok=True)
        return configs

    def run(self, *extra: str, key: str | None = KEY, **env: str) -> tuple[str, int]:
        """Start the image detached; (container name, port)."""
        name = f"ra-test-{uuid.uuid4().hex[:8]}"
        port = free_port()
        settings = {
            "WORKSPACE_ID": WS,
            "PLATFORM_URL": self.platform_url,
            "PORT": str(port),
            "MINIMAX_BASE_URL": self.llm_url + "/anthropic",
            "HEARTBEAT_INTERVAL_SECONDS": "1",
            "CONFIG_GRACE_SECONDS": "2",
            **({"MINIMAX_API_KEY": key} if key else {}),
            **env,
        }
        args = ["run", "-d", "--name", name, "--network", "host"]
        for variable, value in settings.items():
            args += ["-e", f"{variable}={value}"]
        args += [
            "-v",
            f"{self.root / 'configs'}:/configs",
            "-v",
            f"{self.root / 'workspace'}:/workspace",
        ]
        podman(*args, *extra, IMAGE, timeout=120)
        self.containers.append(name)
        return name, port

    def view(self) -> dict[str, Any]:
        return self.emulator.view(WS) or {}


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    tmp_path.chmod(0o755)
    emulator, llm = PlatformEmulator(), FakeLLM(reply="pong from the fake LLM")
    with serve_in_thread(emulator.app) as platform_url, serve_in_thread(llm.app) as llm_url:
        world = Host(emulator, platform_url, llm, llm_url, tmp_path)
        try:
            yield world
        finally:
            for name in world.containers:
                logs = (
                    podman("logs", name, check=False).stdout
                    + podman("logs", name, check=False).stderr
                )
                podman("rm", "-f", "-t", "0", name, check=False)
                assert KEY not in logs


def online(world: Host) -> bool:
    return world.view().get("status") == "online"


def test_registered_online_healthy_unprivileged_and_a_clean_stop(host: Host) -> None:
    host.volume()
    name, port = host.run()
    wait_for(lambda: online(host), timeout=60)
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    card = httpx.get(f"http://127.0.0.1:{port}/.well-known/agent-card.json", timeout=5).json()
    assert card["url"] == f"http://127.0.0.1:{port}"
    beats = host.emulator.calls_to("/registry/heartbeat")
    assert beats
    assert all(
        call.authorization and call.authorization.startswith("Bearer sha256:") for call in beats
    )
    # the runtime runs as the image's unprivileged runtime user, under tini as PID 1
    top = podman("top", name, "user", "args").stdout
    runtime = [line for line in top.splitlines() if "bin/runtime-adapter run" in line]
    assert runtime
    assert runtime[0].split()[0] == "runtime", top
    pid1 = podman("exec", name, "cat", "/proc/1/cmdline").stdout.replace("\0", " ")
    assert pid1.startswith("/usr/bin/tini"), pid1
    assert podman("healthcheck", "run", name, check=False).returncode == 0
    before = len(host.emulator.calls_to("/registry/heartbeat"))
    started = time.monotonic()
    podman("stop", "-t", "10", name, timeout=30)
    stopped_in = time.monotonic() - started
    state = json.loads(podman("inspect", name).stdout)[0]["State"]
    assert state["ExitCode"] == 0
    assert stopped_in < 10
    assert len(host.emulator.calls_to("/registry/heartbeat")) > before  # a last heartbeat


def test_a_failed_boot_is_unhealthy_and_reported(host: Host) -> None:
    host.volume()
    name, _ = host.run(key=None)
    wait_for(lambda: host.view().get("runtime_state") == "wedged", timeout=60)
    assert podman("healthcheck", "run", name, check=False).returncode != 0
    assert host.view()["last_sample_error_detail"]["kind"] == "config_error"


def test_orphans_of_the_agents_tools_are_reaped(host: Host) -> None:
    host.volume()
    name, _ = host.run()
    wait_for(lambda: online(host), timeout=60)
    # an orphan: its parent exits at once, it is re-parented to PID 1, then it exits
    podman("exec", "--user", "agent", name, "sh", "-c", "sh -c 'sleep 0.5 &'")
    time.sleep(2)
    states = podman(
        "exec", name, "sh", "-c", "cat /proc/[0-9]*/status 2>/dev/null | grep '^State:'"
    ).stdout
    assert "zombie" not in states, states


def test_every_module_the_runtime_imports_is_precompiled(host: Host) -> None:
    """PYTHONDONTWRITEBYTECODE and a read-only root mean nothing is cached at run time:
    without bytecode in the image every start compiles every module it imports."""
    script = (
        "import importlib.util as u, sys, runtime_adapter.lifecycle, anthropic,"
        " claude_code_adapter\n"
        "files = [m.__file__ for m in list(sys.modules.values())"
        " if getattr(m, '__file__', None) and m.__file__.endswith('.py')]\n"
        "missing = [f for f in files if not __import__('os').path.exists(u.cache_from_source(f))]"
        "\nprint(len(files), missing[:5])\n"
    )
    out = podman("run", "--rm", "--entrypoint", "python", IMAGE, "-c", script).stdout
    count, _, missing = out.strip().partition(" ")
    assert int(count) > 300
    assert missing == "[]", out


def test_read_only_root_with_a_tmpfs_for_tmp(host: Host) -> None:
    host.volume()
    name, port = host.run("--read-only", "--tmpfs", "/tmp")  # noqa: S108 - inside the container
    wait_for(lambda: online(host), timeout=60)
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    assert health.status_code == 200
    assert podman("exec", name, "touch", "/opt/x", check=False).returncode != 0


def test_restart_with_a_rotated_token_and_a_stale_projection_is_online_right(
    host: Host,
) -> None:
    configs = host.volume()
    name, _ = host.run()
    wait_for(lambda: online(host), timeout=60)
    podman("stop", "-t", "10", name, timeout=30)
    # the provisioner rotates the token and restarts the container with an environment
    # still carrying another provider's projection (the seed-000 incident)
    host.emulator.provision(WS, token_path=configs / ".auth_token")
    (configs / ".auth_token").chmod(0o644)
    name, _ = host.run(
        ANTHROPIC_BASE_URL="https://api.moonshot.ai/anthropic",
        ANTHROPIC_AUTH_TOKEN="stale-moonshot-token",
        ANTHROPIC_MODEL="kimi-k2.6",
    )
    token = (configs / ".auth_token").read_text().strip()
    wait_for(
        lambda: (
            online(host)
            and host.emulator.calls_to("/registry/heartbeat")[-1].authorization
            == f"Bearer {fingerprint(token)}"
        ),
        timeout=60,
    )
    plan = json.loads(podman("exec", name, "runtime-adapter", "env", "--format", "json").stdout)
    assert (plan["provider"], plan["model"]) == ("minimax", "MiniMax-M2.7")
    assert plan["set"]["ANTHROPIC_AUTH_TOKEN"] == fingerprint(KEY)
    assert plan["set"]["ANTHROPIC_MODEL"] == "MiniMax-M2.7"


def test_one_a2a_message_reaches_the_fake_llm_with_the_minimax_key(host: Host) -> None:
    host.volume()
    _, port = host.run()
    wait_for(lambda: online(host), timeout=60)
    answer = httpx.post(
        f"http://127.0.0.1:{port}/",
        json=message_send("say hi"),
        timeout=120,
    ).json()["result"]
    assert answer["status"]["state"] == "completed"
    assert answer["artifacts"][0]["parts"][0]["text"] == "pong from the fake LLM"
    turns = [r for r in host.llm.requests if r.stream]
    assert turns
    assert {(r.model, r.authorization) for r in turns} == {
        ("MiniMax-M2.7", f"Bearer {fingerprint(KEY)}")
    }


def test_the_kubernetes_example_under_podman_kube_play(host: Host, tmp_path: Path) -> None:
    """deploy/kubernetes/workspace.yaml as far as podman 4.3 goes. What podman does not
    do, the test's copy works around, each noted: hostNetwork (the emulator is on this
    host's loopback) without port mappings, which podman refuses with it; no POD_IP
    (podman refuses fieldRef status.podIP); the secrets directory as a hostPath, since
    podman mounts a Secret volume as an empty directory."""
    import yaml

    manifest = Path(__file__).parents[2] / "deploy" / "kubernetes" / "workspace.yaml"
    documents = list(yaml.safe_load_all(manifest.read_text()))
    secrets = tmp_path / "llm-secrets"
    secrets.mkdir()
    (secrets / "MINIMAX_API_KEY").write_text(KEY + "\n")
    port = free_port()
    for document in documents:
        if document["kind"] != "Deployment":
            continue
        document["metadata"]["name"] = "ws-ratest"
        spec = document["spec"]["template"]["spec"]
        spec["hostNetwork"] = True
        container = spec["containers"][0]
        container.pop("ports", None)
        for probe in ("readinessProbe", "livenessProbe"):
            container[probe]["httpGet"]["port"] = port
        container["image"] = IMAGE
        container["env"] = [e for e in container["env"] if e["name"] != "POD_IP"]
        env = {e["name"]: e for e in container["env"]}
        env["PLATFORM_URL"]["value"] = host.platform_url
        env["MOLECULE_DEPLOY_MODE"]["value"] = "self-hosted"
        env["PORT"]["value"] = str(port)
        env["WORKSPACE_ID"]["value"] = WS
        container["env"] += [
            {"name": "MINIMAX_BASE_URL", "value": host.llm_url},
            {"name": "HEARTBEAT_INTERVAL_SECONDS", "value": "1"},
        ]
        for volume in spec["volumes"]:
            if volume["name"] == "llm-secrets":
                volume.pop("secret")
                volume["hostPath"] = {"path": str(secrets), "type": "Directory"}
    played = tmp_path / "workspace.yaml"
    played.write_text(yaml.safe_dump_all(documents))
    podman("kube", "play", "--replace", str(played), timeout=180)
    try:
        wait_for(lambda: host.view().get("last_heartbeat_at"), timeout=60)
        name = "ws-ratest-pod-0-agent"
        plan = json.loads(podman("exec", name, "runtime-adapter", "env", "--format", "json").stdout)
        credential = next(v for v in plan["variables"] if v["name"] == "ANTHROPIC_AUTH_TOKEN")
        assert credential["value"] == fingerprint(KEY)
        assert "/run/secrets/llm" in credential["source"]  # read from the secrets directory
        card = host.view()["agent_card"]
        assert card["name"] == "Example agent"  # from the ConfigMap's config.yaml
    finally:
        printed = podman("kube", "down", str(played), timeout=120, check=False)
        podman("secret", "rm", "ws-example-llm", check=False)
        assert KEY not in printed.stdout + printed.stderr


DUMP = (
    "{ id; env; for f in /proc/[0-9]*/environ; do echo \"== $f\"; tr '\\0' '\\n' < $f; done; "
    'find /configs /run/secrets -type f -exec sh -c \'echo "== $1"; cat "$1"\' sh {} \\; ; '
    "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; } > /workspace/dump.txt 2>&1; echo DUMPED"
)


def test_an_injected_dump_as_the_agent_finds_no_credential(host: Host, tmp_path: Path) -> None:
    """DESIGN §13 in the image: the model asks for a Bash dump of every environ, the
    config volume and the secrets directory; the agent finds no key and no token, holds
    no capability, and the LLM and the platform still get theirs."""

    def model(body: dict[str, Any]) -> str | ToolUse:
        if not body.get("stream"):
            return "a title"
        if "DUMPED" in last_user_text(body):
            return "done"
        return ToolUse("Bash", {"command": DUMP, "description": "dump everything"})

    host.llm.script = model
    host.volume(
        "name: in a container\nmodel: MiniMax-M2.7\n"
        "runtime_config:\n  permission_mode: bypassPermissions\n"
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "MINIMAX_API_KEY").write_text(KEY + "\n")
    name, port = host.run(
        "-v", f"{secrets}:/run/secrets", key=None, RUNTIME_SECRETS_DIR="/run/secrets"
    )
    wait_for(lambda: online(host), timeout=60)
    reply = httpx.post(f"http://127.0.0.1:{port}/", json=message_send("dump it"), timeout=120)
    assert "result" in reply.json(), (reply.json(), podman("logs", name).stderr[-3000:])
    answer = reply.json()["result"]
    assert answer["status"]["state"] == "completed", answer["status"]
    dump = (host.root / "workspace" / "dump.txt").read_text(errors="replace")
    token = host.emulator.workspaces[WS].token
    assert token is not None
    assert "uid=1000(agent)" in dump  # the tool ran, as the agent
    leaked = KEY in dump or token in dump  # never a secret in test output
    assert not leaked, "a credential reached the agent's tool"
    caps = dict(
        line.split(":", 1) for line in dump.splitlines() if line.startswith(("Cap", "NoNew"))
    )
    assert {k: v.strip() for k, v in caps.items() if k != "CapInh"} == {
        "CapPrm": "0000000000000000",
        "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000",
        "CapAmb": "0000000000000000",
        "NoNewPrivs": "1",
    }
    # the LLM got the key on every call; the platform authenticated beats
    assert {r.authorization for r in host.llm.requests} == {f"Bearer {fingerprint(KEY)}"}
    beats = host.emulator.calls_to("/registry/heartbeat")
    assert beats[-1].authorization == f"Bearer {fingerprint(token)}"
    users = {
        line.split()[0]
        for line in podman("top", name, "user", "args").stdout.splitlines()
        if ("bin/runtime-adapter run" in line or "_bundled/claude" in line) and "tini" not in line
    }
    assert users == {"runtime", "agent"}


def test_without_the_capabilities_one_user_and_the_isolation_row_says_so(host: Host) -> None:
    host.volume()
    name, _ = host.run("--cap-drop", "ALL")
    wait_for(lambda: online(host), timeout=60)
    logs = podman("logs", name).stderr
    assert "cannot change users" in logs
    doctor = podman("exec", name, "runtime-adapter", "doctor", "--json", check=False).stdout
    [row] = [c for c in json.loads(doctor)["checks"] if c["name"] == "isolation"]
    assert row["verdict"] == "warn"
    assert "holds no provider key" in row["detail"]  # the gateway still holds
    assert "lacks the capabilities SETUID, SETGID, SETPCAP, KILL" in row["detail"]
    assert "--cap-add" in row["remedy"]
