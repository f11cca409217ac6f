"""The platform bearer token: read from ``.auth_token``, noticed when it changes,
saved atomically (0600) when the platform issues one. The same store keeps the
``platform_inbound_secret`` (DESIGN §7) in ``.platform_inbound_secret``.

The provisioner rewrites the file on every restart and revokes the old
token, so the file is the source of truth: ``refresh`` re-reads it when its
identity (inode, size, mtime) changes. A token the platform issued is kept
in memory first, then written; a read-only or full volume costs a warning,
never the token. The value is never logged: fingerprints only.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import VolumeError, fingerprint
from .volume import TOKEN_FILE, read_secret_file

__all__ = ["TokenStore"]

log = logging.getLogger(__name__)


class TokenStore:
    """The current token of one workspace, backed by ``<config_dir>/.auth_token``.

    Blocking file I/O: call ``refresh`` and ``save`` from a worker thread in
    async code.
    """

    def __init__(
        self,
        config_dir: Path,
        *,
        on_token: Callable[[str], None] | None = None,
        file: str = TOKEN_FILE,
        what: str = "platform token",
    ) -> None:
        self.path = config_dir / file
        self.what = what
        self.on_token = on_token  # e.g. teach the log redactor the new value
        self._token: str | None = None
        self._signature: tuple[int, int, int] | None = None
        self.persisted = True

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(self._token) if self._token else None

    def _adopt(self, token: str) -> None:
        if self.on_token is not None:
            self.on_token(token)
        self._token = token

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def refresh(self) -> bool:
        """Re-read the file if it appeared or changed; True when the token changed.

        A file that vanished or is unreadable keeps the token in memory: a
        provisioner mid-rewrite must not make us forget it.
        """
        signature = self._stat()
        if signature is None or signature == self._signature:
            return False
        try:
            token = read_secret_file(self.path)
        except VolumeError as error:
            log.warning("%s file unusable, keeping the one in memory: %s", self.what, error)
            return False
        self._signature = signature
        if token is not None and self._readable_by_others():
            # the provisioner wrote it for anyone to read: the agent must not (§13)
            changed = token != self._token
            try:
                os.chmod(self.path, 0o600)  # ours: just the mode
                log.info("%s was readable by other users; its mode is now 0600", self.path)
                self._signature = self._stat()
            except OSError:
                # not ours (the provisioner's): our own copy replaces it
                log.info("%s was readable by other users; saving it again 0600", self.path)
                self.save(token)  # adopts it too
                return changed
            if changed:
                self._adopt(token)
            return changed
        if token is None or token == self._token:
            return False
        self._adopt(token)
        log.info("%s loaded from %s (%s)", self.what, self.path, self.fingerprint)
        return True

    def _readable_by_others(self) -> bool:
        try:
            return bool(self.path.stat().st_mode & 0o077)
        except OSError:
            return False

    def save(self, token: str) -> bool:
        """Adopt a platform-issued token and persist it atomically with mode 0600.

        Returns False (token kept in memory, warning logged) when the volume
        cannot take it: read-only, full, or not writable by this user.
        """
        self._adopt(token)
        directory = self.path.parent
        if (directory / "pyproject.toml").exists() or (directory / ".git").exists():
            # a source checkout used as the volume (run on a template directory): a
            # platform token must not land in a tree that gets committed
            self.persisted = False
            log.info(
                "%s looks like a source tree (pyproject.toml or .git): the %s "
                "(%s) is kept in memory, not written there",
                directory,
                self.what,
                self.fingerprint,
            )
            return False
        temporary: str | None = None
        try:
            handle, temporary = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
            try:
                os.fchmod(handle, 0o600)
                os.write(handle, (token + "\n").encode())
                os.fsync(handle)
            finally:
                os.close(handle)
            os.replace(temporary, self.path)
        except OSError as error:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            self.persisted = False
            log.warning(
                "cannot save the %s (%s) to %s: %s; keeping it in memory, "
                "it is lost on restart unless the platform sends it again",
                self.what,
                self.fingerprint,
                self.path,
                error.strerror or error,
            )
            return False
        self.persisted = True
        self._signature = self._stat()
        log.info("%s saved to %s (%s)", self.what, self.path, self.fingerprint)
        return True
