"""The I/O shell of the link: a websocket client (link/websocket.py) obeying the LinkMachine.

It owns everything the machine must not: the socket, the timers, the engine's command calls,
the outbox's disk work and the logging policy (an outage or a refused token is logged once, not
at every retry). The engine only sees `emit()`, which writes to the durable outbox and never
waits for the network (a watched unit's live update goes past the outbox as `LiveTags` when
the machine allows it, protocol 1.5). Nothing here waits for SQLite on the event loop, which also runs the
engine's scan: commits go to one worker thread, reads and renumbering to another (so a read
never queues behind a commit's fsync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random as random_module
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from engine.link.machine import (
    Action,
    Close,
    Command,
    Execute,
    LinkMachine,
    LinkPolicy,
    ReadOutbox,
    Rebase,
    ScheduleReconnect,
    Send,
)
from engine.link.outbox import Outbox, Synchronous
from engine.link.requests import run_request
from engine.link.websocket import HandshakeError, MsgType, WebSocket, WebSocketError, connect
from engine.ports import EngineControl, StoredMessageT
from protocol.codec import MAX_FRAME_SIZE
from protocol.messages import (
    AlarmCommand,
    CancelLine,
    ControlCommand,
    ForceLine,
    InvokeCommand,
    LiveTags,
    ModelProgress,
    ResumeLine,
    SetMethod,
    TagsUpdated,
)
from protocol.models import json_safe

log = logging.getLogger("engine.link")

OUTBOX_FILE = "outbox.sqlite3"
WS_COMPRESS = 15
"""permessage-deflate window bits (RFC 7692) offered to the aggregator; 0 would offer none."""


_ACTS_ON_UNIT = (
    ControlCommand,
    InvokeCommand,
    SetMethod,
    CancelLine,
    ForceLine,
    ResumeLine,
    AlarmCommand,
)
"""Requests after which the engine scans at once (EngineLink._execute)."""


def _engine_version() -> str:
    try:
        return metadata.version("setpoint")
    except metadata.PackageNotFoundError:
        return "0.0.0"


_WEB_SCHEMES = {"http://": "ws://", "https://": "wss://"}


def _endpoint(url: str) -> str:
    """Accept the aggregator's base URL (ws://host:port) or the full endpoint; the address of
    its web UI (http://host:port) means the same server."""
    url = url.rstrip("/")
    for web, ws in _WEB_SCHEMES.items():
        if url.startswith(web):
            url = ws + url[len(web) :]
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"an aggregator URL looks like ws://HOST:PORT, not {url!r}")
    return url if url.endswith("/engine/ws") else f"{url}/engine/ws"


