"""A template author's respx test, written only with the public helper: the platform
client meets the emulator's real rules (a token issued on the first register and
required after), not hand-written answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from runtime_adapter import Health, Heartbeat, PlatformClient, PlatformRejected, TokenStore
from runtime_adapter.testing import PlatformEmulator, mock_platform

pytestmark = pytest.mark.anyio

CARD = {"name": "my agent", "description": "", "version": "1.0.0"}


async def test_register_then_beat_against_the_emulator_behind_respx(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    platform = mock_platform(respx_mock, "http://platform.test")
    async with PlatformClient("http://platform.test", "ws-respx", TokenStore(tmp_path)) as client:
        heartbeat = Heartbeat(client, Health(), url="http://127.0.0.1:8000", card=lambda: CARD)
        assert await heartbeat.register_once() is True
        await heartbeat.beat()
    assert [(c.path, c.status) for c in platform.calls] == [
        ("/registry/register", 200),
        ("/registry/heartbeat", 200),
    ]
    assert (tmp_path / ".auth_token").read_text().strip() == platform.workspaces["ws-respx"].token
    view = platform.view("ws-respx")
    assert view is not None
    assert (view["status"], view["agent_card"]) == ("online", CARD)


async def test_the_fixture_and_its_rules(respx_platform: PlatformEmulator, tmp_path: Path) -> None:
    respx_platform.fail_next("/registry/register", 1, status=400)
    async with PlatformClient("http://platform.test", "ws-2", TokenStore(tmp_path)) as client:
        with pytest.raises(PlatformRejected):
            await client.register("http://127.0.0.1:8000", CARD)
        assert await client.register("http://127.0.0.1:8000", CARD) is True
    assert [c.status for c in respx_platform.calls_to("/registry/register")] == [400, 200]
