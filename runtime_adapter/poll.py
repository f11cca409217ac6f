"""Poll delivery (DESIGN §14): a workspace nobody can call pulls its messages.

``PollLoop`` asks the platform for ``a2a_receive`` activity rows every
``POLL_INTERVAL_SECONDS`` (±10 %), hands each row's JSON-RPC request to the
adapter's routes in-process (``InProcess``: the same task store, executor,
limits and per-context order as a pushed request, the caller named by the
platform), and sends the answer back through the platform: to a peer as a
``message/send`` at ``/workspaces/{source_id}/a2a``, to the platform's user
with ``/workspaces/{id}/notify``. A failed task's reply says it failed.

Order and exactly-once: rows of one context are dispatched one after the
other, rows of different contexts side by side (the adapter's
``max_concurrent_turns`` bounds the turns). The cursor (``Cursor``, persisted
atomically in ``<config>/.a2a_cursor``) advances past a row only when it and
every row before it are done; a finished turn's reply is written there
*before* it is sent, so a restart sends it without running the turn again,
and a row whose reply went out is remembered by id and never answered twice.
A row cut short by a shutdown is not done: the next process runs it; a reply
whose POST is under way gets ``_SEND_GRACE`` to be answered (one the platform
has not answered by then is sent again by the next process). Pull
failures back off like heartbeats (``backoff.retry_delay``); a 410 (the cursor
was pruned) asks for the last ten minutes and skips the rows already handled.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import tempfile
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.authentication import AuthCredentials, SimpleUser
from starlette.types import ASGIApp, Receive, Scope, Send

from .backoff import retry_delay
from .errors import CursorPruned, PlatformError, PlatformRejected, WorkspaceUnknown
from .health import Health, classify
from .inbound import PLATFORM_CALLER
from .platform import PlatformClient

__all__ = ["CURSOR_FILE", "Cursor", "InProcess", "PollLoop", "Reply", "reply_of"]

log = logging.getLogger(__name__)

CURSOR_FILE = ".a2a_cursor"
POLL = "poll"  # the health operation of the pull (§8)
_PAGE = 100
_RECOVER_SECONDS = 600  # after a 410: ask for the last ten minutes
RECEIVE = "a2a_receive"  # the only activity type a poll runs
_REMEMBERED = 2000  # handled row ids kept (for a pruned cursor's catch-up)
_SEND_METHODS = {
    "message/send": "message/send",
    "message/stream": "message/send",
    "SendMessage": "SendMessage",
    "SendStreamingMessage": "SendMessage",
}
_DISPATCH_SECONDS = 3600.0  # an in-process turn: the adapter's own turn_timeout is shorter
# a reply's POST under way when the shutdown comes gets this long to be answered: cut in
# the middle, the platform may have taken it while the cursor still holds it as pending,
# and the next process would send it again
_SEND_GRACE = 1.5


@dataclass
class Reply:
    """What goes back for one row: to a peer (``to`` set) or to the platform's user."""

    text: str
    failed: bool = False
    to: str | None = None
    context_id: str | None = None
    task_id: str | None = None


