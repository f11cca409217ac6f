"""The volume, the secrets or the providers are wrong; the process stays up, says
exactly what is wrong and where, and boots by itself once it is fixed."""

from __future__ import annotations

import errno
import logging
import os
import time
from unittest import mock

import anyio
import pytest

from runtime_adapter import fingerprint
from runtime_adapter.lifecycle import Runtime
from runtime_adapter.settings import load_settings
from runtime_adapter.testing import free_port

from ..harness import KEY, WS, wait_for
from .conftest import World

pytestmark = pytest.mark.slow


def ok_beats(world: World) -> list[object]:
    return [c for c in world.emulator.calls_to("/registry/heartbeat") if c.status == 200]


def failed(world: World) -> dict[str, object]:
    detail: dict[str, object] = wait_for(
        lambda: world.detail() if world.view().get("runtime_state") == "wedged" else None,
        timeout=20,
    )
    return detail


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        pytest.param(
            lambda c: (c / "config.yaml").write_text("model: [\n"),
            "config.yaml:1:9 is not valid YAML",  # the end of its one line
            id="malformed",
        ),
        pytest.param(lambda c: None, "config.yaml does not exist", id="missing"),
        pytest.param(lambda c: (c / "config.yaml").mkdir(), "is a directory", id="unreadable"),
        pytest.param(
            lambda c: (c / "config.yaml").write_bytes(b"model: x\n\x00\x01" * 10),
            "NUL byte",
            id="binary",
        ),
        pytest.param(
            lambda c: (c / "config.yaml").write_bytes(b"#" * (100 * 1024 * 1024)),
            "the limit is 1048576",
            id="100MB",
        ),
    ],
)
def test_bad_config_volume_is_reported_and_the_process_stays_up(
    world: World, prepare: object, message: str
) -> None:
    prepare(world.configs)  # type: ignore[operator]
    process = world.launch(config=None)
    detail = failed(world)
    assert (detail["kind"], detail["source"], detail["severity"]) == (
        "config_error",
        "config",
        "error",
    )
    assert message in str(detail["message"])
    health = wait_for(lambda: process.get("/health"))
    assert health.status_code == 503
    assert process.alive()


@pytest.mark.unmeasured
def test_volume_filled_late_boots_normally(world: World) -> None:
    process = world.launch(config=None, CONFIG_GRACE_SECONDS="15")
    time.sleep(2)
    (world.configs / "config.yaml").write_text("name: late\nmodel: MiniMax-M2\n")
    wait_for(lambda: world.view().get("status") == "online", timeout=20)
    assert all(
        not (c.body.get("sample_error_detail") or {})
        for c in world.emulator.calls_to("/registry/heartbeat")
    )
    assert process.alive()


def test_missing_secrets_dir_then_fixed(world: World) -> None:
    world.launch(MINIMAX_API_KEY="", RUNTIME_SECRETS_DIR=str(world.secrets))
    detail = failed(world)
    assert (detail["kind"], detail["variable"]) == ("config_error", "RUNTIME_SECRETS_DIR")
    world.secrets.mkdir()
    (world.secrets / "MINIMAX_API_KEY").write_text(KEY + "\n")
    (world.configs / "config.yaml").write_text("name: fixed\nmodel: MiniMax-M2\n")
    wait_for(lambda: world.view().get("runtime_state") == "" and world.view()["status"] == "online")


@pytest.mark.parametrize(
    ("providers", "message", "line"),
    [
        ("minimax:\n  base_ur1: https://x.example\n", "Extra inputs are not permitted", 2),
        ("evil:\n  key_env: EVIL_KEY\n  base_url: javascript:alert(1)\n", "http://", 3),
        ("evil:\n  key_env: EVIL_KEY\n  base_url: http://169.254.169.254/\n", "metadata", 3),
    ],
)
def test_hostile_providers_yaml(world: World, providers: str, message: str, line: int) -> None:
    (world.configs / "providers.yaml").write_text(providers)
    process = world.launch()
    detail = failed(world)
    assert detail["kind"] == "config_error"
    assert message in str(detail["message"])
    assert (detail["file"], detail["line"]) == (str(world.configs / "providers.yaml"), line)
    assert process.alive()


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
@pytest.mark.anyio
async def test_unwritable_volume_keeps_the_issued_token_in_memory(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    (world.configs / "config.yaml").write_text("name: read-only\n")
    for name, value in {
        "WORKSPACE_ID": WS,
        "PLATFORM_URL": world.platform_url,
        "WORKSPACE_CONFIG_PATH": str(world.configs),
        "ADAPTER_MODULE": "runtime_adapter.testing.echo",
        "PORT": str(free_port()),
        "HEARTBEAT_INTERVAL_SECONDS": "1",
    }.items():
        monkeypatch.setenv(name, value)

    def refuse(*args: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    caplog.set_level(logging.INFO, logger="runtime_adapter")
    runtime = Runtime(load_settings(), dict(os.environ))
    with mock.patch.dict(os.environ):
        async with anyio.create_task_group() as group:
            group.start_soon(runtime.run)
            with anyio.fail_after(20):
                while len(ok_beats(world)) < 2:  # noqa: ASYNC110 - the server is a thread
                    await anyio.sleep(0.05)
            group.cancel_scope.cancel()
    token = world.emulator.workspaces[WS].token
    assert token is not None
    assert world.emulator.calls_to("/registry/heartbeat")[-1].authorization == (
        f"Bearer {fingerprint(token)}"
    )
    assert not (world.configs / ".auth_token").exists()
    assert "keeping it in memory" in caplog.text
    assert token not in caplog.text
