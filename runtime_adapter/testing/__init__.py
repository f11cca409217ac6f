"""Test helpers that ship with the package, for this project and for template authors.

``PlatformEmulator`` behaves like the Molecule workspace server's registry;
``FakeLLM`` like an Anthropic-compatible endpoint. Fixtures for both ways of
driving the emulator are in ``runtime_adapter.testing.fixtures``, a pytest
plugin loaded by itself once the package is installed; ``mock_platform`` puts
the emulator behind a respx router.

Each name is imported when first used: a workspace whose adapter is
``runtime_adapter.testing.echo`` does not pay for uvicorn, the emulator and the
fake LLM at boot (~30 ms).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._a2a import message_send
    from ._respx import mock_platform
    from ._serve import free_port, serve_in_thread, wait_until
    from .conformance import check_adapter
    from .echo import EchoAdapter
    from .fake_llm import FakeLLM, LLMRequest, ToolUse, last_user_text
    from .platform import Fault, PlatformCall, PlatformEmulator, WorkspaceRecord
    from .virtual_time import VirtualTime

_WHERE = {
    "message_send": "._a2a",
    "mock_platform": "._respx",
    "free_port": "._serve",
    "serve_in_thread": "._serve",
    "wait_until": "._serve",
    "check_adapter": ".conformance",
    "EchoAdapter": ".echo",
    "FakeLLM": ".fake_llm",
    "LLMRequest": ".fake_llm",
    "ToolUse": ".fake_llm",
    "last_user_text": ".fake_llm",
    "Fault": ".platform",
    "PlatformCall": ".platform",
    "PlatformEmulator": ".platform",
    "WorkspaceRecord": ".platform",
    "VirtualTime": ".virtual_time",
}

__all__ = [
    "EchoAdapter",
    "FakeLLM",
    "Fault",
    "LLMRequest",
    "PlatformCall",
    "PlatformEmulator",
    "ToolUse",
    "VirtualTime",
    "WorkspaceRecord",
    "check_adapter",
    "free_port",
    "last_user_text",
    "message_send",
    "mock_platform",
    "serve_in_thread",
    "wait_until",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