class Cursor:
    """``<config>/.a2a_cursor``: ``since_id`` (every row up to it is done), the ids of
    the rows handled lately, and the replies of finished turns not yet sent."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / CURSOR_FILE
        self.since_id: str | None = None
        self.handled: OrderedDict[str, None] = OrderedDict()
        self.pending: dict[str, Reply] = {}
        self.persisted = True

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            log.warning(
                "%s cannot be read (%s); polling from the platform's backlog", self.path, error
            )
            return
        if not isinstance(data, dict):
            return
        since = data.get("since_id")
        self.since_id = str(since) if since else None
        for key in data.get("handled") or []:
            self.handled[str(key)] = None
        for key, value in (data.get("pending") or {}).items():
            if isinstance(value, dict) and isinstance(value.get("text"), str):
                self.pending[str(key)] = Reply(
                    text=value["text"],
                    failed=bool(value.get("failed")),
                    to=value.get("to"),
                    context_id=value.get("context_id"),
                    task_id=value.get("task_id"),
                )

    def remember(self, row_id: str) -> None:
        self.handled[row_id] = None
        while len(self.handled) > _REMEMBERED:
            self.handled.popitem(last=False)

    def save(self) -> None:
        """Atomically (0600 temp file, rename); a read-only volume keeps it in memory."""
        body = json.dumps(
            {
                "since_id": self.since_id,
                "handled": list(self.handled),
                "pending": {key: asdict(reply) for key, reply in self.pending.items()},
            }
        )
        temporary: str | None = None
        try:
            handle, temporary = tempfile.mkstemp(prefix=CURSOR_FILE + ".", dir=self.path.parent)
            try:
                os.fchmod(handle, 0o600)
                os.write(handle, body.encode())
                os.fsync(handle)
            finally:
                os.close(handle)
            os.replace(temporary, self.path)
            self.persisted = True
        except OSError as error:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            if self.persisted:
                log.warning(
                    "cannot save the poll cursor to %s (%s): kept in memory; a restart may "
                    "answer a message again",
                    self.path,
                    error.strerror or error,
                )
            self.persisted = False


_caller: contextvars.ContextVar[str] = contextvars.ContextVar("poll_caller", default="")


class InProcess:
    """The adapter's routes called in-process, as a pushed request would reach them,
    the caller (the platform authenticated it) as ``request.user``."""

    def __init__(self, app: ASGIApp) -> None:
        async def named(scope: Scope, receive: Receive, send: Send) -> None:
            scope = {**scope, "user": SimpleUser(_caller.get()), "auth": AuthCredentials(["a2a"])}
            await app(scope, receive, send)

        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=named), base_url="http://in-process"
        )

    async def __call__(self, body: dict[str, Any], caller: str) -> dict[str, Any]:
        token = _caller.set(caller)
        try:
            headers = {} if "/" in str(body.get("method")) else {"A2A-Version": "1.0"}
            with anyio.fail_after(_DISPATCH_SECONDS):
                response = await self._http.post("/", json=body, headers=headers)
        finally:
            _caller.reset(token)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return {
                "error": {"code": -32603, "message": f"the runtime answered {response.status_code}"}
            }
        return answer

    async def aclose(self) -> None:
        await self._http.aclose()


def _texts(parts: Any) -> list[str]:
    return [
        p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str)
    ]


def reply_of(request: dict[str, Any], response: dict[str, Any], source_id: str | None) -> Reply:
    """The reply to one row: the answer's text, or what failed (never dressed as an answer)."""
    message = (request.get("params") or {}).get("message") or {}
    reply = Reply(
        text="",
        to=source_id,
        context_id=message.get("contextId") or message.get("context_id"),
        task_id=message.get("taskId") or message.get("task_id"),
    )
    error = response.get("error")
    if isinstance(error, dict):
        reply.text = f"failed: {error.get('message') or 'the request was refused'}"
        reply.failed = True
        return reply
    result = response.get("result") or {}
    task = result.get("task", result) if isinstance(result, dict) else {}
    if isinstance(result, dict) and "message" in result and "status" not in task:
        reply.text = "\n".join(_texts(result["message"].get("parts")))
        return reply
    status = task.get("status") or {}
    state = str(status.get("state", "")).lower().removeprefix("task_state_")
    said = "\n".join(_texts((status.get("message") or {}).get("parts")))
    answer = "\n".join(t for a in task.get("artifacts") or [] for t in _texts(a.get("parts")))
    if state == "completed":
        reply.text = answer or said
        return reply
    reply.failed = True
    reason = said or f"the task ended {state or 'without an answer'}"
    reply.text = (
        reason if reason.lower().startswith(("failed", "canceled")) else f"failed: {reason}"
    )
    return reply


_RUNNING = frozenset({"submitted", "working"})


def _task_state(response: dict[str, Any]) -> tuple[str | None, str]:
    """(task id, state in lower case without the 1.0 prefix) of a JSON-RPC answer."""
    result = response.get("result")
    if not isinstance(result, dict):
        return None, ""
    task = result.get("task", result)
    if not isinstance(task, dict) or not isinstance(task.get("status"), dict):
        return None, ""
    state = str(task["status"].get("state", "")).lower().removeprefix("task_state_")
    task_id = task.get("id")
    return (str(task_id) if task_id else None), state


