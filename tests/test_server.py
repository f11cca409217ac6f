"""The runtime's own server: the socket is bound at once, served once uvicorn is up,
and a stop at any moment, even while uvicorn starts, ends the server."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from runtime_adapter.errors import RuntimeAdapterError
from runtime_adapter.health import Health
from runtime_adapter.server import ServerState, bind, build_app, serve

pytestmark = pytest.mark.anyio


def _app() -> Any:
    return build_app(ServerState(Health(), dict, booted=True))


async def test_a_connection_made_before_serving_waits_and_is_answered() -> None:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    async with httpx.AsyncClient(timeout=10) as http, anyio.create_task_group() as group:
        answers: list[int] = []

        async def ask() -> None:
            answers.append((await http.get(f"http://127.0.0.1:{port}/health/live")).status_code)

        group.start_soon(ask)  # the kernel accepts it; nobody serves yet
        await anyio.sleep(0.3)
        assert answers == []
        await group.start(serve, _app(), sock)
        with anyio.fail_after(5):
            while not answers:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        group.cancel_scope.cancel()
    assert answers == [200]


async def test_an_address_in_use_is_known_at_bind() -> None:
    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(RuntimeAdapterError, match=r"cannot listen on 127\.0\.0\.1"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


@pytest.mark.timeout(20)  # the bug this guards against hangs inside a shielded scope
async def test_a_stop_while_uvicorn_starts_ends_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    starting = anyio.Event()
    original = uvicorn.Server.startup

    async def slow_startup(self: Any, sockets: Any = None) -> None:
        starting.set()
        await anyio.sleep(0.5)  # a stop arrives now
        await original(self, sockets=sockets)

    monkeypatch.setattr(uvicorn.Server, "startup", slow_startup)
    sock = bind("127.0.0.1", 0)
    with anyio.fail_after(8):
        async with anyio.create_task_group() as group:
            group.start_soon(serve, _app(), sock)
            await starting.wait()
            group.cancel_scope.cancel()
    assert sock.fileno() == -1  # the listening socket is closed with it
