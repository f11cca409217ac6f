"""The claude-code template's task database on disk (DESIGN §12, §13): it holds every
caller's prompts and webhook credentials, so it is the runtime's alone (directory
0700, files 0600) and a symbolic link in its place is refused, never followed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

tasks = pytest.importorskip("claude_code_adapter.tasks")

pytestmark = pytest.mark.anyio


async def test_the_database_and_its_wal_are_the_runtimes_alone(tmp_path: Path) -> None:
    where = tmp_path / ".a2a"
    where.mkdir(mode=0o755)  # made by an earlier release, or by hand
    where.chmod(0o755)
    database = await tasks.open_tasks(where / "tasks.db", retention_count=10)
    try:
        assert database.problem is None
        assert stat.S_IMODE(where.stat().st_mode) == 0o700
        for name in ("tasks.db", "tasks.db-wal", "tasks.db-shm"):
            found = where / name
            if found.exists():
                assert stat.S_IMODE(found.stat().st_mode) == 0o600, name
        assert (where / "tasks.db-wal").exists()  # WAL mode: the file the rows go to first
    finally:
        await database.aclose()


@pytest.mark.parametrize("planted", ["tasks.db", "tasks.db-wal"])
async def test_a_symbolic_link_in_the_databases_place_is_refused(
    tmp_path: Path, planted: str
) -> None:
    where = tmp_path / ".a2a"
    where.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("the runtime's token, say")
    target.chmod(0o644)
    (where / planted).symlink_to(target)
    database = await tasks.open_tasks(where / "tasks.db", retention_count=10)
    assert database.engine is None  # in memory: the runtime goes on answering
    assert "symbolic link" in str(database.problem)
    assert target.read_text() == "the runtime's token, say"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # never chmod-ed through the link
