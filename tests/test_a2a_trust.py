"""Who may send work, and what a caller can rely on (DESIGN §7, §12): ``run`` + the
claude-code template + the real CLI, driven by a2a-sdk's client and raw JSON-RPC.

- ``A2A_AUTH=bearer``: no token or a wrong one is 401 (``WWW-Authenticate``,
  a JSON-RPC error) and nothing reaches the agent; a listed token is served;
  a task belongs to its caller (another caller cannot get, cancel or list it).
- ``A2A_AUTH=platform``: the emulator's minted inbound secret is on disk 0600,
  accepted, and in no log. ``none``: ``ListTasks`` is refused.
- Limits: a 200 MiB body is 413 with the runtime's RSS barely moving; a long
  message and a full queue are JSON-RPC errors.
- Tasks outlive the process: completed before a SIGTERM restart, still there;
  working at a SIGKILL, failed after the next boot; a corrupt database is a
  reported config error and the runtime still answers.
- Push: a local webhook gets ``working`` and ``completed`` with the configured
  ``Authorization``; a webhook at a metadata address is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.types import (
    AuthenticationInfo,
    SendMessageConfiguration,
    TaskPushNotificationConfig,
    TaskState,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtime_adapter import fingerprint
from runtime_adapter.testing import serve_in_thread

from .harness import KEY, WS, wait_for
from .test_claude_code_a2a import (
    CLI_TESTS_TIMEOUT,
    Workspace,
    answer_text,
    cli_children,
    final_task,
    message,
    turns,
    world_at,
)

pytestmark = [pytest.mark.slow, CLI_TESTS_TIMEOUT]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with world_at(tmp_path) as world:
        yield world


ALICE, BOB = "alice-token-0b1e5c7d9f", "bob-token-77aa3c1e20"


def rpc(url: str, method: str, params: dict[str, Any], token: str | None = None) -> httpx.Response:
    headers = {b"A2A-Version": b"1.0"}
    if token:
        headers[b"Authorization"] = f"Bearer {token}".encode()  # UTF-8, as a caller may
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx.post(url + "/", json=body, headers=headers, timeout=60)


def send_body(text: str, context_id: str | None = None) -> dict[str, Any]:
    return {
        "message": {
            "messageId": str(uuid.uuid4()),
            "contextId": context_id or str(uuid.uuid4()),
            "role": "ROLE_USER",
            "parts": [{"text": text}],
        }
    }


def send_as(url: str, token: str | None, text: str, **config: Any) -> Any:
    """One message through a2a-sdk's client, presenting ``token``: the final task."""

    async def send() -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(timeout=120, headers=headers) as http:
            factory = ClientFactory(ClientConfig(streaming=False, httpx_client=http))
            agent = await factory.create_from_url(url)
            try:
                request = message(text, str(uuid.uuid4()))
                if config:
                    request.configuration.CopyFrom(SendMessageConfiguration(**config))
                return final_task([event async for event in agent.send_message(request)])
            finally:
                await agent.close()

    return anyio.run(send)


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


# -- who may send work -------------------------------------------------------------


def test_bearer_mode_refuses_strangers_and_scopes_tasks_to_their_caller(
    workspace: Workspace,
) -> None:
    process = workspace.start(A2A_AUTH="bearer", A2A_BEARER_TOKENS=f"{ALICE},{BOB}")
    url = workspace.url
    before = len(turns(workspace.llm))

    # the card stays public and says what to present
    card = httpx.get(url + "/.well-known/agent-card.json", timeout=5).json()
    assert card["securitySchemes"] == {
        "bearer": {
            "httpAuthSecurityScheme": {
                "scheme": "Bearer",
                "description": "a token the workspace's operator issued",
            }
        }
    }
    assert card["securityRequirements"] == [{"schemes": {"bearer": {"list": []}}}]
    assert httpx.get(url + "/health", timeout=5).status_code == 200

    for presented in (None, "not-a-listed-token-5d1f", "bearer-ünïcode"):
        answer = rpc(url, "SendMessage", send_body("hello"), token=presented)
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["error"]["code"] == -32600
    assert len(turns(workspace.llm)) == before  # nothing reached the agent

    task = send_as(url, ALICE, "hello from alice")
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert "pong" in answer_text(task)

    # bob cannot see, cancel or list alice's task; alice can
    for method in ("GetTask", "CancelTask"):
        refused = rpc(url, method, {"id": task.id}, token=BOB).json()
        assert refused["error"]["code"] == -32001, refused  # task not found
    assert rpc(url, "ListTasks", {}, token=BOB).json()["result"].get("tasks", []) == []
    mine = rpc(url, "ListTasks", {}, token=ALICE).json()["result"]["tasks"]
    assert [t["id"] for t in mine] == [task.id]
    got = rpc(url, "GetTask", {"id": task.id}, token=ALICE).json()["result"]
    assert got["status"]["state"] == "TASK_STATE_COMPLETED"

    output = process.stop_and_output()
    assert fingerprint("not-a-listed-token-5d1f") in output  # refused, by fingerprint
    for secret in (ALICE, BOB, "not-a-listed-token-5d1f"):
        assert secret not in output


