"""The platform emulator follows the Molecule workspace server's rules, through HTTP.

Including the DESIGN §2 incident: a register refused for a container-id
hostname keeps the workspace degraded while plain heartbeats arrive, and one
authenticated heartbeat carrying an agent card brings it back online.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime_adapter import fingerprint
from runtime_adapter.testing import PlatformEmulator

pytestmark = pytest.mark.anyio

CARD = {"name": "agent", "description": "d", "version": "1.0.0"}
WS = "3f2c9d1e-7b6a-4c1d-9e8f-0a1b2c3d4e5f"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def resolver(table: dict[str, list[str]]) -> Any:
    return lambda host: table.get(host, [])


def emulator(mode: str = "local", **names: list[str]) -> tuple[PlatformEmulator, Clock]:
    clock = Clock()
    return PlatformEmulator(deploy_mode=mode, clock=clock, resolver=resolver(names)), clock


def client(platform: PlatformEmulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app), base_url="http://platform.test"
    )


def beat(**fields: Any) -> dict[str, Any]:
    return {"workspace_id": WS, "error_rate": 0.0, "active_tasks": 0, "uptime_seconds": 5, **fields}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_first_register_issues_a_token_that_is_required_afterwards() -> None:
    platform, _ = emulator()
    async with client(platform) as http:
        first = await http.post(
            "/registry/register",
            json={"id": WS, "url": "http://127.0.0.1:8000", "agent_card": CARD},
        )
        assert first.status_code == 200
        token = first.json()["auth_token"]
        assert first.json()["status"] == "registered"

        missing = await http.post("/registry/heartbeat", json=beat())
        wrong = await http.post("/registry/heartbeat", json=beat(), headers=bearer("nope"))
        again = await http.post(
            "/registry/register",
            json={"id": WS, "url": "http://127.0.0.1:8000", "agent_card": CARD},
        )
        ok = await http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
    assert (missing.status_code, missing.json()) == (401, {"error": "missing workspace auth token"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid workspace auth token"})
    assert again.status_code == 401
    assert ok.status_code == 200
    assert platform.view(WS)["status"] == "online"  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (beat(sample_error={"kind": "auth_failed"}), "sample_error must be a string"),
        (beat(uptime_seconds=12.5), "uptime_seconds must be an integer"),
        (beat(active_tasks="2"), "active_tasks must be an integer"),
        (beat(active_tasks=True), "active_tasks must be an integer"),
        ({"error_rate": 0.0}, "workspace_id is required and must be a string"),
        (beat(agent_card="card"), "agent_card must be an object"),
    ],
)
async def test_heartbeat_with_a_wrongly_typed_field_is_a_400(
    body: dict[str, Any], error: str
) -> None:
    platform, _ = emulator()
    platform.provision(WS)
    token = platform.workspaces[WS].token
    assert token is not None
    async with client(platform) as http:
        answer = await http.post("/registry/heartbeat", json=body, headers=bearer(token))
    assert (answer.status_code, answer.json()) == (400, {"error": error})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"url": "http://1.2.3.4:80", "agent_card": CARD}, "id is required and must be a string"),
        ({"id": WS, "agent_card": CARD}, "url is required and must be a string"),
        ({"id": WS, "url": "http://1.2.3.4"}, "agent_card is required and must be an object"),
    ],
)
async def test_register_payload_validation(body: dict[str, Any], error: str) -> None:
    platform, _ = emulator()
    async with client(platform) as http:
        answer = await http.post("/registry/register", json=body)
    assert (answer.status_code, answer.json()) == (400, {"error": error})


@pytest.mark.parametrize(
    ("mode", "url", "accepted"),
    [
        ("saas", "http://34.120.1.7:8000", True),
        ("saas", "http://10.0.3.4:8000", True),
        ("saas", "http://127.0.0.1:8000", False),
        ("saas", "http://169.254.169.254", False),
        ("saas", "http://100.64.0.9:8000", False),
        ("saas", "http://[fe80::1]:8000", False),
        ("saas", "http://0.0.0.0:8000", False),
        ("saas", "ftp://34.120.1.7", False),
        ("self-hosted", "http://10.0.3.4:8000", False),
        ("self-hosted", "http://172.18.0.5:8000", False),
        ("self-hosted", "http://192.168.1.20:8000", False),
        ("self-hosted", "http://34.120.1.7:8000", True),
        ("local", "http://127.0.0.1:8000", True),
        ("local", "http://172.18.0.5:8000", True),
        ("local", "http://198.51.100.7:8000", False),
        ("saas", "http://agent.example.com:8000", True),
        ("saas", "http://internal.example.com:8000", False),
        ("saas", "http://212851b5693d:8000", False),
    ],
)
async def test_url_validation_per_deploy_mode(mode: str, url: str, accepted: bool) -> None:
    platform, _ = emulator(
        mode, **{"agent.example.com": ["34.120.1.8"], "internal.example.com": ["127.0.0.1"]}
    )
    async with client(platform) as http:
        answer = await http.post(
            "/registry/register", json={"id": WS, "url": url, "agent_card": CARD}
        )
    assert (answer.status_code == 200) is accepted, answer.text
    if not accepted:
        assert answer.json()["error"].startswith("url_validate_failed: ")
        view = platform.view(WS)
        assert view is not None
        assert view["status"] == "degraded"
        assert view["register_failure"]["reason"] == answer.json()["error"]


async def test_incident_container_id_hostname_then_card_bearing_heartbeat(tmp_path: Path) -> None:
    platform, clock = emulator("self-hosted")
    token = platform.provision(
        WS, token_path=tmp_path / ".auth_token", url="http://127.0.0.1:32771"
    )
    assert (tmp_path / ".auth_token").read_text() == token + "\n"
    assert (tmp_path / ".auth_token").stat().st_mode & 0o777 == 0o600
    async with client(platform) as http:
        refused = await http.post(
            "/registry/register",
            json={"id": WS, "url": "http://212851b5693d:8000", "agent_card": CARD},
            headers=bearer(token),
        )
        assert refused.json() == {
            "error": "url_validate_failed: host 212851b5693d does not resolve"
        }
        for _ in range(3):
            clock.now += 30
            plain = await http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
            assert plain.status_code == 200
            assert platform.view(WS)["status"] == "degraded"  # type: ignore[index]
        assert platform.view(WS)["url"] == "http://127.0.0.1:32771"  # type: ignore[index]

        unauthenticated = await http.post("/registry/heartbeat", json=beat(agent_card=CARD))
        assert unauthenticated.status_code == 401
        assert platform.view(WS)["status"] == "degraded"  # type: ignore[index]

        carded = await http.post(
            "/registry/heartbeat", json=beat(agent_card=CARD), headers=bearer(token)
        )
        assert carded.status_code == 200
        view = (await http.get(f"/workspaces/{WS}")).json()
    assert (view["status"], view["register_failure"], view["agent_card"]) == ("online", None, CARD)


async def test_marker_expires_after_its_window() -> None:
    platform, clock = emulator("saas")
    async with client(platform) as http:
        await http.post(
            "/registry/register", json={"id": WS, "url": "http://127.0.0.1", "agent_card": CARD}
        )
        await http.post("/registry/heartbeat", json=beat())
        assert platform.view(WS)["status"] == "degraded"  # type: ignore[index]
        clock.now += 301
        await http.post("/registry/heartbeat", json=beat())
    assert platform.view(WS)["status"] == "online"  # type: ignore[index]


async def test_status_machine_wedged_error_rate_hysteresis_and_offline() -> None:
    platform, clock = emulator()
    token = platform.provision(WS)
    assert platform.view(WS)["status"] == "provisioning"  # type: ignore[index]
    detail = {"kind": "auth_failed", "severity": "error"}
    async with client(platform) as http:

        async def send(**fields: Any) -> str:
            clock.now += 30
            answer = await http.post(
                "/registry/heartbeat", json=beat(**fields), headers=bearer(token)
            )
            assert answer.status_code == 200
            return str(platform.view(WS)["status"])  # type: ignore[index]

        assert await send() == "online"
        assert (
            await send(
                runtime_state="wedged", sample_error="auth_failed: 401", sample_error_detail=detail
            )
            == "degraded"
        )
        view = (await http.get(f"/workspaces/{WS}")).json()
        assert (view["last_sample_error"], view["last_sample_error_detail"]) == (
            "auth_failed: 401",
            detail,
        )
        assert await send() == "online"
        assert await send(error_rate=0.5) == "degraded"
        assert await send(error_rate=0.2) == "degraded"
        assert await send(error_rate=0.09) == "online"
        assert await send(error_rate=0.2) == "online"
        clock.now += 91
        assert platform.view(WS)["status"] == "offline"  # type: ignore[index]
        assert await send() == "online"
        missing = await http.get("/workspaces/nope")
    assert missing.status_code == 404


async def test_update_card_and_unknown_workspace() -> None:
    platform, _ = emulator()
    token = platform.provision(WS)
    async with client(platform) as http:
        updated = await http.post(
            "/registry/update-card",
            json={"workspace_id": WS, "agent_card": CARD},
            headers=bearer(token),
        )
        unknown = await http.post("/registry/heartbeat", json=beat(workspace_id="other"))
    assert updated.status_code == 200
    assert platform.view(WS)["agent_card"] == CARD  # type: ignore[index]
    assert (unknown.status_code, unknown.json()) == (404, {"error": "unknown workspace"})


async def test_provisioner_rotation_revokes_the_old_token(tmp_path: Path) -> None:
    platform, _ = emulator()
    old = platform.provision(WS)
    new = platform.provision(WS, token_path=tmp_path / ".auth_token")
    async with client(platform) as http:
        stale = await http.post("/registry/heartbeat", json=beat(), headers=bearer(old))
        fresh = await http.post("/registry/heartbeat", json=beat(), headers=bearer(new))
    assert (stale.status_code, fresh.status_code) == (401, 200)


async def test_faults_and_recorder_in_process() -> None:
    platform, _ = emulator()
    token = platform.provision(WS)
    platform.fail_next("/registry/heartbeat", 2, status=503, retry_after="7")
    async with client(platform) as http:
        first = await http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
        second = await http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
        third = await http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
        platform.drop_next("/registry/heartbeat")
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
        platform.restart()
        forgotten = await http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["retry-after"] == "7"
    assert forgotten.status_code == 404
    calls = platform.calls_to("/registry/heartbeat")
    assert [call.status for call in calls] == [503, 503, 200, 0, 404]  # 0: dropped
    assert calls[0].authorization == f"Bearer {fingerprint(token)}"
    assert calls[0].body == beat()
    assert all(token not in str(call) for call in calls)


def test_faults_latency_and_recorder_over_a_socket(
    platform_emulator: PlatformEmulator, platform_url: str
) -> None:
    token = platform_emulator.provision(WS)
    platform_emulator.fail_next("/registry/heartbeat", 1, status=429, retry_after="3")
    with httpx.Client(base_url=platform_url, timeout=5) as http:
        limited = http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
        platform_emulator.drop_next("/registry/heartbeat")
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
        platform_emulator.set_latency("/registry/heartbeat", 0.5)
        with pytest.raises(httpx.ReadTimeout):
            http.post("/registry/heartbeat", json=beat(), headers=bearer(token), timeout=0.1)
        platform_emulator.set_latency("/registry/heartbeat", 0)
        ok = http.post("/registry/heartbeat", json=beat(), headers=bearer(token))
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
    assert ok.status_code == 200
    statuses = [call.status for call in platform_emulator.calls_to("/registry/heartbeat")]
    assert statuses[:2] == [429, 0]  # 0: the dropped connection
    assert 200 in statuses
    assert platform_emulator.view(WS)["status"] == "online"  # type: ignore[index]


async def test_fixture_client_in_process(
    platform_emulator: PlatformEmulator, platform_client: httpx.AsyncClient
) -> None:
    answer = await platform_client.get("/health")
    assert answer.json() == {"status": "ok"}
    assert platform_emulator.calls[0].path == "/health"


async def test_the_poll_side_queues_pages_prunes_and_records_replies() -> None:
    """§11/§14: a poll-mode register needs no url (saas: an Origin); a message through
    the proxy is queued as an a2a_receive row; the activity route pages by cursor and
    answers 410 for a pruned one; /a2a to a push-mode workspace and /notify are
    recorded and shown."""
    platform, clock = emulator("saas")
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:
        body = {"id": WS, "delivery_mode": "poll", "agent_card": CARD}
        refused = await http.post("/registry/register", json=body)
        assert (refused.status_code, refused.json()) == (403, {"error": "origin required"})
        taken = await http.post("/registry/register", json=body, headers={"Origin": "http://p"})
        answer = taken.json()
        assert answer["delivery_mode"] == "poll"
        assert answer["platform_inbound_secret"] == platform.workspaces[WS].inbound_secret
        auth = {"Authorization": f"Bearer {answer['auth_token']}"}

        send = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {}}}
        queued = await http.post(f"/workspaces/{WS}/a2a", json=send)
        assert queued.json() == {
            "status": "queued",
            "delivery_mode": "poll",
            "method": "message/send",
        }
        second = platform.send_message(WS, "hello", source_id="ws-peer", context_id="c-1")

        rows = (await http.get(f"/workspaces/{WS}/activity?type=a2a_receive", headers=auth)).json()
        assert [r["source_id"] for r in rows] == [None, "ws-peer"]
        assert rows[1]["id"] == second
        assert rows[1]["request_body"]["params"]["message"]["contextId"] == "c-1"
        assert set(rows[0]) == {
            "id", "workspace_id", "activity_type", "source_id", "target_id", "method",
            "summary", "request_body", "status", "created_at",
        }  # fmt: skip
        after = await http.get(f"/workspaces/{WS}/activity?since_id={rows[0]['id']}", headers=auth)
        assert [r["id"] for r in after.json()] == [second]
        assert (await http.get(f"/workspaces/{WS}/activity")).status_code == 401

        platform.prune_activity(WS, keep=1)
        gone = await http.get(f"/workspaces/{WS}/activity?since_id={rows[0]['id']}", headers=auth)
        assert gone.status_code == 410
        clock.now += 700
        third = platform.send_message(WS, "later")
        recent = await http.get(f"/workspaces/{WS}/activity?since_secs=600", headers=auth)
        assert [r["id"] for r in recent.json()] == [third]

        noted = await http.post(f"/workspaces/{WS}/notify", json={"message": "hi"}, headers=auth)
        assert noted.status_code == 200
        reply = await http.post(
            "/workspaces/ws-peer/a2a",
            json=send,
            headers={**auth, "X-Source-Workspace-Id": WS},
        )
        assert reply.json() == {"status": "delivered"}
        forged = await http.post(
            "/workspaces/ws-peer/a2a", json=send, headers={"X-Source-Workspace-Id": WS}
        )
        assert forged.status_code == 401  # a workspace speaks as itself only
    view = platform.view(WS) or {}
    assert [n["message"] for n in view["notifications"]] == ["hi"]
    assert [r["from"] for r in (platform.view("ws-peer") or {})["received"]] == [WS]
