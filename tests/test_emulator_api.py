"""The platform emulator's public surface does not change when its inside does: every
public method, attribute and route a test or a template author uses today."""

from __future__ import annotations

import inspect

import httpx
import pytest

from runtime_adapter.testing import PlatformEmulator
from runtime_adapter.testing.platform import Fault, PlatformCall, WorkspaceRecord

pytestmark = pytest.mark.anyio

METHODS = {
    "fail_next": ["path", "count", "status", "retry_after"],
    "drop_next": ["path", "count"],
    "raw_next": ["path", "status", "headers", "body", "count"],
    "drip_next": ["path", "every", "count"],
    "set_latency": ["path", "seconds"],
    "outage": ["seconds", "status"],
    "restart": [],
    "provision": ["workspace_id", "token_path", "url"],
    "send_message": ["workspace_id", "text", "source_id", "context_id", "method"],
    "prune_activity": ["workspace_id", "keep"],
    "calls_to": ["path"],
    "view": ["workspace_id"],
    "app": ["scope", "receive", "send"],
}


def test_every_public_method_keeps_its_parameters() -> None:
    emulator = PlatformEmulator()
    for name, parameters in METHODS.items():
        found = list(inspect.signature(getattr(emulator, name)).parameters)
        assert found == parameters, name
    assert isinstance(emulator.calls, list)
    for attribute in (
        "deploy_mode", "marker_window", "offline_after", "clock", "resolver", "workspaces",
        "activity", "on_call",
    ):  # fmt: skip
        assert hasattr(emulator, attribute), attribute
    assert {Fault, PlatformCall, WorkspaceRecord}
    emulator.deploy_mode = "saas"  # tests switch it on a running emulator
    assert emulator.deploy_mode == "saas"


async def test_every_route_answers() -> None:
    emulator = PlatformEmulator()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emulator.app), base_url="http://platform"
    ) as client:
        card = {"name": "x"}
        registered = await client.post(
            "/registry/register", json={"id": "w1", "url": "http://127.0.0.1:9", "agent_card": card}
        )
        token = registered.json()["auth_token"]
        auth = {"authorization": f"Bearer {token}"}
        beat = await client.post(
            "/registry/heartbeat", json={"workspace_id": "w1", "agent_card": card}, headers=auth
        )
        updated = await client.post(
            "/registry/update-card", json={"workspace_id": "w1", "agent_card": card}, headers=auth
        )
        got = await client.get("/workspaces/w1")
        proxied = await client.post("/workspaces/w1/a2a", json={"jsonrpc": "2.0", "id": 1})
        notified = await client.post("/workspaces/w1/notify", json={"message": "hi"}, headers=auth)
        rows = await client.get("/workspaces/w1/activity", headers=auth)
        health = await client.get("/health")
    assert [
        r.status_code for r in (registered, beat, updated, got, proxied, notified, rows, health)
    ] == [200] * 8
    assert got.json()["status"] == "online"
    assert [c.path for c in emulator.calls][:2] == ["/registry/register", "/registry/heartbeat"]
