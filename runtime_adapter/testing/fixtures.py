"""pytest fixtures for the platform emulator, for this project and template authors.

Registered as a pytest plugin (entry point ``pytest11``): installing the package
is enough, no ``pytest_plugins`` line. ``platform_client`` drives the emulator
in-process through ``httpx.ASGITransport``; ``platform_url`` serves it on a
loopback port; ``respx_platform`` puts it behind respx's ``respx_mock`` at
``http://platform.test``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from ._respx import mock_platform
from ._serve import serve_in_thread
from .platform import PlatformEmulator

__all__ = ["platform_client", "platform_emulator", "platform_url", "respx_platform"]


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


@pytest.fixture
def respx_platform(respx_mock: Any) -> PlatformEmulator:
    """The emulator at ``http://platform.test`` behind respx (needs respx installed)."""
    return mock_platform(respx_mock, "http://platform.test")
