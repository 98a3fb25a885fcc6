"""The I/O shell of `/ws`: one reader, one writer and one watchdog per socket.

The writer is the only coroutine that awaits the socket, so a client that stops reading stalls
only its own writer; publishers keep appending to its bounded, coalescing queue. The watchdog
does not go through the writer, so it can still close a socket whose writer is stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from pydantic import JsonValue

from aggregator.budget import ByteBudget
from aggregator.ws.heartbeat import Heartbeat
from aggregator.ws.hub import Client, Hub, TopicError, Viewer
from aggregator.ws.messages import (
    BadMessage,
    CancelAction,
    PingAction,
    PongAction,
    Subscribe,
    TaskAction,
    Unsubscribe,
    parse,
)
from aggregator.ws.queue import encode_frame
from aggregator.ws.session_watch import SessionWatch
from aggregator.ws.tasks import Task

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4008
"""Close code for a client whose queue overflowed on changes that cannot be merged."""
CLOSE_SILENT = 4000
"""Close code for a client that sent nothing for the heartbeat timeout."""
MAX_MESSAGE = 2 * 1024 * 1024
TASK_COST = 2048
"""Bytes an action costs beyond its frame while it is pending (its task and status frames)."""


class ActionFailed(Exception):
    """An action that could not be done; the message is shown to the person."""


class UpgradeRefused(Exception):
    """Raised by `Backend.authenticate`: the upgrade is answered with this status and message
    (a cookie sent from another site's page: 403) instead of opening the socket."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Backend(Protocol):
    @property
    def hub(self) -> Hub: ...

    def now(self) -> float: ...

    async def authenticate(self, request: web.Request) -> Viewer | None: ...

    async def snapshot(self, viewer: Viewer, unit_id: str | None, kind: str) -> Any: ...

    async def act(
        self, viewer: Viewer, action: TaskAction, task: Task, report: Callable[[], None]
    ) -> JsonValue: ...

    async def subscribe_refused(self, viewer: Viewer, topic: str, reason: str) -> None:
        """Record a refused subscription (audit trail)."""

    @property
    def sessions(self) -> SessionWatch:
        """Keeps every open socket in step with its login session (session_watch.py)."""


@dataclass
class WsSettings:
    """Mutable so a running app's heartbeat can be tuned (tests use short intervals)."""

    ping_interval: float = 10.0
    timeout: float = 30.0


WS_BACKEND_KEY = web.AppKey("setpoint_ws_backend", Backend)
WS_SETTINGS_KEY = web.AppKey("setpoint_ws_settings", WsSettings)


async def ws_handler(request: web.Request) -> web.StreamResponse:
    backend = request.app[WS_BACKEND_KEY]
    settings = request.app.get(WS_SETTINGS_KEY) or WsSettings()
    try:
        viewer = await backend.authenticate(request)
    except UpgradeRefused as refused:
        return web.json_response({"error": refused.message, "field": None}, status=refused.status)
    if viewer is None:
        return web.json_response(
            {
                "error": "not logged in: send the session cookie or 'Authorization: Bearer <token>'",
                "field": None,
            },
            status=401,
        )
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, autoping=True)
    await ws.prepare(request)
    session = WsSession(backend, settings, ws, viewer, request.transport)
    await session.run()
    return ws


