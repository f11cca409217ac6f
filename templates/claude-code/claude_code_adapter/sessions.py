"""A2A contexts to Claude Code sessions, kept on a volume that outlives the container.

The Claude Code CLI stores a session as ``<CLAUDE_CONFIG_DIR>/projects/<cwd
slug>/<session id>.jsonl``. Pointing ``CLAUDE_CONFIG_DIR`` at a directory on
the workspace (or config) volume, instead of ``$HOME/.claude``, is what
lets a re-created container resume a conversation. A context's session id
is derived from the context id, so nothing else must survive; the book
remembers which contexts it has seen and which had to start afresh, in an
append-only journal (``contexts.jsonl``) that is compacted to the newest
``limit`` contexts when it holds twice that: a new context costs one short
append, never a rewrite of every context, and neither memory nor the file
grows without bound. All file work here is blocking: call it from a worker
thread.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

__all__ = ["SessionBook"]

_NAMESPACE = uuid.UUID("6f1d6c1e-8a0b-4c57-9a63-2f0f4d6b7e21")
LIMIT = 10_000


class SessionBook:
    """Which Claude Code session an A2A context is, and whether the CLI still has it."""

    def __init__(self, root: Path, *, limit: int = LIMIT) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.limit = limit
        self._journal = root / "contexts.jsonl"
        self._lock = threading.Lock()  # turns of different contexts save side by side
        # context id -> its session id, least recently seen first
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._lines = 0
        self._load()

    def _load(self) -> None:
        old = self.root / "contexts.json"  # the earlier whole-file format
        try:
            data = json.loads(old.read_text())
            for context, session in data.items() if isinstance(data, dict) else []:
                self._sessions[str(context)] = str(session)
        except (OSError, ValueError):
            pass
        try:
            with self._journal.open(encoding="utf-8", errors="replace") as journal:
                for line in journal:
                    self._lines += 1
                    try:
                        context, session = json.loads(line)
                    except (ValueError, TypeError):
                        continue  # a torn last line after a crash
                    self._sessions.pop(str(context), None)
                    self._sessions[str(context)] = str(session)
        except OSError:
            pass
        while len(self._sessions) > self.limit:
            self._sessions.popitem(last=False)

    def __len__(self) -> int:
        return len(self._sessions)

    @staticmethod
    def derived(context_id: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, context_id))

    def session_for(self, context_id: str) -> str:
        """The session id of ``context_id`` (derived, or the one a restart chose)."""
        return self._sessions.get(context_id) or self.derived(context_id)

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
            if self._sessions.get(context_id) == session_id:
                self._sessions.move_to_end(context_id)
                return
            self._sessions.pop(context_id, None)
            self._sessions[context_id] = session_id
            if len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)
            with self._journal.open("a", encoding="utf-8") as journal:
                journal.write(json.dumps([context_id, session_id]) + "\n")
            self._lines += 1
            if self._lines >= 2 * self.limit:
                self._compact()

    def start_afresh(self, context_id: str) -> str:
        """A new session for a context whose session the CLI no longer has."""
        fresh = str(uuid.uuid4())
        self.remember(context_id, fresh)
        return fresh

    def _compact(self) -> None:
        temporary = self._journal.with_suffix(f".{threading.get_ident()}.tmp")
        with temporary.open("w", encoding="utf-8") as out:
            for context, session in self._sessions.items():
                out.write(json.dumps([context, session]) + "\n")
        os.replace(temporary, self._journal)
        self._lines = len(self._sessions)
        (self.root / "contexts.json").unlink(missing_ok=True)

    def latest(self) -> Path | None:
        """The most recently written session transcript (the current conversation)."""
        files = list((self.root / "projects").glob("*/*.jsonl"))
        return max(files, key=lambda p: p.stat().st_mtime_ns) if files else None
