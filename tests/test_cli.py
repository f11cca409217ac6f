"""``runtime-adapter env`` and ``exec`` as an operator meets them, in a subprocess.

No secret value ever appears in what they print: fingerprints only.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_adapter import fingerprint
from runtime_adapter.cli import main
from runtime_adapter.envplan import MODEL_SLOTS

from .conftest import WriteVolume, clean_env

MINIMAX_KEY = "mm-cli-secret-5f3a9c"
ANT_KEY = "sk-ant-cli-secret-77aa"
SECRETS = (MINIMAX_KEY, ANT_KEY)


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "runtime_adapter", *args],
        env={**clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for secret in SECRETS:
        assert secret not in completed.stdout
        assert secret not in completed.stderr
    return completed


@pytest.fixture
def minimax_env(volume: WriteVolume) -> dict[str, str]:
    root = volume("name: cli test\nmodel: MiniMax-M2\n")
    return {
        "WORKSPACE_CONFIG_PATH": str(root),
        "MINIMAX_API_KEY": MINIMAX_KEY + "\n",
        "ANTHROPIC_API_KEY": ANT_KEY,
    }


def test_env_table_shows_fingerprints_sources_and_warnings(minimax_env: dict[str, str]) -> None:
    done = run_cli("env", env=minimax_env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "provider    minimax  (MiniMax (bring your own key))"
    assert lines[1] == "model       MiniMax-M2"
    assert lines[2] == (
        f"credential  MINIMAX_API_KEY (environment)  {fingerprint(MINIMAX_KEY)}  (bearer)"
    )
    row = next(line for line in lines if line.startswith("ANTHROPIC_AUTH_TOKEN"))
    assert row.split()[:4] == [
        "ANTHROPIC_AUTH_TOKEN",
        "set",
        fingerprint(MINIMAX_KEY),
        "MINIMAX_API_KEY",
    ]
    row = next(line for line in lines if line.startswith("ANTHROPIC_API_KEY"))
    assert row.split()[:3] == ["ANTHROPIC_API_KEY", "unset", "-"]
    assert lines[-1] == (
        "warning: ANTHROPIC_API_KEY was set but is removed: no Anthropic credential goes to a "
        "third-party host"
    )


def test_env_json_has_the_documented_shape(minimax_env: dict[str, str]) -> None:
    done = run_cli("env", "--format", "json", env=minimax_env)
    assert done.returncode == 0
    data = json.loads(done.stdout)
    assert {k: data[k] for k in ("provider", "model", "unset", "error")} == {
        "provider": "minimax",
        "model": "MiniMax-M2",
        # only what applying the plan removes; the variables entries agree
        "unset": ["ANTHROPIC_API_KEY"],
        "error": None,
    }
    small = ("ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL")
    assert data["set"] == {
        "ANTHROPIC_AUTH_TOKEN": fingerprint(MINIMAX_KEY),
        "ANTHROPIC_BASE_URL": "https://api.minimax.io/anthropic",
        "CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST": "1",
        **{
            slot: "MiniMax-M2.7-highspeed" if slot in small else "MiniMax-M2"
            for slot in MODEL_SLOTS
            if slot != "CLAUDE_CODE_BG_CLASSIFIER_MODEL"
        },
        "CLAUDE_CODE_BG_CLASSIFIER_MODEL": "MiniMax-M2.7-highspeed",
        "API_TIMEOUT_MS": "3000000",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    removed = [v["name"] for v in data["variables"] if v["action"] == "unset"]
    assert removed == data["unset"]
    assert len(data["warnings"]) == 1


def test_env_shell_output_evaluates_to_the_plan_without_printing_the_key(
    minimax_env: dict[str, str], tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "MINIMAX_API_KEY").write_text(MINIMAX_KEY + "\n")
    env = {**minimax_env, "MINIMAX_API_KEY": "", "RUNTIME_SECRETS_DIR": str(secrets)}
    done = run_cli("env", "--format", "shell", env=env)
    assert done.returncode == 0
    script = done.stdout + 'printf %s "$ANTHROPIC_AUTH_TOKEN" | sha256sum\n'
    script += 'echo "api=${ANTHROPIC_API_KEY-unset} model=$ANTHROPIC_DEFAULT_HAIKU_MODEL"\n'
    shell = subprocess.run(
        ["sh", "-c", script],
        env={**clean_env(), "ANTHROPIC_API_KEY": ANT_KEY},
        capture_output=True,
        text=True,
        check=True,
    )
    digest, summary = shell.stdout.splitlines()
    assert "sha256:" + digest.split()[0][:8] == fingerprint(MINIMAX_KEY)
    assert summary == "api=unset model=MiniMax-M2.7-highspeed"


def test_env_config_error_exits_78_with_file_and_remedy(volume: WriteVolume) -> None:
    root = volume("model: MiniMax-M2\n")
    env = {"WORKSPACE_CONFIG_PATH": str(root), "LLM_PROXY_URL": "https://proxy.example"}
    done = run_cli("env", "--format", "json", env=env)
    assert done.returncode == 78
    assert "Traceback" not in done.stderr
    assert done.stderr == (
        f"runtime-adapter: error: model MiniMax-M2 (from {root}/config.yaml:1 (model)) is "
        "served by arm minimax, which needs MINIMAX_API_KEY; none is set (platform-managed "
        "billing sends no tenant key) (use minimax/MiniMax-M2.7 for platform billing or set "
        "MINIMAX_API_KEY in the environment)\n"
    )
    error = json.loads(done.stdout)["error"]
    assert (error["kind"], error["variable"]) == ("config_error", "MINIMAX_API_KEY")


def test_env_bad_setting_and_malformed_volume_exit_78(volume: WriteVolume) -> None:
    done = run_cli("env", env={"PORT": "http"})
    assert (done.returncode, done.stdout) == (78, "")
    assert done.stderr.startswith(
        "runtime-adapter: error: PORT is not valid: Input should be a valid integer"
    )
    root = volume("model: [\n")
    done = run_cli("env", env={"WORKSPACE_CONFIG_PATH": str(root)})
    assert done.returncode == 78
    assert f"{root}/config.yaml:1:9 is not valid YAML" in done.stderr  # end of line 1


def test_volume_providers_file_is_merged(volume: WriteVolume) -> None:
    root = volume(
        "model: acme-1\n",
        providers="acme:\n  key_env: ACME_KEY\n  base_url: https://llm.acme.example\n"
        "  models: [acme-1]\n",
    )
    done = run_cli(
        "env", "--format", "json", env={"WORKSPACE_CONFIG_PATH": str(root), "ACME_KEY": "k"}
    )
    assert json.loads(done.stdout)["set"]["ANTHROPIC_BASE_URL"] == "https://llm.acme.example"


CHILD = (
    "import hashlib, json, os\n"
    "fp = lambda v: v and 'sha256:' + hashlib.sha256(v.encode()).hexdigest()[:8]\n"
    "names = ['ANTHROPIC_AUTH_TOKEN', 'ANTHROPIC_API_KEY', 'ANTHROPIC_BASE_URL', "
    "'ANTHROPIC_MODEL', 'CLAUDE_CODE_OAUTH_TOKEN']\n"
    "print(json.dumps({'pid': os.getpid(), **{n: fp(os.environ.get(n)) if 'TOKEN' in n or "
    "'KEY' in n else os.environ.get(n) for n in names}}))\n"
)


def test_exec_replaces_itself_with_the_command_under_the_plan(
    minimax_env: dict[str, str],
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime_adapter", "exec", "--", sys.executable, "-c", CHILD],
        env={**clean_env(), **minimax_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert json.loads(out) == {
        "pid": process.pid,
        "ANTHROPIC_AUTH_TOKEN": fingerprint(MINIMAX_KEY),
        "ANTHROPIC_API_KEY": None,
        "ANTHROPIC_BASE_URL": "https://api.minimax.io/anthropic",
        "ANTHROPIC_MODEL": "MiniMax-M2",
        "CLAUDE_CODE_OAUTH_TOKEN": None,
    }
    assert err == (
        "runtime-adapter: warning: ANTHROPIC_API_KEY was set but is removed: no Anthropic "
        "credential goes to a third-party host\n"
    )
    for secret in SECRETS:
        assert secret not in out + err


def test_exec_exit_codes(minimax_env: dict[str, str], volume: WriteVolume) -> None:
    assert (
        run_cli(
            "exec", "--", sys.executable, "-c", "raise SystemExit(7)", env=minimax_env
        ).returncode
        == 7
    )
    missing = run_cli("exec", "--", "no-such-command-xyz", env=minimax_env)
    assert (missing.returncode, missing.stderr.splitlines()[-1]) == (
        127,
        "runtime-adapter: error: exec: command not found: no-such-command-xyz",
    )
    assert run_cli("exec", env=minimax_env).returncode == 2
    broken = {**minimax_env, "MINIMAX_API_KEY": "mm key", "CONFIG_GRACE_SECONDS": "0"}
    done = run_cli("exec", "--", "true", env=broken)
    assert done.returncode == 78
    assert "MINIMAX_API_KEY has a space at position 3 of 6" in done.stderr


def test_exec_waits_for_a_volume_that_is_still_filling(tmp_path: Path) -> None:
    root = tmp_path / "configs"
    root.mkdir()
    env = {
        **clean_env(),
        "WORKSPACE_CONFIG_PATH": str(root),
        "MINIMAX_API_KEY": MINIMAX_KEY,
        "CONFIG_GRACE_SECONDS": "20",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime_adapter",
            "exec",
            "--",
            "sh",
            "-c",
            "echo $ANTHROPIC_MODEL",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    subprocess.run(["sleep", "0.5"], check=True)
    (root / "config.yaml").write_text("model: MiniMax-M2.5\n")
    out, _ = process.communicate(timeout=30)
    assert (process.returncode, out) == (0, "MiniMax-M2.5\n")


def test_main_in_process_returns_the_exit_code(
    minimax_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in minimax_env.items():
        monkeypatch.setenv(name, value)
    assert main(["env", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["provider"] == "minimax"
    assert MINIMAX_KEY not in captured.out + captured.err
    assert hashlib.sha256(MINIMAX_KEY.encode()).hexdigest()[:8] in captured.out


def test_template_providers_file_is_found_beside_adapter_module(
    volume: WriteVolume, tmp_path: Path
) -> None:
    template = tmp_path / "tpl" / "acme_template"
    template.mkdir(parents=True)
    (template / "__init__.py").write_text(
        "raise RuntimeError('the template must not be imported')\n"
    )
    (template / "adapter.py").write_text("")
    (template / "providers.yaml").write_text(
        "acme:\n  key_env: ACME_KEY\n  base_url: https://llm.acme.example\n  models: [acme-1]\n"
    )
    root = volume("model: acme-1\n")
    env = {
        "WORKSPACE_CONFIG_PATH": str(root),
        "ADAPTER_MODULE": "acme_template.adapter:AcmeAdapter",
        "PYTHONPATH": str(tmp_path / "tpl"),
        "ACME_KEY": "k",
    }
    done = run_cli("env", "--format", "json", env=env)
    assert json.loads(done.stdout)["provider"] == "acme", done.stderr


def test_platform_command_serves_the_emulator_and_logs_each_request() -> None:
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime_adapter", "platform", "--port", str(port)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/registry/register",
                    json={"id": "ws-1", "url": f"http://127.0.0.1:{port}", "agent_card": {}},
                    timeout=2,
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.1)
        token = answer.json()["auth_token"]
    finally:
        process.send_signal(2)  # Ctrl-C
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert token not in out + err
    assert "POST /registry/register 200 ws-1 no-auth" in out


def test_env_into_a_closed_pipe_exits_quietly(minimax_env: dict[str, str]) -> None:
    done = subprocess.run(  # noqa: S602 - the pipe is the scenario
        f"{sys.executable} -m runtime_adapter env | head -1",
        shell=True,
        env={**clean_env(), **minimax_env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
                for i in range(6)
            ),
            "expands to more than",
        ),
        ("x: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ],
    ids=["alias-bomb", "deep-nesting"],
)
def test_a_hostile_yaml_is_a_config_error_not_a_traceback(
    volume: WriteVolume, text: str, says: str
) -> None:
    done = run_cli("env", env={"WORKSPACE_CONFIG_PATH": str(volume(text))})
    assert done.returncode == 78
    assert says in done.stderr
    assert "config.yaml" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) < 5


def test_a_key_that_needs_cleaning_is_exported_cleaned_by_the_shell_format(
    minimax_env: dict[str, str],
) -> None:
    messy = f"  '{MINIMAX_KEY}'\n"
    done = run_cli("env", "--format", "shell", env={**minimax_env, "MINIMAX_API_KEY": messy})
    assert done.returncode == 0
    assert MINIMAX_KEY not in done.stdout
    script = done.stdout + 'printf %s "$ANTHROPIC_AUTH_TOKEN" | sha256sum\n'
    shell = subprocess.run(
        ["sh", "-c", script],
        env={**clean_env(), "MINIMAX_API_KEY": messy},
        capture_output=True,
        text=True,
        check=True,
    )
    digest = shell.stdout.split()[0]
    assert f"sha256:{digest[:8]}" == fingerprint(MINIMAX_KEY)
