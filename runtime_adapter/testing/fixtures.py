"""pytest fixtures for the platform emulator, for this project and template authors.

Enable with ``pytest_plugins = ["runtime_adapter.testing.fixtures"]`` in a
conftest.py. ``platform_client`` drives the emulator in-process through
``httpx.ASGITransport``; ``platform_url`` serves it on a loopback port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from ._serve import serve_in_thread
from .platform import PlatformEmulator

__all__ = ["platform_client", "platform_emulator", "platform_url"]


@pytest.fixture
def platform_emulator() -> PlatformEmulator:
    """A fresh emulator in ``local`` deploy mode (loopback URLs accepted)."""
    return PlatformEmulator(deploy_mode="local")


@pytest.fixture
async def platform_client(platform_emulator: PlatformEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` wired to the emulator in-process (needs the anyio plugin)."""
    transport = httpx.ASGITransport(app=platform_emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
        yield client


@pytest.fixture
def platform_url(platform_emulator: PlatformEmulator) -> Iterator[str]:
    """The emulator served by uvicorn on 127.0.0.1; yields its base URL."""
    with serve_in_thread(platform_emulator.app) as url:
        yield url
