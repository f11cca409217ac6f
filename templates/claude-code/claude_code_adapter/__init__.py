"""The claude-code template: Claude Code through claude-agent-sdk, served over A2A.

The adapter is ``ClaudeCodeAdapter`` (``adapter``); the other modules hold one
part each: ``settings``, ``sessions``, ``pool``, ``turn``, ``executor``,
``transcript``.
"""

from __future__ import annotations

from .adapter import ClaudeCodeAdapter
from .turn import TurnFailed

__all__ = ["ClaudeCodeAdapter", "TurnFailed"]