class WsSession:
    def __init__(
        self,
        backend: Backend,
        settings: WsSettings,
        ws: web.WebSocketResponse,
        viewer: Viewer,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        self.backend = backend
        self.hub = backend.hub
        self.ws = ws
        self.viewer = viewer
        self.transport = transport
        self.heartbeat = Heartbeat(settings.ping_interval, settings.timeout)
        self.wake = asyncio.Event()
        self.client: Client = self.hub.connect(viewer, self._woken)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.cancelled: dict[str, str] = {}  # task id -> why, for its `interrupted` frame
        self.task_budget = ByteBudget(self.hub.task_bytes, self.hub.task_budget)
        self.audits: set[asyncio.Task[None]] = set()
        self.close_code: int | None = None
        self._ending: asyncio.Task[None] | None = None

    def _woken(self) -> None:
        """Something was queued. An overflowed queue closes the socket from here, as the
        writer may be stuck on a client that does not read."""
        self.wake.set()
        if self.client.queue.overflowed:
            self.end(CLOSE_TOO_SLOW, "too slow: queue overflow; reconnect")

    def end(self, code: int, reason: str) -> None:
        """Close the socket from outside (its session ended); nothing more is accepted."""
        if self.close_code is not None or self.ws.closed:
            return
        self.close_code = code
        self._ending = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def run(self) -> None:
        now = self.backend.now()
        self.heartbeat.start(now)
        writer = asyncio.create_task(self._writer())
        watchdog = asyncio.create_task(self._watchdog())
        sessions = self.backend.sessions
        sessions.add(self)
        try:
            await self._reader()
        finally:
            sessions.remove(self)
            self.task_budget.close()
            self.hub.disconnect(self.client)
            for task in list(self.tasks.values()):
                task.cancel()
            for background in (writer, watchdog, *self.tasks.values()):
                background.cancel()
            for background in (writer, watchdog, *self.tasks.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await background
            if not self.ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(), 1.0)

    # --- reading ---------------------------------------------------------------------------------

    async def _reader(self) -> None:
        async for msg in self.ws:
            self.heartbeat.received(self.backend.now())
            if msg.type == WSMsgType.TEXT or msg.type == WSMsgType.BINARY:
                self._dispatch(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break

    def _send(self, frame: dict[str, Any]) -> None:
        # when the queue is full the frame is dropped and the queue marked overflowed: the
        # socket is then closed
        self.client.queue.put_frame(frame)
        self._woken()

    def _dispatch(self, data: str | bytes) -> None:
        if self.close_code is not None:
            return  # closing: its session ended, or it is too slow
        try:
            message = parse(data)
        except BadMessage as exc:
            self._send(exc.frame())
            return
        if isinstance(message, Subscribe):
            self._subscribe(message)
        elif isinstance(message, Unsubscribe):
            self.hub.unsubscribe(self.client, message.topic)
            running = self.tasks.pop(f"subscribe:{message.topic}", None)
            if running is not None:
                running.cancel()
        elif isinstance(message, PingAction):
            self._send({"type": "pong", "id": message.id, "time": self.backend.now()})
        elif isinstance(message, PongAction):
            pass
        elif isinstance(message, CancelAction):
            self._cancel(message)
        else:
            self._start_task(message, len(data))

    def _subscribe(self, message: Subscribe) -> None:
        topic = message.topic
        try:
            unit_id, kind = self.hub.begin_subscribe(self.client, topic)
        except TopicError as exc:
            error = f"cannot subscribe to {topic!r}: {exc}"
            self._send(
                {
                    "type": "error",
                    "id": message.id,
                    "subscribe": topic,  # not "topic": clients route frames with a topic to it
                    "error": error,
                    "field": "topic",
                }
            )
            audit = asyncio.create_task(self.backend.subscribe_refused(self.viewer, topic, error))
            self.audits.add(audit)  # held until done: the loop keeps only weak references
            audit.add_done_callback(self.audits.discard)
            return

        async def load() -> None:
            try:
                if not await self.backend.sessions.check(self):
                    raise ActionFailed("your session ended or your role changed")
                snapshot = await self.backend.snapshot(self.viewer, unit_id, kind)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.hub.abort_subscribe(self.client, topic)
                if not isinstance(exc, ActionFailed):
                    log.exception("snapshot of %s failed", topic)
                self._send(
                    {
                        "type": "error",
                        "id": message.id,
                        "subscribe": topic,
                        "error": f"cannot subscribe to {topic!r}: "
                        + (str(exc) if isinstance(exc, ActionFailed) else "snapshot failed"),
                        "field": None,
                    }
                )
                return
            finally:
                self.tasks.pop(f"subscribe:{topic}", None)
            self.hub.complete_subscribe(self.client, topic, snapshot)

        key = f"subscribe:{topic}"
        previous = self.tasks.pop(key, None)
        if previous is not None:
            previous.cancel()
        self.tasks[key] = asyncio.create_task(load())

    def _start_task(self, action: TaskAction, size: int) -> None:
        cost = size + TASK_COST
        if action.id not in self.tasks and not self.task_budget.take(cost):
            self._send(
                {
                    "type": "error",
                    "id": action.id,
                    "error": "too many actions pending on this connection or on the server; "
                    "wait for some to finish",
                    "field": None,
                }
            )
            return
        if action.id in self.tasks:
            self._send(
                {
                    "type": "error",
                    "id": action.id,
                    "error": "a task with this id is still running",
                    "field": "id",
                }
            )
            return
        task = Task(action.id, action.action, created=self.backend.now())
        self._send(task.frame(task.created))

        def report() -> None:
            self._send(task.frame(self.backend.now()))

        async def execute() -> None:
            try:
                if action.action != "run_model":  # a simulation waits as pending at its engine
                    task.start(self.backend.now())
                    report()
                if not await self.backend.sessions.check(self):
                    raise ActionFailed("your session ended or your role changed; nothing was done")
                final = await self.backend.act(self.viewer, action, task, report)
                task.finish(self.backend.now(), final, task.message or "done")
            except asyncio.CancelledError:
                why = self.cancelled.pop(action.id, None)
                task.interrupt(self.backend.now(), why or "the connection closed")
                if why is None:
                    raise
            except ActionFailed as exc:
                task.fail(self.backend.now(), str(exc))
            except Exception:
                log.exception("/ws action %s failed", action.action)
                task.fail(self.backend.now(), "internal error; see the aggregator log")
            finally:
                self.tasks.pop(action.id, None)
                self.task_budget.give(cost)
            report()

        self.tasks[action.id] = asyncio.create_task(execute())

    def _cancel(self, message: CancelAction) -> None:
        """`cancel`: the target task ends as interrupted (at once: its engine request is
        abandoned, the backend tells the engine), the cancel itself as finished."""
        now = self.backend.now()
        task = Task(message.id, message.action, created=now)
        running = self.tasks.get(message.task)
        if running is None or message.task.startswith("subscribe:"):
            task.fail(now, f"no running task {message.task!r} on this connection")
        else:
            self.cancelled[message.task] = f"cancelled by {message.id}"
            running.cancel()
            task.finish(now, {"task": message.task}, "cancelled")
        self._send(task.frame(now))

    # --- writing -----------------------------------------------------------------------------------

    async def _writer(self) -> None:
        queue = self.client.queue
        while not self.ws.closed:
            if queue.overflowed:
                await self._close(CLOSE_TOO_SLOW, "too slow: queue overflow; reconnect")
                return
            texts = queue.take_encoded(200)
            if not texts:
                self.wake.clear()
                now = self.backend.now()
                if self.heartbeat.ping_due(now):
                    self.heartbeat.sent(now)
                    texts = [encode_frame({"type": "ping", "time": now})]
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self.wake.wait(), max(0.05, self.heartbeat.next_wakeup(now))
                        )
                    continue
            for text in texts:
                await self.ws.send_str(text)

    async def _watchdog(self) -> None:
        """Closes a silent client even when its writer is stuck on a full socket."""
        while not self.ws.closed:
            now = self.backend.now()
            if self.heartbeat.expired(now):
                await self._close(CLOSE_SILENT, "no message for too long")
                return
            await asyncio.sleep(
                max(0.05, self.heartbeat.last_received + self.heartbeat.timeout - now)
            )

    async def _close(self, code: int, reason: str) -> None:
        self.close_code = code
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), 1.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            if self.transport is not None:
                abort = getattr(self.transport, "abort", None)
                if callable(abort):
                    abort()