def test_platform_mode_accepts_the_minted_inbound_secret_kept_0600(
    workspace: Workspace,
) -> None:
    process = workspace.start(A2A_AUTH="platform")
    secret_file = workspace.root / "configs" / ".platform_inbound_secret"
    wait_for(secret_file.exists)
    minted = workspace.emulator.workspaces[WS].inbound_secret
    assert minted
    assert secret_file.read_text().strip() == minted
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    refused = rpc(workspace.url, "SendMessage", send_body("hi"), token="guess")
    assert refused.status_code == 401
    task = send_as(workspace.url, minted, "hello from the platform")
    assert task.status.state == TaskState.TASK_STATE_COMPLETED

    output = process.stop_and_output()
    assert minted not in output
    assert fingerprint(minted) in output  # saved, by fingerprint


@pytest.mark.unmeasured
def test_without_auth_list_tasks_is_refused_but_get_task_works(
    workspace: Workspace,
) -> None:
    workspace.start()
    task = send_as(workspace.url, None, "hello")
    listed = rpc(workspace.url, "ListTasks", {}).json()
    assert listed["error"]["code"] == -32004, listed
    assert "A2A_AUTH" in listed["error"]["message"]
    got = rpc(workspace.url, "GetTask", {"id": task.id}).json()["result"]
    assert got["status"]["state"] == "TASK_STATE_COMPLETED"


# -- limits ------------------------------------------------------------------------


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b" " * piece
        sent += piece


@pytest.mark.unmeasured
def test_a_200_mib_body_is_413_without_growing_the_runtime(workspace: Workspace) -> None:
    process = workspace.start(A2A_MAX_REQUEST_BYTES=str(1 << 20))
    pid = process.popen.pid
    rss_before, _ = rss_kib(pid)
    size = 200 << 20
    with httpx.Client(timeout=60) as http:
        declared = http.post(
            workspace.url + "/",
            content=_chunks(size),
            headers={"Content-Length": str(size), "Content-Type": "application/json"},
        )
        chunked = http.post(
            workspace.url + "/", content=_chunks(size), headers={"Content-Type": "application/json"}
        )
    for answer in (declared, chunked):
        assert answer.status_code == 413, answer.text
        assert "A2A_MAX_REQUEST_BYTES" in answer.json()["error"]["message"]
    rss_after, peak = rss_kib(pid)
    assert rss_after - rss_before < 20 * 1024, (rss_before, rss_after)
    assert peak - rss_before < 20 * 1024, (rss_before, peak)
    assert httpx.get(workspace.url + "/health", timeout=5).status_code == 200


@pytest.mark.unmeasured
def test_a_long_message_and_a_full_queue_are_json_rpc_errors(workspace: Workspace) -> None:
    workspace.start("  max_message_chars: 1000\n  max_queued_turns: 1\n  max_concurrent_turns: 1\n")
    workspace.llm.delay = 3  # each turn takes a while
    long = rpc(workspace.url, "SendMessage", send_body("x" * 1001)).json()
    assert long["error"]["code"] == -32602
    assert "max_message_chars" in long["error"]["message"]

    answers: list[dict[str, Any]] = []

    def one() -> None:
        answers.append(rpc(workspace.url, "SendMessage", send_body("hi")).json())

    threads = [threading.Thread(target=one) for _ in range(4)]
    for index, thread in enumerate(threads):  # one runs, one waits, two find the queue full
        thread.start()
        if index == 0:
            wait_for(lambda: workspace.llm.in_flight > 0, timeout=60)
        time.sleep(0.3)
    for thread in threads:
        thread.join(60)
    busy = [a for a in answers if "error" in a]
    assert len(busy) == 2, answers
    assert all("max_queued_turns" in a["error"]["message"] for a in busy), answers
    assert sum("result" in a for a in answers) == 2, answers  # one running, one waiting