class EngineLink:
    """The engine's MessageSink when connected to an aggregator; see the package docstring.

    `emit()` may be called before `start()`, from the event loop or from another thread. Messages
    emitted on the loop are committed together at the end of the current loop iteration (one
    commit per scan); `flush()` commits at once. After `stop()` the outbox is closed.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        token: str,
        data_dir: Path,
        control: EngineControl,
        *,
        clock: Callable[[], float] = time.time,
        heartbeat_interval: float = 5.0,
        policy: LinkPolicy | None = None,
        random: Callable[[], float] | None = None,
        synchronous: Synchronous = "FULL",
        session_id: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("EngineLink needs at least one aggregator URL")
        self.urls = [_endpoint(u) for u in urls]
        self._url_index = 0
        self.url = self.urls[0]
        self._token = token
        self._control = control
        self._clock = clock
        policy = policy or LinkPolicy(heartbeat_interval=heartbeat_interval)
        self._synchronous: Synchronous = synchronous
        self.outbox = Outbox(Path(data_dir) / OUTBOX_FILE, synchronous=synchronous)
        self.session_id = session_id or uuid.uuid4().hex
        self._machine = LinkMachine(
            self.outbox,
            session_id=self.session_id,
            engine_version=_engine_version(),
            policy=policy,
            random=random or random_module.Random().random,
        )
        self._connect_timeout = connect_timeout
        self._tick_period = min(1.0, policy.heartbeat_interval / 5)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._dirty: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._committer_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._send_lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._ws: WebSocket | None = None
        self._last_failure: str | None = None
        self._said_online = False
        self.connections = 0
        self._live_sends: set[asyncio.Task[None]] = set()
        self.live_tags_sent = 0
        """Live updates that went as `LiveTags` (1.5), past the outbox (status and tests)."""

    # --- status -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Registered with the aggregator right now."""
        return self._machine.online

    @property
    def acked_seq(self) -> int:
        return self._machine.acked_seq

    @property
    def high_water(self) -> int:
        """Highest seq committed to the outbox."""
        return self.outbox.committed_seq

    @property
    def live_watched(self) -> bool:
        """Does anyone watch this unit live (LiveDemand, protocol 1.4)? Never while offline:
        nobody can, so the scan holds its live changes for the next sample (engine/live_rate)."""
        return self._machine.online and self._machine.live_watched

    @property
    def pending(self) -> int:
        """Messages the aggregator has not acknowledged yet."""
        return self.outbox.pending

    # --- MessageSink ------------------------------------------------------------------------

    def emit(self, kind: type[StoredMessageT], /, **fields: Any) -> None:
        """Number and store one message; it is sent when connected, resent until acknowledged.

        Also after stop(): the engine may still report while it shuts down, and such a message
        is committed at once and goes at the next start rather than being lost.
        """
        if kind is TagsUpdated and fields.get("sample") is False and self._live_tags(fields):
            return
        if self.outbox.closed:
            self._reopen_outbox()
        self.outbox.enqueue(kind, fields)
        self._mark_dirty()

    def _live_tags(self, fields: dict[str, Any]) -> bool:
        """Send a live update as `LiveTags` at once, past the outbox; False: it goes the stored
        way. Such an update is not kept for the aggregator (it stores only samples), so its
        commit, the commit thread's wake-up of the loop and the aggregator's Ack were work for
        nothing: about a millisecond of the engine's CPU per live frame (bench/README.md)."""
        ws, loop = self._ws, self._loop
        if (
            ws is None
            or ws.closed
            or loop is None
            or threading.get_ident() != self._loop_thread
            or not self._machine.live_tags_now
        ):
            return False
        frame = LiveTags(
            time=fields["time"], run_id=fields.get("run_id"), tags=fields["tags"]
        ).model_dump_json()
        task = loop.create_task(self._send_live(ws, frame))
        self._live_sends.add(task)
        task.add_done_callback(self._live_sends.discard)
        self.live_tags_sent += 1
        return True

    def flush(self) -> int:
        """Commit everything emitted so far (see Outbox); returns the committed high water.

        Blocks for one commit (an fsync); emit() alone is committed by a worker thread within
        one commit time, which is what the scan should rely on.
        """
        high = self.outbox.flush()
        if self._wake is not None and self._loop is not None:
            self._call_on_loop(self._wake.set)
        return high

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("EngineLink already started")
        if self.outbox.closed:
            self._reopen_outbox()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-link-commit")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-link-read")
        self._dirty = asyncio.Event()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._send_lock = asyncio.Lock()
        await self._loop.run_in_executor(self._executor, self.outbox.flush)
        self._committer_task = asyncio.create_task(self._committer(), name="engine-link-commit")
        self._task = asyncio.create_task(self._run(), name="engine-link")

    async def stop(self, flush_timeout: float = 10.0) -> None:
        """Try to deliver everything held for up to `flush_timeout` seconds, then close.

        What is not acknowledged by then stays in the outbox and goes at the next start.
        """
        if self._task is None:
            await asyncio.to_thread(self.outbox.close)
            return
        target = await asyncio.to_thread(self.flush)
        delivered = await self.wait_acked(target, flush_timeout)
        if not delivered:
            log.warning(
                "stopping with %d message(s) not yet acknowledged; they stay in %s",
                await asyncio.to_thread(lambda: self.pending),
                self.outbox.path,
            )
        tasks = [t for t in (self._task, self._committer_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._committer_task = None
        self._machine.disconnected(self._clock())  # cancelled mid-connection: not online now
        for executor in (self._executor, self._reader):
            if executor is not None:
                await asyncio.to_thread(executor.shutdown)
        self._loop = None
        self._dirty = None
        await asyncio.to_thread(self.outbox.close)

    def on_failure(self, callback: Callable[[BaseException], None]) -> None:
        """Calls `callback` if the connection task dies of an unexpected error (a bug; outages
        are retried, not failures): the engine must not run on unreported without noticing.
        Call after start()."""
        assert self._task is not None, "start() first"

        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                callback(task.exception() or RuntimeError("link failed"))

        self._task.add_done_callback(done)

    async def wait_acked(self, seq: int, timeout: float) -> bool:
        """Wait until the aggregator has acknowledged `seq`; False on timeout, and at once when
        the link was never started (an engine that failed to start still shuts down)."""
        if self._progress is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.acked_seq < seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._progress.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._progress.wait()
            except TimeoutError:
                return self.acked_seq >= seq
        return True

    # --- internals: committing ----------------------------------------------------------------

    def _reopen_outbox(self) -> None:
        self.outbox = Outbox(self.outbox.path, synchronous=self._synchronous)
        self._machine.store = self.outbox

    def _mark_dirty(self) -> None:
        """Wake the committer; every emit of one scan (one loop iteration) shares its commit."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._dirty is None:
            self.outbox.flush()  # no loop (before start, after stop): commit right here
        elif threading.get_ident() == self._loop_thread:
            self._dirty.set()
        else:
            loop.call_soon_threadsafe(self._dirty.set)

    async def _committer(self) -> None:
        """Commits in a worker thread so that the scan never waits for an fsync."""
        assert self._dirty is not None and self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await loop.run_in_executor(self._executor, self.outbox.flush)
            except Exception:
                # The messages stay buffered in order (Outbox.flush rolls back); try again.
                log.exception("committing the outbox %s failed; retrying", self.outbox.path)
                await asyncio.sleep(1.0)
                self._dirty.set()
                continue
            self._wake.set()

    def _call_on_loop(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            callback()
        else:
            loop.call_soon_threadsafe(callback)

    # --- internals: connection ----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            actions = await self._connect_once()
            delay = next((a.delay for a in actions if isinstance(a, ScheduleReconnect)), 1.0)
            self._fail_over()
            log.debug("reconnecting to %s in %.2f s", self.url, delay)
            await asyncio.sleep(delay)

    def _fail_over(self) -> None:
        """After a failed attempt or a lost link, the next aggregator in order (wrapping round),
        with the machine's back-off. The aggregators share one database, and an engine resends
        from the last seq stored there (Registered.last_seq): a switch loses and duplicates
        nothing. A link that is up stays where it is: no switching back."""
        if len(self.urls) > 1:
            self._url_index = (self._url_index + 1) % len(self.urls)
            self.url = self.urls[self._url_index]

    async def _connect_once(self) -> list[Action]:
        try:
            # A silent network (not a refusal) must not hold the attempt for the OS timeout.
            async with asyncio.timeout(self._connect_timeout):
                ws = await connect(
                    self.url,
                    headers={"Authorization": f"Bearer {self._token}"},
                    max_msg_size=4 * MAX_FRAME_SIZE,
                    close_timeout=2.0,
                    # permessage-deflate with context takeover: consecutive TagsUpdated differ
                    # in a few digits, so a frame costs a tenth of its JSON on the wire. An
                    # aggregator that declines it gets the same frames uncompressed.
                    compress=WS_COMPRESS > 0,
                )
        except HandshakeError as exc:
            if exc.status in (401, 403):
                self._failure(
                    f"the aggregator at {self.url} refused the engine token "
                    f"(HTTP {exc.status}); create one there with `setpoint-aggregator "
                    "engine-token create NAME` and pass it with --token or "
                    f"SETPOINT_ENGINE_TOKEN. {self._meanwhile()}",
                    level=logging.ERROR,
                )
            else:
                self._failure(
                    f"the aggregator at {self.url} refused the websocket: HTTP {exc.status}; "
                    f"is that address a Setpoint aggregator? {self._meanwhile()}"
                )
            return self._machine.connect_failed(self._clock())
        except (WebSocketError, OSError, EOFError, TimeoutError) as exc:
            self._failure(
                f"cannot reach the aggregator at {self.url}: {self._reason(exc)}; is "
                f"`setpoint-aggregator serve` running there? {self._meanwhile()}",
                kind="unreachable",
            )
            return self._machine.connect_failed(self._clock())
        self.connections += 1
        try:
            return await self._serve(ws)
        finally:
            self._ws = None
            if not ws.closed:
                await ws.close()
            self._signal_progress()

    def _meanwhile(self) -> str:
        """What the person at the engine needs to know while the link is down: nothing is lost."""
        return f"The engine keeps running and retries; data waits in {self.outbox.path}"

    def _reason(self, exc: BaseException) -> str:
        """The cause in a few words ("connection refused"), not a nested repr."""
        if isinstance(exc, TimeoutError):
            return f"no answer within {self._connect_timeout:g} s"
        cause = getattr(exc, "os_error", exc)
        if isinstance(cause, socket.gaierror):
            return f"unknown host ({cause.strerror or cause})"
        if isinstance(cause, OSError) and isinstance(cause.errno, int) and cause.errno > 0:
            return os.strerror(cause.errno).lower()
        return str(exc) or type(exc).__name__

    def _failure(self, message: str, level: int = logging.WARNING, kind: str | None = None) -> None:
        """Log the first failure of an outage; repeats of the same kind only at debug.

        `kind` groups failures whose text varies from try to try (a peer that resets or drops
        the connection) so that the person at the engine hears about the outage once.
        """
        key = kind or message
        if key != self._last_failure:
            log.log(level, "%s", message)
            self._last_failure = key
        else:
            log.debug("%s", message)

    async def _serve(self, ws: WebSocket) -> list[Action]:
        """One connection: register, then read frames while the writer pumps and ticks."""
        self._ws = ws
        # RegisterEngine carries the committed high water: commit first, off the loop.
        await asyncio.get_running_loop().run_in_executor(self._executor, self.outbox.flush)
        try:
            registration = self._control.registration()
        except Exception:
            log.exception("the engine could not describe itself for registration")
            return self._machine.disconnected(self._clock())
        writer = asyncio.create_task(self._writer(ws), name="engine-link-writer")
        try:
            if await self._perform(ws, self._machine.connected(self._clock(), registration)):
                async for message in ws:
                    if message.type in (MsgType.TEXT, MsgType.BINARY):
                        actions = self._machine.frame_received(message.data, self._clock())
                        if self._machine.online and (
                            self._last_failure is not None or not self._said_online
                        ):
                            log.info("connected to the aggregator at %s", self.url)
                            self._last_failure = None
                            self._said_online = True
                        if not await self._perform(ws, actions):
                            break
                        if self._machine.has_more:
                            self._wake_writer()
                    elif message.type is MsgType.ERROR:
                        log.warning("websocket error: %s", ws.exception())
                        break
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        if self._machine.online:
            log.warning("lost the connection to the aggregator at %s", self.url)
        return self._machine.disconnected(self._clock())

    async def _writer(self, ws: WebSocket) -> None:
        """Heartbeats, timeouts and sending: live first, backlog in batches (rule 8)."""
        assert self._wake is not None
        while not ws.closed:
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation that
            # races with the event, which would keep this task alive after stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick_period):
                    await self._wake.wait()
            self._wake.clear()
            if not await self._perform(ws, self._machine.tick(self._clock())):
                return
            while self._machine.has_more:
                await asyncio.sleep(0)  # let the scan emit and the reader take acks
                if not await self._perform(ws, self._machine.pump(self._clock())):
                    return

    async def _perform(self, ws: WebSocket, actions: list[Action]) -> bool:
        """Carry out actions in order; False once the connection is being closed."""
        assert self._send_lock is not None
        index = 0
        while index < len(actions):
            action = actions[index]
            index += 1
            if isinstance(action, Send):
                # Consecutive frames go in one write (a sample and its run-log lines: one
                # commit and one Ack at the aggregator instead of one each).
                frames = [action.frame]
                while index < len(actions) and isinstance(next_send := actions[index], Send):
                    frames.append(next_send.frame)
                    index += 1
                try:
                    async with self._send_lock:
                        await ws.send_strs(frames)
                except (ConnectionError, RuntimeError) as exc:
                    log.warning("sending to the aggregator failed: %s", exc)
                    await ws.close()
                    return False
            elif isinstance(action, Close):
                log.warning("closing the connection to the aggregator: %s", action.reason)
                await ws.close()
                return False
            elif isinstance(action, ReadOutbox | Rebase):
                if not await self._perform(ws, await self._outbox_io(action)):
                    return False
            elif isinstance(action, Execute):
                ok, error, data = self._execute(action.command)
                if not await self._perform(
                    ws,
                    self._machine.command_finished(
                        action.command.id, ok=ok, error=error, data=data
                    ),
                ):
                    return False
        self._signal_progress()
        return True

    async def _outbox_io(self, action: ReadOutbox | Rebase) -> list[Action]:
        """Carry out the machine's outbox request in the read thread; its answer's actions.

        A failure closes the connection: the machine starts over at the next registration.
        """
        loop = asyncio.get_running_loop()
        try:
            if isinstance(action, ReadOutbox) and action.backlog is None:
                # Live frames just committed are answered from memory, on the loop: a trip to
                # the read thread woke the process once more per commit (issue 15 item 3).
                span = action.live
                recent = (
                    []
                    if span is None
                    else self.outbox.read_recent(span.after, span.limit, span.upto)
                )
                if recent is not None:
                    return self._machine.outbox_read(action, recent, [])
            if isinstance(action, Rebase):
                shift = await loop.run_in_executor(self._reader, self.outbox.rebase, action.above)
                return self._machine.rebased(action, shift)
            live, backlog = await loop.run_in_executor(self._reader, action.run, self.outbox)
            return self._machine.outbox_read(action, live, backlog)
        except Exception as exc:
            log.exception("the outbox %s could not be read", self.outbox.path)
            return [Close(f"outbox error: {type(exc).__name__}")]

    def _execute(self, command: Command) -> tuple[bool, str | None, JsonValue]:
        """Run one aggregator request, then (for one that acts on the unit) a scan at once so
        that its effect is written and reported now, not at the next grid scan; never lets an
        exception escape."""
        result = run_request(self._control, command, self._model_progress)
        scan_now = getattr(self._control, "scan_now", None)
        dry_run = isinstance(command, SetMethod) and command.dry_run
        if scan_now is not None and isinstance(command, _ACTS_ON_UNIT) and not dry_run:
            try:
                scan_now()
            except Exception:
                log.exception("the scan after %s %s failed", command.type, command.id)
        return result

    def _model_progress(self, model_id: str, status: str, data: JsonValue) -> None:
        ws, loop = self._ws, self._loop
        if ws is None or ws.closed or loop is None:
            return  # the aggregator's task ends as an exception when the link is lost
        progress = {"model_id": model_id, "status": status, "data": json_safe(data)}
        frame = ModelProgress.model_validate(progress).model_dump_json()
        task = loop.create_task(self._send_live(ws, frame))
        self._live_sends.add(task)
        task.add_done_callback(self._live_sends.discard)

    async def _send_live(self, ws: WebSocket, frame: str) -> None:
        assert self._send_lock is not None
        with contextlib.suppress(ConnectionError, RuntimeError):
            async with self._send_lock:
                await ws.send_str(frame)

    def _wake_writer(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _signal_progress(self) -> None:
        if self._progress is not None:
            self._progress.set()