def _request_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The row's JSON-RPC message request, made blocking, or None when it is not one."""
    body = row.get("request_body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
        return None
    method = _SEND_METHODS.get(str(body.get("method")))
    params = body.get("params")
    if (
        method is None
        or not isinstance(params, dict)
        or not isinstance(params.get("message"), dict)
    ):
        return None
    configuration = dict(params.get("configuration") or {})
    if "/" in method:
        configuration["blocking"] = True  # the answer is what is sent back
    else:
        configuration["returnImmediately"] = False
    return {**body, "method": method, "params": {**params, "configuration": configuration}}


def _context_of(request: dict[str, Any], row_id: str) -> str:
    message = request["params"]["message"]
    return str(
        message.get("contextId") or message.get("context_id") or message.get("taskId") or row_id
    )


@dataclass
class _Row:
    id: str
    source_id: str | None
    request: dict[str, Any] | None
    done: bool = False


class _Replies:
    """Replies through the platform (§14), retried like heartbeats; a POST under way
    when the shutdown comes is finished, not cut (``stop``, ``settled``)."""

    def __init__(
        self,
        client: PlatformClient,
        backoff: Callable[[int, float | None], Awaitable[None]],
    ) -> None:
        self.client = client
        self.backoff = backoff  # (failures, retry_after): the loop's, read when it waits
        self.stopping = False
        self._sending: set[anyio.CancelScope] = set()

    def stop(self) -> float:
        """From now on a POST gets ``_SEND_GRACE`` seconds; the deadline of those under way."""
        self.stopping = True
        deadline = anyio.current_time() + _SEND_GRACE
        for sending in self._sending:
            sending.deadline = min(sending.deadline, deadline)
        return deadline

    async def settled(self, deadline: float) -> None:
        """Until no POST is under way (or ``deadline``)."""
        while self._sending and anyio.current_time() < deadline:  # noqa: ASYNC110
            await anyio.sleep(0.02)

    async def send(self, row_id: str, reply: Reply) -> bool:
        """The reply through the platform, retried with backoff until it is taken (or
        refused for good: a 4xx other than 401/404/408/429 is logged and dropped); False
        when the shutdown cut it (it stays pending: the next process sends it).

        Each attempt is shielded from the loop's cancel and bounded by the client's own
        deadline, or by ``stop`` (``_SEND_GRACE``): a POST the platform may have taken
        is not abandoned half-way (it would be sent again), and the loop's backoff
        between attempts is where a cancel stops it."""
        failures = 0
        while True:
            try:
                with anyio.CancelScope(shield=True) as sending:
                    if self.stopping:
                        sending.deadline = anyio.current_time() + _SEND_GRACE
                    self._sending.add(sending)
                    try:
                        if reply.to:
                            await self.client.reply_to_peer(reply.to, _peer_message(reply, row_id))
                        else:
                            await self.client.notify(reply.text)
                    finally:
                        self._sending.discard(sending)
                if sending.cancelled_caught:
                    log.warning("poll: the reply to row %s was cut by the shutdown", row_id)
                    return False
                return True
            except WorkspaceUnknown as error:
                log.error(
                    "poll: the reply to row %s has nowhere to go (%s); dropped", row_id, error
                )
                return True
            except PlatformRejected as error:
                if error.status not in (401, 408, 429):
                    log.error(
                        "poll: the platform refused the reply to row %s (%s); dropped",
                        row_id,
                        error,
                    )
                    return True
                last: PlatformError = error
            except PlatformError as error:
                last = error
            failures += 1
            await self.backoff(failures, last.retry_after)


@dataclass
class PollLoop:
    """Pull, dispatch, reply; see the module's docstring. ``ready`` says when the
    adapter's routes are there (a failed boot has none: rows wait on the platform)."""

    client: PlatformClient
    health: Health
    call: Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]]
    cursor: Cursor
    interval: float = 2.0
    cap: float = 60.0
    ready: Callable[[], bool] = lambda: True
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    rng: Callable[[], float] = random.random
    pulls: int = 0
    _rows: dict[str, _Row] = field(default_factory=dict)
    _order: deque[str] = field(default_factory=deque)
    _contexts: dict[str, deque[_Row]] = field(default_factory=dict)
    _position: str | None = None  # the last row received (the pull's since_id)
    _pruned: bool = False
    _scope: anyio.CancelScope | None = None
    _stopping: bool = False
    _replies: _Replies = field(init=False)

    def __post_init__(self) -> None:
        self._replies = _Replies(self.client, self._back_off)

    async def _back_off(self, failures: int, retry_after: float | None) -> None:
        await self.sleep(
            retry_delay(
                failures,
                interval=self.interval,
                cap=self.cap,
                retry_after=retry_after,
                rng=self.rng,
            )
        )

    async def run(self) -> None:
        await anyio.to_thread.run_sync(self.cursor.load)
        self._position = self.cursor.since_id
        with anyio.CancelScope() as scope:
            self._scope = scope
            async with anyio.create_task_group() as group:
                await self._send_pending()
                await self._pull_forever(group)

    async def stop(self) -> None:
        """Stop pulling and abandon the rows in flight (not done: the next process runs
        them), but a reply's POST under way gets ``_SEND_GRACE`` seconds to be answered
        and recorded; then the cursor is saved as it stands."""
        self._stopping = True
        deadline = self._replies.stop()
        if self._scope is not None:
            self._scope.cancel()
        with anyio.CancelScope(shield=True):
            await self._replies.settled(deadline)
            with anyio.move_on_after(2):
                await anyio.to_thread.run_sync(self.cursor.save)

    # -- pulling ------------------------------------------------------------------------

    async def _pull_forever(self, group: anyio.abc.TaskGroup) -> None:
        failures = 0
        while True:
            if not self.ready() or len(self._rows) >= _PAGE:
                await self.sleep(self.interval)  # a failed boot, or a full hand: wait
                continue
            try:
                rows = await self._pull()
            except PlatformError as error:
                failures += 1
                self.health.record_failure(classify(error, "platform"), operation=POLL)
                wait = retry_delay(
                    failures,
                    interval=self.interval,
                    cap=self.cap,
                    retry_after=error.retry_after,
                    rng=self.rng,
                )
                log.warning("poll: %s; next pull in %.1f s", error, wait)
                await self.sleep(wait)
                continue
            if failures:
                log.info("poll: the platform answers again after %s failed pull(s)", failures)
            failures = 0
            self.health.record_success("platform", operation=POLL)
            for row in rows:
                self._accept(row, group)
            await self.sleep(self.interval * (0.9 + 0.2 * self.rng()))

    async def _pull(self) -> list[dict[str, Any]]:
        self.pulls += 1
        if self._pruned:
            rows = await self.client.activity(since_secs=_RECOVER_SECONDS, limit=_PAGE)
            self._pruned = False
            self._recovered(rows)
            return rows
        try:
            return await self.client.activity(since_id=self._position, limit=_PAGE)
        except CursorPruned:
            log.warning(
                "poll: the platform pruned cursor %s; asking for the last %s s and skipping "
                "the rows already handled",
                self._position,
                _RECOVER_SECONDS,
            )
            self._pruned = True
            return await self._pull()

    def _recovered(self, rows: list[dict[str, Any]]) -> None:
        """After a 410: say which rows are skipped as already handled, and that rows
        older than the recovery window that were never handled are lost."""
        seen = [str(r.get("id")) for r in rows if isinstance(r, dict) and r.get("id")]
        skipped = [i for i in seen if i in self.cursor.handled or i in self.cursor.pending]
        if skipped:
            log.info(
                "poll: %s row(s) of the last %s s were handled already, skipped: %s",
                len(skipped),
                _RECOVER_SECONDS,
                ", ".join(skipped[:20]) + (" ..." if len(skipped) > 20 else ""),
            )
        log.warning(
            "poll: rows after cursor %s older than %s s, if any, were pruned by the "
            "platform before they were handled and cannot be fetched: they are not answered",
            self._position,
            _RECOVER_SECONDS,
        )

    def _accept(self, raw: dict[str, Any], group: anyio.abc.TaskGroup) -> None:
        row_id = str(raw.get("id") or "")
        if not row_id:
            return
        self._position = row_id
        kind = raw.get("activity_type")
        if kind != RECEIVE:
            # asked for by type; a platform that answers with other rows is not obeyed
            log.warning(
                "poll: row %s is activity %r, not %s; skipped",
                row_id,
                str(kind)[:40],
                RECEIVE,
            )
            return
        if row_id in self._rows or row_id in self.cursor.handled or row_id in self.cursor.pending:
            return
        source = raw.get("source_id")
        row = _Row(row_id, str(source) if source else None, _request_of(raw))
        self._rows[row_id] = row
        self._order.append(row_id)
        if row.request is None:
            log.warning("poll: row %s is not a JSON-RPC message request; skipped", row_id)
            group.start_soon(self._done, row)
            return
        key = _context_of(row.request, row_id)
        waiting = self._contexts.get(key)
        if waiting is not None:
            waiting.append(row)  # its context's worker takes it after the earlier ones
            return
        self._contexts[key] = deque([row])
        group.start_soon(self._context, key)

    # -- one context's rows, in order ------------------------------------------------------

    async def _context(self, key: str) -> None:
        queue = self._contexts[key]
        try:
            while queue:
                await self._handle(queue[0])
                queue.popleft()
        finally:
            if not queue:
                self._contexts.pop(key, None)

    async def _handle(self, row: _Row) -> None:
        assert row.request is not None
        caller = f"workspace:{row.source_id}" if row.source_id else PLATFORM_CALLER
        try:
            response = await self._answer(row.request, caller)
        except Exception as error:  # the adapter's routes: a bug there is a failed row
            log.exception("poll: row %s could not be dispatched", row.id)
            response = {
                "error": {"code": -32603, "message": f"the runtime failed ({type(error).__name__})"}
            }
        if self._stopping:
            return  # cut short by the shutdown: not done, the next process runs it
        reply = reply_of(row.request, response, row.source_id)
        self.cursor.pending[row.id] = reply  # before it is sent: a restart sends, not runs
        await anyio.to_thread.run_sync(self.cursor.save)
        if await self._replies.send(row.id, reply):
            await self._done(row)

    async def _answer(self, request: dict[str, Any], caller: str) -> dict[str, Any]:
        """The request's final answer: a task still running when the send returned (a
        handler that answers early) is asked for again until it ends."""
        response = await self.call(request, caller)
        waited = 0.0
        while not self._stopping and waited < _DISPATCH_SECONDS:
            task_id, state = _task_state(response)
            if task_id is None or state not in _RUNNING:
                return response
            await self.sleep(1.0)
            waited += 1.0
            get = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task_id}}
            response = await self.call(get, caller)
        return response

    async def _send_pending(self) -> None:
        for row_id, reply in list(self.cursor.pending.items()):
            log.info("poll: sending the reply to row %s a previous process did not send", row_id)
            if not await self._replies.send(row_id, reply):
                return  # cut by the shutdown: still pending
            self.cursor.pending.pop(row_id, None)
            self.cursor.remember(row_id)
        await anyio.to_thread.run_sync(self.cursor.save)

    async def _done(self, row: _Row) -> None:
        """``row`` is done: the cursor moves over every done row at the front."""
        row.done = True
        self.cursor.pending.pop(row.id, None)
        self.cursor.remember(row.id)
        while self._order and self._rows[self._order[0]].done:
            first = self._order.popleft()
            del self._rows[first]
            self.cursor.since_id = first
        await anyio.to_thread.run_sync(self.cursor.save)


def _peer_message(reply: Reply, row_id: str) -> dict[str, Any]:
    """The JSON-RPC ``message/send`` a peer gets: role agent, the caller's ids (§14)."""
    message: dict[str, Any] = {
        "kind": "message",
        "messageId": str(uuid.uuid4()),
        "role": "agent",
        "parts": [{"kind": "text", "text": reply.text}],
    }
    if reply.context_id:
        message["contextId"] = reply.context_id
    if reply.task_id:
        message["taskId"] = reply.task_id
    return {
        "jsonrpc": "2.0",
        "id": row_id,
        "method": "message/send",
        "params": {"message": message},
    }
