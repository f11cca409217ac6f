"""Test helpers that ship with the package, for this project and for template authors.

``PlatformEmulator`` behaves like the Molecule workspace server's registry;
``FakeLLM`` like an Anthropic-compatible endpoint. Fixtures for both ways of
driving the emulator are in ``runtime_adapter.testing.fixtures``, a pytest
plugin loaded by itself once the package is installed; ``mock_platform`` puts
the emulator behind a respx router.
"""

from __future__ import annotations

from ._a2a import message_send
from ._respx import mock_platform
from ._serve import free_port, serve_in_thread, wait_until
from .conformance import check_adapter
from .echo import EchoAdapter
from .fake_llm import FakeLLM, LLMRequest
from .platform import Fault, PlatformCall, PlatformEmulator, WorkspaceRecord
from .virtual_time import VirtualTime

__all__ = [
    "EchoAdapter",
    "FakeLLM",
    "Fault",
    "LLMRequest",
    "PlatformCall",
    "PlatformEmulator",
    "VirtualTime",
    "WorkspaceRecord",
    "check_adapter",
    "free_port",
    "message_send",
    "mock_platform",
    "serve_in_thread",
    "wait_until",
]
