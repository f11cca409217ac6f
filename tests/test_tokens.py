"""The token is never lost: the file is re-read when it changes, a platform-issued
token is saved atomically 0600, and a read-only or full volume keeps it in memory."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from runtime_adapter import fingerprint
from runtime_adapter.tokens import TokenStore

TOKEN = "tok-aaaaaaaaaaaaaaaa"
ROTATED = "tok-bbbbbbbbbbbbbbbb"


def test_file_that_appears_or_changes_is_noticed(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    assert (store.refresh(), store.token) == (False, None)
    (tmp_path / ".auth_token").write_text(TOKEN + "\n")
    assert (store.refresh(), store.token) == (True, TOKEN)
    assert store.refresh() is False
    (tmp_path / ".auth_token").write_text(ROTATED + "\n")
    os.utime(tmp_path / ".auth_token", ns=(1, 1))  # a rewrite within the same mtime tick
    assert (store.refresh(), store.token) == (True, ROTATED)


def test_vanished_or_garbled_file_keeps_the_token(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    (tmp_path / ".auth_token").write_text(TOKEN)
    store.refresh()
    (tmp_path / ".auth_token").unlink()
    assert (store.refresh(), store.token) == (False, TOKEN)
    (tmp_path / ".auth_token").write_text("two tokens\n")
    assert (store.refresh(), store.token) == (False, TOKEN)


def test_save_is_atomic_0600_and_logs_only_a_fingerprint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = TokenStore(tmp_path)
    assert store.save(TOKEN) is True
    file = tmp_path / ".auth_token"
    assert file.read_text() == TOKEN + "\n"
    assert file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [".auth_token"]
    assert store.refresh() is False  # our own write is not a change
    assert TOKEN not in caplog.text
    assert fingerprint(TOKEN) in caplog.text


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_unwritable_volume_keeps_the_token_in_memory_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    (tmp_path / ".auth_token").write_text(TOKEN)
    store = TokenStore(tmp_path)
    store.refresh()

    def fail(*args: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", fail)
    assert store.save(ROTATED) is False
    assert (store.token, store.persisted) == (ROTATED, False)
    assert (tmp_path / ".auth_token").read_text() == TOKEN  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == [".auth_token"]
    assert "keeping it in memory" in caplog.text
    assert ROTATED not in caplog.text


def test_an_issued_token_is_never_written_into_a_source_tree(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'template'\n")
    store = TokenStore(tmp_path)
    assert store.save("issued-token-0123456789") is False
    assert store.token == "issued-token-0123456789"  # kept in memory, still used
    assert not (tmp_path / ".auth_token").exists()


def test_a_token_file_others_can_read_is_saved_again_0600(tmp_path: Path) -> None:
    """DESIGN §13: the provisioner may write the token for anyone to read; the runtime
    rewrites it for itself alone, keeping the token."""
    (tmp_path / ".auth_token").write_text("provisioned-token-1234\n")
    (tmp_path / ".auth_token").chmod(0o644)
    store = TokenStore(tmp_path)
    assert store.refresh() is True
    assert store.token == "provisioned-token-1234"
    assert (tmp_path / ".auth_token").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / ".auth_token").read_text() == "provisioned-token-1234\n"
