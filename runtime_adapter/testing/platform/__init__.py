"""The platform emulator (DESIGN §11), by concern: the registry (register, heartbeat,
update-card, tokens), workspaces and the A2A proxy with poll activity, and
faults; ``PlatformEmulator`` serves them as one ASGI app."""

from __future__ import annotations

from ._emulator import PlatformEmulator
from ._faults import Fault
from ._records import PlatformCall, WorkspaceRecord

__all__ = ["Fault", "PlatformCall", "PlatformEmulator", "WorkspaceRecord"]
