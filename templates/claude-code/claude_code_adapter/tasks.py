"""Tasks that outlive the process (DESIGN §12): a2a-sdk's ``DatabaseTaskStore`` (and,
with push notifications on, its ``DatabasePushNotificationConfigStore``) on SQLite.

The database holds every caller's prompts and answers and the credentials of
their webhooks, so it lives with the runtime's own files on the config volume
(``<config>/.a2a/tasks.db``, directory 0700, file 0600), not in the sessions
directory the agent's user owns. It is created on first use. After a boot, a
task that was ``submitted`` or ``working`` when the last process died is
``failed`` ("interrupted by a restart"), never left working. Retention keeps
finished tasks for ``task_retention_days`` and at most ``task_retention_count``
of them (``runtime_config``), pruned through aiosqlite's thread, never on the
event loop. A database that cannot be opened (corrupt, unwritable, a
directory) is a config error naming the file; the tasks then live in memory
(bounded by the same count) and the runtime goes on answering.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from a2a.server.tasks import (
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    PushNotificationConfigStore,
    TaskStore,
)
from a2a.types import a2a_pb2

log = logging.getLogger("runtime_adapter.templates.claude_code")

__all__ = ["INTERRUPTED", "TaskDatabase", "open_tasks"]

INTERRUPTED = "interrupted by a restart"
_LIVE = ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
_OPEN_SECONDS = 20.0


@dataclass
class TaskDatabase:
    """Where the tasks are: ``engine`` None means memory (``problem`` says why)."""

    tasks: TaskStore
    push_configs: PushNotificationConfigStore
    path: Path | None = None
    engine: Any = None
    problem: str | None = None
    interrupted: int = 0
    created: int = field(default=0)  # tasks created since the last prune

    async def prune(self, max_age_days: float, max_count: int) -> int:
        """Drop finished tasks older than ``max_age_days`` and beyond the newest
        ``max_count``, with their push configs; the number dropped."""
        self.created = 0
        if self.engine is None:
            return _prune_memory(self.tasks, max_count)
        from a2a.server.models import PushNotificationConfigModel, TaskModel
        from sqlalchemy import delete, select

        state = TaskModel.status["state"].as_string()
        finished = state.not_in(_LIVE)
        cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=max_age_days)
        newest = (
            select(TaskModel.id)
            .where(finished)
            .order_by(TaskModel.last_updated.desc())
            .limit(max_count)
        )
        async with self.engine.begin() as conn:
            old = await conn.execute(
                delete(TaskModel).where(finished, TaskModel.last_updated < cutoff)
            )
            many = await conn.execute(
                delete(TaskModel).where(finished, TaskModel.id.not_in(newest))
            )
            await conn.execute(
                delete(PushNotificationConfigModel).where(
                    PushNotificationConfigModel.task_id.not_in(select(TaskModel.id))
                )
            )
        dropped = int(old.rowcount or 0) + int(many.rowcount or 0)
        if dropped:
            log.info("task retention: dropped %s finished task(s)", dropped)
        return dropped

    async def aclose(self) -> None:
        if self.engine is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self.engine.dispose()


def _memory(problem: str | None, path: Path | None) -> TaskDatabase:
    return TaskDatabase(
        tasks=InMemoryTaskStore(),
        push_configs=InMemoryPushNotificationConfigStore(),
        path=path,
        problem=problem,
    )


def _prune_memory(store: TaskStore, max_count: int) -> int:
    """The in-memory fallback keeps the newest ``max_count`` tasks of each owner."""
    dropped = 0
    owners: dict[str, dict[str, a2a_pb2.Task]] = getattr(store, "tasks", {})
    for tasks in owners.values():
        finished = [
            key
            for key, task in tasks.items()
            if a2a_pb2.TaskState.Name(task.status.state) not in _LIVE
        ]
        for key in finished[: max(0, len(finished) - max_count)]:  # dicts keep order
            del tasks[key]
            dropped += 1
    return dropped


def _prepare(path: Path) -> None:
    """The database's directory 0700 and file 0600, made or narrowed here; a symbolic
    link in their place (planted by whoever could write there) is refused, never
    followed: the file holds every caller's prompts and webhook credentials. SQLite
    gives its ``-wal`` and ``-shm`` files the database file's mode."""
    directory = path.parent
    if directory.is_symlink():
        raise OSError(f"{directory} is a symbolic link")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_uid == os.geteuid():
        directory.chmod(0o700)
    for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if each.is_symlink():
            raise OSError(f"{each} is a symbolic link")
    if path.exists() and not path.is_file():
        raise OSError(f"{path} is not a file")
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


async def open_tasks(path: Path, *, retention_count: int) -> TaskDatabase:
    """The task database at ``path``, created if missing, its interrupted tasks failed;
    memory (with ``problem`` set) when it cannot be used."""
    try:
        await anyio.to_thread.run_sync(_prepare, path)
    except OSError as error:
        return _memory(f"cannot create {path}: {error.strerror or error}", path)
    try:
        from a2a.server.tasks import DatabaseTaskStore
        from a2a.server.tasks.database_push_notification_config_store import (
            DatabasePushNotificationConfigStore,
        )
        from sqlalchemy import event
        from sqlalchemy.exc import SQLAlchemyError
        from sqlalchemy.ext.asyncio import create_async_engine
    except ImportError:
        return _memory("the sqlite extra of a2a-sdk is not installed (a2a-sdk[sqlite])", path)
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    database = TaskDatabase(
        tasks=DatabaseTaskStore(engine),
        push_configs=DatabasePushNotificationConfigStore(engine),
        path=path,
        engine=engine,
    )
    try:
        with anyio.fail_after(_OPEN_SECONDS):
            await database.tasks.initialize()  # type: ignore[attr-defined]
            await database.push_configs.initialize()  # type: ignore[attr-defined]
            database.interrupted = await _fail_interrupted(engine)
            await database.prune(3650, retention_count)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        await database.aclose()
        reason = str(getattr(error, "orig", None) or error.__class__.__name__).splitlines()[0]
        return _memory(f"{path} cannot be used as the task database: {reason[:200]}", path)
    if database.interrupted:
        log.warning(
            "%s task(s) were running when the last process ended: now failed (%s)",
            database.interrupted,
            INTERRUPTED,
        )
    return database


async def _fail_interrupted(engine: Any) -> int:
    """Every task left ``submitted``/``working`` by a process that died is ``failed``."""
    from a2a.server.models import TaskModel
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession

    now = datetime.now(UTC)
    async with AsyncSession(engine) as session, session.begin():
        rows = (
            await session.execute(
                select(TaskModel).where(TaskModel.status["state"].as_string().in_(_LIVE))
            )
        ).scalars()
        count = 0
        for row in rows:
            row.status = {  # type: ignore[assignment]
                "state": "TASK_STATE_FAILED",
                "message": {
                    "messageId": str(uuid.uuid4()),
                    "contextId": row.context_id,
                    "taskId": row.id,
                    "role": "ROLE_AGENT",
                    "parts": [{"text": f"failed: {INTERRUPTED}"}],
                },
                "timestamp": now.isoformat().replace("+00:00", "Z"),
            }
            row.last_updated = now.replace(tzinfo=None)
            count += 1
    return count
