"""The A2A request handler: a2a-sdk's ``DefaultRequestHandler`` with the limits a
caller cannot exceed (DESIGN §12), and push notifications that never delay a task.

- A message whose text is longer than ``runtime_config.max_message_chars``,
  or that arrives while ``max_concurrent_turns + max_queued_turns`` turns are
  already running or waiting, is answered with a JSON-RPC error before any
  task exists.
- ``ListTasks`` needs a caller identity: with ``A2A_AUTH=none`` every caller
  is the same anonymous owner, so listing would hand one caller everyone's
  tasks. It is refused (UnsupportedOperation) with the remedy; ``GetTask`` of
  a task id (a random UUID the creator was given) keeps working.
- ``QueuedPush`` hands each state change to a few workers through a bounded
  queue (one worker per task, so a task's notifications stay in order); a
  slow or failing webhook costs its own worker's time, never the task's, and
  a full queue drops the notification with a warning, never memory.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

import anyio
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import PushNotificationEvent, PushNotificationSender
from a2a.types import a2a_pb2
from a2a.utils.errors import InternalError, InvalidParamsError, UnsupportedOperationError

log = logging.getLogger("runtime_adapter.templates.claude_code")

__all__ = ["Busy", "Handler", "QueuedPush"]


class Busy(InternalError):
    """Too many turns running and waiting: retry later."""


def _text_size(message: a2a_pb2.Message) -> int:
    size = 0
    for part in message.parts:
        size += len(part.text) + len(part.raw) + len(part.url)
        if part.HasField("data"):
            size += part.data.ByteSize()
    return size


class Handler(DefaultRequestHandler):
    """``DefaultRequestHandler`` that admits a message only within the limits."""

    def __init__(
        self,
        *args: Any,
        max_message_chars: int,
        max_waiting: int,
        waiting: Callable[[], int],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_message_chars = max_message_chars
        self.max_waiting = max_waiting
        self.waiting = waiting
        self.inflight = 0  # admitted sends not answered yet (their turns may not exist yet)

    def _admit(self, params: a2a_pb2.SendMessageRequest) -> None:
        size = _text_size(params.message)
        if size > self.max_message_chars:
            raise InvalidParamsError(
                message=f"the message is {size} characters long; at most "
                f"{self.max_message_chars} are accepted (runtime_config.max_message_chars)"
            )
        if max(self.waiting(), self.inflight) >= self.max_waiting:
            raise Busy(
                message=f"the workspace is busy: {self.max_waiting} turns are running or "
                "waiting (runtime_config.max_queued_turns); send it again later",
                data={"reason": "busy", "retry_after_seconds": 5},
            )

    async def on_message_send(
        self, params: a2a_pb2.SendMessageRequest, context: ServerCallContext
    ) -> Any:
        self._admit(params)
        self.inflight += 1
        try:
            return await super().on_message_send(params, context)
        finally:
            self.inflight -= 1

    async def on_message_send_stream(
        self, params: a2a_pb2.SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any, None]:
        self._admit(params)
        self.inflight += 1
        try:
            async for event in super().on_message_send_stream(params, context):
                yield event
        finally:
            self.inflight -= 1

    async def on_list_tasks(
        self, params: a2a_pb2.ListTasksRequest, context: ServerCallContext
    ) -> a2a_pb2.ListTasksResponse:
        if not context.user.is_authenticated:
            raise UnsupportedOperationError(
                message="ListTasks needs a caller identity, and A2A_AUTH=none has none: "
                "set A2A_AUTH=platform or bearer, or ask for one task with GetTask"
            )
        page: a2a_pb2.ListTasksResponse = await super().on_list_tasks(params, context)
        return page


class QueuedPush(PushNotificationSender):
    """Push notifications sent by ``workers`` tasks from a bounded queue, each
    within ``timeout`` seconds; ``run`` is the workers' loop (the adapter starts it)."""

    def __init__(
        self, sender: PushNotificationSender, *, workers: int = 4, size: int = 256
    ) -> None:
        self.sender = sender
        self.timeout = 15.0
        self._streams = [
            anyio.create_memory_object_stream[tuple[str, Any]](size) for _ in range(workers)
        ]
        self.dropped = 0

    async def send_notification(self, task_id: str, event: PushNotificationEvent) -> None:
        send, _ = self._streams[zlib.crc32(task_id.encode()) % len(self._streams)]
        try:
            send.send_nowait((task_id, event))
        except anyio.WouldBlock:
            self.dropped += 1
            log.warning("push notifications: the queue is full; dropped one for task %s", task_id)

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            for _, receive in self._streams:
                group.start_soon(self._work, receive)

    async def _work(self, receive: Any) -> None:
        async for task_id, event in receive:
            with anyio.move_on_after(self.timeout) as scope:
                try:
                    await self.sender.send_notification(task_id, event)
                except Exception:  # best effort, like the SDK's own sender
                    log.warning("push notification for task %s failed", task_id, exc_info=True)
            if scope.cancelled_caught:
                log.warning("push notification for task %s took over %.0f s", task_id, self.timeout)
