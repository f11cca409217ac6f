"""Provider arms under ``runtime-adapter run``: the probe of every arm, and the
workspace token as an input that re-plans when it changes.

The invariant: what the platform shows about the credential is the truth of
the credential the process now projects, without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime_adapter import fingerprint
from runtime_adapter.testing import FakeLLM, PlatformEmulator, free_port, serve_in_thread

from .harness import WS, Process, wait_for

pytestmark = pytest.mark.slow

OAUTH = "sk-ant-oat01-runtime-test-7f3a"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[PlatformEmulator, str, FakeLLM, str, Path]]:
    emulator, llm = PlatformEmulator(deploy_mode="local"), FakeLLM()
    configs = tmp_path / "configs"
    configs.mkdir()
    with serve_in_thread(emulator.app) as platform_url, serve_in_thread(llm.app) as llm_url:
        yield emulator, platform_url, llm, llm_url, configs


def launch(platform_url: str, configs: Path, config: str, **env: str) -> Process:
    (configs / "config.yaml").write_text(config)
    port = free_port()
    base = {
        "WORKSPACE_ID": WS,
        "PLATFORM_URL": platform_url,
        "WORKSPACE_CONFIG_PATH": str(configs),
        "ADAPTER_MODULE": "runtime_adapter.testing.echo",
        "PORT": str(port),
        "HEARTBEAT_INTERVAL_SECONDS": "2",
        "CONFIG_GRACE_SECONDS": "1",
        "LOG_FORMAT": "json",
    }
    return Process({**base, **env}, port)


def view(emulator: PlatformEmulator) -> dict[str, Any]:
    return emulator.view(WS) or {}


@pytest.mark.parametrize("refused", [False, True], ids=["good-token", "refused-token"])
def test_the_oauth_arm_is_probed_not_crashed(
    stack: tuple[PlatformEmulator, str, FakeLLM, str, Path], refused: bool
) -> None:
    emulator, platform_url, llm, llm_url, configs = stack
    llm.refuse_key = refused
    process = launch(
        platform_url,
        configs,
        "model: sonnet\n",
        CLAUDE_CODE_OAUTH_TOKEN=OAUTH,
        ANTHROPIC_BASE_URL=llm_url,
    )
    try:
        wait_for(lambda: llm.requests and view(emulator).get("last_heartbeat_at"))
        if refused:
            detail = wait_for(lambda: view(emulator).get("last_sample_error_detail"))
            assert (detail["kind"], detail["source"], detail["credential_env"]) == (
                "auth_failed",
                "llm_probe",
                "CLAUDE_CODE_OAUTH_TOKEN",
            )
            assert view(emulator)["runtime_state"] == "wedged"
        else:
            wait_for(lambda: view(emulator).get("status") == "online")
            time.sleep(0.5)  # a beat after the probe's answer
            assert (view(emulator)["runtime_state"], view(emulator)["last_sample_error"]) == (
                "",
                "",
            )
    finally:
        assert process.stop() == 0
    probe = llm.requests[0]
    assert (probe.model, probe.authorization) == (
        "claude-haiku-4-5",
        f"Bearer {fingerprint(OAUTH)}",
    )
    assert OAUTH not in process.output


def test_the_platform_arm_follows_a_rotated_workspace_token(
    stack: tuple[PlatformEmulator, str, FakeLLM, str, Path],
) -> None:
    emulator, platform_url, llm, llm_url, configs = stack
    token_file = configs / ".auth_token"
    old = emulator.provision(WS, token_path=token_file)
    llm.accept_only("a-token-the-proxy-no-longer-has")  # the old one was revoked
    process = launch(platform_url, configs, "model: minimax/MiniMax-M2.7\n", LLM_PROXY_URL=llm_url)
    try:
        wait_for(lambda: view(emulator).get("runtime_state") == "wedged")
        time.sleep(3)
        new = emulator.provision(WS, token_path=token_file)  # the provisioner rotates it
        llm.accept_only(new)
        rotated_at = time.monotonic()
        seen = len(llm.requests)
        wait_for(
            lambda: (
                view(emulator).get("status") == "online"
                and view(emulator).get("runtime_state") == ""
                and view(emulator).get("last_sample_error") == ""
            ),
            timeout=10,
        )
        assert time.monotonic() - rotated_at < 10
    finally:
        assert process.stop() == 0
    after = llm.requests[seen:]
    assert after, "the probe did not run again after the rotation"
    assert {r.authorization for r in after} == {f"Bearer {fingerprint(new)}"}
    assert fingerprint(old) != fingerprint(new)
    assert new not in process.output
    assert old not in process.output
