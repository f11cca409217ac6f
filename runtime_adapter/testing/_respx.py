"""The platform emulator behind a respx router, for template authors' unit tests.

``mock_platform(respx_mock, "http://platform.test")`` routes every request
under that URL to a fresh ``PlatformEmulator``, so a test that mocks httpx
with respx meets the real server's rules (tokens, URL validation, status,
faults, the recorder) instead of hand-written answers. The emulator is an
ASGI app: only ``httpx.AsyncClient`` requests reach it (the package's own
platform client is async).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .platform import PlatformEmulator

if TYPE_CHECKING:
    import respx

__all__ = ["mock_platform"]


def mock_platform(
    router: respx.MockRouter,
    url: str = "http://platform.test",
    *,
    deploy_mode: str = "local",
    **emulator: Any,
) -> PlatformEmulator:
    """Route ``url``'s ``/registry/*``, ``/workspaces/*`` and ``/health`` on ``router``
    to a new emulator and return it (its ``calls``, ``view()``, ``fail_next()`` ...).

    ``url`` is a scheme and host (and port), no path: the wire paths are the
    platform's own (``POST /registry/register``, ``/registry/heartbeat``,
    ``/registry/update-card``; ``GET /workspaces/{id}``).
    """
    import respx as _respx

    platform = PlatformEmulator(deploy_mode=deploy_mode, **emulator)
    handler = _respx.ASGIHandler(platform.app)
    router.route(url__startswith=url.rstrip("/") + "/").mock(side_effect=handler)
    return platform
