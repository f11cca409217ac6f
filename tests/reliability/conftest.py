"""The reliability world: the platform emulator and a fake LLM on sockets, a config
volume and a secrets directory, and a launcher for ``runtime-adapter run``.

After every scenario the process must stop on SIGTERM with exit 0 within
10 s, no secret may appear in anything it printed, and the token file, if
present, must hold exactly one token (mode 0600) that the platform accepts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runtime_adapter.testing import FakeLLM, PlatformEmulator, free_port, serve_in_thread

from ..harness import KEY, WS, Process


@dataclass
class World:
    emulator: PlatformEmulator
    platform_url: str
    llm: FakeLLM
    llm_url: str
    configs: Path
    secrets: Path
    processes: list[Process] = field(default_factory=list)

    def launch(
        self, config: str | None = "name: reliable\nmodel: MiniMax-M2\n", **env: str
    ) -> Process:
        if config is not None:
            (self.configs / "config.yaml").write_text(config)
        port = free_port()
        base = {
            "WORKSPACE_ID": WS,
            "PLATFORM_URL": self.platform_url,
            "WORKSPACE_CONFIG_PATH": str(self.configs),
            "ADAPTER_MODULE": "runtime_adapter.testing.echo",
            "PORT": str(port),
            "MINIMAX_API_KEY": KEY,
            "MINIMAX_BASE_URL": self.llm_url,
            "HEARTBEAT_INTERVAL_SECONDS": "2",
            "CONFIG_GRACE_SECONDS": "1",
            "LOG_FORMAT": "json",
        }
        process = Process({**base, **env}, port)
        self.processes.append(process)
        return process

    def view(self) -> dict[str, Any]:
        return self.emulator.view(WS) or {}

    def detail(self) -> dict[str, Any]:
        return self.view().get("last_sample_error_detail") or {}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    emulator = PlatformEmulator(deploy_mode="local")
    llm = FakeLLM()
    configs = tmp_path / "configs"
    configs.mkdir()
    secrets = tmp_path / "secrets"
    with serve_in_thread(emulator.app) as url, serve_in_thread(llm.app) as llm_url:
        world = World(emulator, url, llm, llm_url, configs, secrets)
        yield world
        for process in world.processes:
            code = process.stop()
            assert code == 0, process.output[-3000:]
            assert process.stopped_within(10)
            check_output(process, emulator)
        check_token(configs, emulator)


def check_output(process: Process, emulator: PlatformEmulator) -> None:
    assert KEY not in process.output
    record = emulator.workspaces.get(WS)
    if record is not None and record.token:
        assert record.token not in process.output
    for line in process.output.splitlines():
        json.loads(line)
    assert "Traceback" not in process.output or '"exc"' in process.output


def check_token(configs: Path, emulator: PlatformEmulator) -> None:
    token_file = configs / ".auth_token"
    if not token_file.exists():
        return
    text = token_file.read_text()
    assert text.count("\n") == 1
    assert text.strip()
    assert " " not in text.strip()
    record = emulator.workspaces.get(WS)
    if record is not None and record.token is not None:
        assert text.strip() == record.token  # never lost, never a stale or corrupt one


Launch = Callable[..., Process]
