"""A2A contexts to Claude Code sessions, kept on a volume that outlives the container.

The Claude Code CLI stores a session as ``<CLAUDE_CONFIG_DIR>/projects/<cwd
slug>/<session id>.jsonl``. Pointing ``CLAUDE_CONFIG_DIR`` at a directory on
the workspace (or config) volume, instead of ``$HOME/.claude``, is what
lets a re-created container resume a conversation. A context's session id
is derived from the context id, so nothing else must survive; contexts
whose session had to be started afresh are remembered in ``contexts.json``.
All file work here is blocking: call it from a worker thread.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path

__all__ = ["SessionBook"]

_NAMESPACE = uuid.UUID("6f1d6c1e-8a0b-4c57-9a63-2f0f4d6b7e21")


class SessionBook:
    """Which Claude Code session an A2A context is, and whether the CLI still has it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._file = root / "contexts.json"
        self._lock = threading.Lock()  # turns of different contexts save side by side
        try:
            data = json.loads(self._file.read_text())
        except (OSError, ValueError):
            data = {}
        self._sessions: dict[str, str] = {
            str(k): str(v) for k, v in (data.items() if isinstance(data, dict) else [])
        }

    def session_for(self, context_id: str) -> str:
        """The session id of ``context_id`` (derived, or the one a restart chose)."""
        return self._sessions.get(context_id) or str(uuid.uuid5(_NAMESPACE, context_id))

    def path(self, session_id: str) -> Path | None:
        """The CLI's transcript file of ``session_id``, if it has one."""
        for found in (self.root / "projects").glob(f"*/{session_id}.jsonl"):
            return found
        return None

    def known(self, context_id: str) -> bool:
        """Whether this context had a session before (in this container or an earlier one)."""
        return context_id in self._sessions

    def remember(self, context_id: str, session_id: str) -> None:
        with self._lock:
            if self._sessions.get(context_id) != session_id:
                self._sessions[context_id] = session_id
                self._save()

    def start_afresh(self, context_id: str) -> str:
        """A new session for a context whose session the CLI no longer has."""
        fresh = str(uuid.uuid4())
        self.remember(context_id, fresh)
        return fresh

    def _save(self) -> None:
        temporary = self._file.with_suffix(f".{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(self._sessions))
        os.replace(temporary, self._file)

    def latest(self) -> Path | None:
        """The most recently written session transcript (the current conversation)."""
        files = list((self.root / "projects").glob("*/*.jsonl"))
        return max(files, key=lambda p: p.stat().st_mtime_ns) if files else None