# -- tasks outlive the process -----------------------------------------------------


@pytest.mark.unmeasured
def test_a_completed_task_survives_a_restart(workspace: Workspace) -> None:
    first = workspace.start()
    task = send_as(workspace.url, None, "remember me")
    assert first.stop() == 0
    database = workspace.root / "configs" / ".a2a" / "tasks.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700

    workspace.start()
    got = rpc(workspace.url, "GetTask", {"id": task.id}).json()["result"]
    assert got["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "pong" in json.dumps(got["artifacts"])


def test_a_task_working_at_a_sigkill_is_failed_after_the_next_boot(
    workspace: Workspace,
) -> None:
    first = workspace.start()
    workspace.llm.delay = 8  # the turn is still running when the process dies
    body = send_body("a long job")
    body["configuration"] = {"returnImmediately": True}
    started = rpc(workspace.url, "SendMessage", body).json()["result"]["task"]
    wait_for(lambda: workspace.llm.in_flight > 0, timeout=60)
    clis = cli_children(first)
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait(10)
    for pid in clis:  # a SIGKILLed runtime cannot stop its CLI: the test does
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    workspace.processes.remove(first)  # it did not stop: it was killed
    output, _ = first.popen.communicate(timeout=10)
    assert KEY not in output
    workspace.llm.delay = 0
    wait_for(lambda: workspace.llm.in_flight == 0, timeout=30)  # the dead CLI's call

    workspace.start()
    got = rpc(workspace.url, "GetTask", {"id": started["id"]}).json()["result"]
    assert got["status"]["state"] == "TASK_STATE_FAILED"
    assert "interrupted by a restart" in json.dumps(got["status"]["message"])


def test_a_corrupt_task_database_is_reported_and_the_runtime_still_answers(
    workspace: Workspace,
) -> None:
    database = workspace.root / "configs" / ".a2a" / "tasks.db"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"this is not a database" * 100)
    workspace.start()
    health = httpx.get(workspace.url + "/health", timeout=5).json()
    assert str(database) in health["sample_error"], health
    assert health["sample_error_detail"]["kind"] == "config_error"
    assert health["runtime_state"] == ""  # a warning: the workspace works
    task = send_as(workspace.url, None, "still there?")
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    wait_for(lambda: str(database) in (workspace.view().get("last_sample_error") or ""))


# -- push --------------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.posts: list[tuple[str | None, dict[str, Any]]] = []
        self.lock = threading.Lock()

        async def hook(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                self.posts.append((request.headers.get("authorization"), body))
            return JSONResponse({})

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def states(self) -> list[str]:
        with self.lock:
            return [json.dumps(body) for _, body in self.posts]


def test_push_reaches_a_local_webhook_and_a_metadata_address_is_refused(
    workspace: Workspace,
) -> None:
    receiver = Receiver()
    with serve_in_thread(receiver.app) as hook_url:
        workspace.start(push=True)
        card = httpx.get(workspace.url + "/.well-known/agent-card.json", timeout=5).json()
        assert card["capabilities"]["pushNotifications"] is True
        push = TaskPushNotificationConfig(
            url=hook_url + "/hook",
            authentication=AuthenticationInfo(scheme="Bearer", credentials="hook-secret-1"),
        )
        task = send_as(workspace.url, None, "notify me", task_push_notification_config=push)
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        wait_for(lambda: any("TASK_STATE_COMPLETED" in s for s in receiver.states()))
        states = receiver.states()
        assert any("TASK_STATE_WORKING" in s for s in states), states
        assert {auth for auth, _ in receiver.posts} == {"Bearer hook-secret-1"}

        body = send_body("metadata?")
        body["configuration"] = {
            "taskPushNotificationConfig": {"url": "http://169.254.169.254/latest/meta-data/"}
        }
        refused = rpc(workspace.url, "SendMessage", body).json()
        assert refused["error"]["code"] == -32602, refused
