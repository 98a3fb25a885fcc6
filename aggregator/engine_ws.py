"""The engine endpoint `/engine/ws`: the I/O shell around IngestSession.

One EngineConnection per websocket. Reading never waits on storage: accepted frames are handed
to the writer, and the Ack goes out when the writer reports the commit. Outgoing frames go
through one queue and one sender task so that acks, pings and resend requests never interleave
mid-frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy.exc import SQLAlchemyError

from aggregator.audit import AuditTrail
from aggregator.budget import ByteBudget
from aggregator.clock_offsets import ClockOffsets
from aggregator.context import CONTEXT_KEY, AppContext
from aggregator.ingest_session import (
    Action,
    CompareStored,
    IngestSession,
    IntegrityError,
    Overflow,
    RecordGap,
    RequestResend,
    Store,
)
from aggregator.live import LiveEngine
from aggregator.live_update import update_live
from aggregator.security import token_hash
from aggregator.store import BatchOp
from protocol import (
    LIVE_DEMAND_VERSION,
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    STORED_MESSAGE_TYPES,
    Ack,
    CommandResult,
    Heartbeat,
    LiveDemand,
    LiveTags,
    ModelProgress,
    Ping,
    ProtocolError,
    ProtocolErrorMessage,
    Registered,
    RegisterEngine,
    ResendRequest,
    at_least,
    decode,
    encode,
)

log = logging.getLogger(__name__)

_CLOSE = object()


@dataclass(frozen=True)
class _CloseAfter:
    """Put in the outbox after a fatal ProtocolError: the link closes once that is sent."""

    reason: str


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def engine_ws(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT_KEY]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _json_error(
            401, "missing engine token: send 'Authorization: Bearer <token>' (rule 1)"
        )
    try:
        token_name = await ctx.read(ctx.storage.engine_token_name, token_hash(token.strip()))
    except SQLAlchemyError as exc:
        # not the engine's fault: it keeps its frames and retries with its back-off
        log.warning(
            "engine connection from %s turned away: database unreachable: %s", request.remote, exc
        )
        response = _json_error(503, "the aggregator cannot reach its database; retry later")
        response.headers["Retry-After"] = "5"
        return response
    if token_name is None:
        # never log the token itself
        log.warning("engine connection from %s refused: unknown engine token", request.remote)
        return _json_error(
            401,
            "engine token not recognised; create one with "
            "'setpoint-aggregator engine-token create NAME' (rule 1)",
        )
    # timeout: how long a close waits for the peer's close frame; short, so that an engine
    # reconnecting after a half-open link is not kept waiting for its old connection.
    ws = web.WebSocketResponse(max_msg_size=4 * MAX_FRAME_SIZE, autoping=True, timeout=3.0)
    await ws.prepare(request)
    connection = EngineConnection(ctx, ws, token_name, request.remote or "?")
    await connection.run()
    return ws


class EngineConnection:
    def __init__(
        self, ctx: AppContext, ws: web.WebSocketResponse, token_name: str, peer: str
    ) -> None:
        self.ctx = ctx
        self.ws = ws
        self.token_name = token_name
        self.peer = peer
        self.engine_id = ""
        self.session_id = ""
        self.session: IngestSession | None = None
        self.live: LiveEngine | None = None
        self.clock_offsets: ClockOffsets | None = None
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._last_heard = time.monotonic()
        self._next_ping = 0.0
        """When the watchdog sends the next Ping (time.monotonic()); the first at once."""
        self._last_sent = 0.0
        """When a frame last went to the engine (time.monotonic()): any frame is heard."""
        self._outstanding = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._unstored: deque[int] = deque()
        """Bytes of each batch handed to the writer and not yet committed, oldest first."""
        self._unstored_bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self.done = asyncio.Event()
        self._closing = False
        self._close_reason = ""

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        sender = asyncio.create_task(self._sender())
        try:
            if await self._register():
                self.ctx.link_clock.join(self, self._watchdog)
                try:
                    await self._receive()
                finally:
                    self.ctx.link_clock.leave(self)
        finally:
            self._outbox.put_nowait(_CLOSE)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 5.0)
            if not self.ws.closed:
                await self.ws.close()
            await self._drained.wait()
            if self.session is not None:
                self.session.close()
            self.ctx.writer.forget(self)
            self.ctx.live.demand.detach(self.engine_id, self._tell_demand)
            if self.engine_id and self.ctx.connections.get(self.engine_id) is self:
                del self.ctx.connections[self.engine_id]
                self.ctx.live.mark_offline(self.engine_id)
            if self.engine_id:
                log.info(
                    "engine %s disconnected%s",
                    self.engine_id,
                    f" ({self._close_reason})" if self._close_reason else "",
                )
            self.done.set()

    def close(self, reason: str) -> None:
        """Ask this connection to end (heartbeat silence, takeover, storage failure)."""
        if self._closing:
            return
        self._closing = True
        self._close_reason = reason
        asyncio.get_running_loop().create_task(self.ws.close(message=reason[:120].encode()))

    def token_revoked(self) -> None:
        """Its engine token was revoked: the link ends now (rule 1)."""
        if self._closing:
            return
        log.warning("engine %s: its token %r was revoked; closing", self.engine_id, self.token_name)
        self._fatal(ProtocolError("the engine token was revoked", rule=1))

    def _fatal(self, error: ProtocolError, seq: int | None = None) -> None:
        self._protocol_error(error, seq=seq, fatal=True)
        self._outbox.put_nowait(_CloseAfter(error.message))

    async def _sender(self) -> None:
        while True:
            item = await self._outbox.get()
            if item is _CLOSE:
                return
            if isinstance(item, _CloseAfter):
                self.close(item.reason)
                continue
            if self.ws.closed:
                continue
            try:
                await self.ws.send_bytes(item)
            except (ConnectionError, RuntimeError):
                return

    def send(self, message: Any) -> None:
        self._last_sent = time.monotonic()
        self._outbox.put_nowait(encode(message))

    def _protocol_error(
        self, error: ProtocolError, *, seq: int | None = None, fatal: bool = False
    ) -> None:
        self.send(
            ProtocolErrorMessage(rule=error.rule or 11, message=error.message, seq=seq, fatal=fatal)
        )

    # --- registration (rules 1, 2, 12) ----------------------------------------------------------

    async def _register(self) -> bool:
        try:
            msg = await self.ws.receive(timeout=self.ctx.settings.register_timeout)
        except TimeoutError:
            self._protocol_error(
                ProtocolError("no RegisterEngine received in time", rule=1), fatal=True
            )
            return False
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return False
        try:
            message = decode(msg.data)
        except ProtocolError as exc:
            log.warning("engine at %s refused before registration: %s", self.peer, exc)
            self._protocol_error(exc, fatal=True)
            return False
        if not isinstance(message, RegisterEngine):
            self._protocol_error(
                ProtocolError(
                    f"the first frame must be RegisterEngine, not {message.type}", rule=1
                ),
                seq=getattr(message, "seq", None),
                fatal=True,
            )
            return False
        if not await self._identity_ok(message):
            return False
        self.engine_id = message.engine_id
        self.session_id = message.session_id
        if not await self._take_over():
            return False
        try:
            last_seq, open_run = await self.ctx.writer.call(
                self.ctx.storage.register_engine, message, self.token_name
            )
        except Exception:
            log.exception("registering engine %s failed", self.engine_id)
            self._protocol_error(
                ProtocolError(
                    "the aggregator could not store the registration; retry later", rule=2
                ),
                fatal=True,
            )
            return False
        settings = self.ctx.settings
        self.session = IngestSession(
            last_seq,
            now=time.monotonic(),
            resend_timeout=settings.resend_timeout,
            budget=ByteBudget(settings.held_bytes_per_engine, self.ctx.held_budget),
        )
        self.ctx.token_watch.watch(self.ctx)
        offset = time.time() - message.clock
        self.send(
            Registered(
                engine_id=self.engine_id,
                session_id=self.session_id,
                last_seq=last_seq,
                clock_offset=offset,
                protocol_version=PROTOCOL_VERSION,
                heartbeat_interval=settings.heartbeat_interval,
            )
        )
        self._go_live(message, open_run, last_seq, offset)
        if at_least(message.protocol_version, LIVE_DEMAND_VERSION):
            self.ctx.live.demand.attach(self.engine_id, self._tell_demand)
        return True

    def _tell_demand(self, watched: bool) -> None:
        """LiveDemand (1.4): whether anyone here watches this unit live (live_demand.py)."""
        if not self._closing:
            self.send(LiveDemand(watched=watched))

    async def _take_over(self) -> bool:
        """Become this engine's connection; a previous one is closed first and waited for, so
        its frames are committed before we read last_seq (rule 2)."""
        previous = self.ctx.connections.get(self.engine_id)
        self.ctx.connections[self.engine_id] = self
        if previous is not None and previous is not self:
            previous.close("replaced by a new connection of the same engine")
            timeout = self.ctx.settings.takeover_timeout
            try:
                # its frames are committed before we read last_seq
                await asyncio.wait_for(previous.done.wait(), timeout)
            except TimeoutError:
                # Waiting longer would lock the engine out for good. The old connection is no
                # longer in `connections`, so the engine's retry registers at once; anything it
                # still commits later is below the seq the engine resends from, or is refused
                # as a duplicate and fixed by the reconnect that follows.
                log.error(
                    "engine %s: its previous connection did not end within %g s; refusing this "
                    "one so the engine retries",
                    self.engine_id,
                    timeout,
                )
                self._protocol_error(
                    ProtocolError(
                        f"the previous connection of this engine did not end within {timeout:g} s;"
                        " retry",
                        rule=2,
                    ),
                    fatal=True,
                )
                return False
            if self.ctx.connections.get(self.engine_id) is not self or self._closing:
                return False  # an even newer connection took over while we waited
        return True

    def _go_live(
        self, message: RegisterEngine, open_run: str | None, last_seq: int, offset: float
    ) -> None:
        """The registered engine's live state, clock offset and log line, and the news to /ws."""
        live = self.ctx.live.engine(self.engine_id, message.uod_name)
        live.name = message.uod_name
        live.online = True
        live.session_id = self.session_id
        live.uod = message.uod
        live.run_id = open_run if live.run_id is None else live.run_id
        live.last_seen = time.time()
        self.live = live
        self.clock_offsets = ClockOffsets(self.ctx, self.engine_id)
        self.clock_offsets.measured(offset, "registration", live.run_id)
        log.info(
            "engine %s registered (session %s, token %r, last seq %d)",
            self.engine_id,
            self.session_id,
            self.token_name,
            last_seq,
        )
        self.ctx.hub.publish(
            f"unit/{self.engine_id}/registration", message.uod.model_dump(mode="json")
        )
        self.ctx.live.publish_units(self.engine_id)

    async def _identity_ok(self, message: RegisterEngine) -> bool:
        """The token may register only the engine id it is bound to (rule 1). Checked before
        the takeover, so an impostor neither disconnects the real engine nor stores anything;
        its attempt is audited."""
        try:
            binding = await self.ctx.writer.call(
                self.ctx.storage.bind_engine_token, self.token_name, message.engine_id
            )
        except Exception:
            log.exception("checking the engine token %r failed", self.token_name)
            self._protocol_error(
                ProtocolError("the aggregator could not check the engine token; retry", rule=1),
                fatal=True,
            )
            return False
        if binding.ok:
            return True
        log.warning(
            "engine at %s refused: token %r may not register engine %r (%s)",
            self.peer,
            self.token_name,
            message.engine_id,
            binding.reason,
        )
        self._protocol_error(ProtocolError(binding.reason, rule=1), fatal=True)
        trail = AuditTrail(self.ctx.storage.engine, key=self.ctx.settings.audit_key)
        try:
            await self.ctx.writer.call(
                partial(
                    trail.append,
                    time=time.time(),
                    user=f"engine token {self.token_name}"[:128],
                    action="engine register",
                    unit_id=message.engine_id[:256],
                    new={
                        "ok": False,
                        "result": binding.reason,
                        "rule": 1,
                        "bound_to": binding.engine_id,
                        "address": self.peer,
                        "computer_name": message.computer_name[:256],
                    },
                )
            )
        except Exception:
            log.exception("auditing the refused registration of %r failed", message.engine_id)
        return False

    # --- steady state ---------------------------------------------------------------------------

    def _watchdog(self, now: float) -> float:
        """Pings every interval, resend timeouts, and the 3-interval silence rule (rule 10).
        Called by the app's one LinkClock (link_clock.py) while the link is open; returns when
        it is next needed."""
        if self.ws.closed:
            self.ctx.link_clock.leave(self)
            return now
        interval = self.ctx.settings.heartbeat_interval
        if now - self._last_heard > 3 * interval:
            log.warning(
                "engine %s silent for %.1f s: closing the link",
                self.engine_id,
                now - self._last_heard,
            )
            self.ctx.link_clock.leave(self)
            self.close("heartbeat timeout")
            return now
        if now >= self._next_ping:
            # Rule 10 asks that the engine hear from us each interval; an Ack is heard as
            # well as a Ping, so while Acks flow the Ping (and the engine's answer) is saved.
            if self._next_ping and now - self._last_sent < interval:
                self._next_ping = self._last_sent + interval
            else:
                self.send(Ping(id=uuid.uuid4().hex, time=time.time()))
                self._next_ping = now + interval
        assert self.session is not None
        self._handle(self.session.on_tick(now))
        due = min(self._next_ping, self._last_heard + 3 * interval)
        resend = self.session.resend_deadline()
        return due if resend is None else min(due, resend)

    async def _receive(self) -> None:
        async for msg in self.ws:
            self._last_heard = time.monotonic()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                self._frame(msg.data)
                if not self._room.is_set():
                    # the writer is behind on this link: read no more until it catches up
                    await self._room.wait()
                    self._last_heard = time.monotonic()
            elif msg.type == WSMsgType.ERROR:
                log.warning("engine %s link error: %s", self.engine_id, self.ws.exception())
                break

    def _frame(self, data: bytes | str) -> None:
        assert self.session is not None
        try:
            message = decode(data)
        except ProtocolError as exc:
            log.warning("engine %s sent a bad frame: %s", self.engine_id, exc)
            self._protocol_error(exc)
            return
        if isinstance(message, STORED_MESSAGE_TYPES):
            if message.seq > self.session.accepted and self.live is not None:
                # live values now, even if held for storage order
                update_live(self.ctx.live, self.engine_id, self.live, message)
            self._handle(self.session.on_message(message, time.monotonic(), data))
        elif isinstance(message, Heartbeat):
            self._handle(self.session.on_heartbeat(message.seq, time.monotonic()))
            if self.clock_offsets is not None and self.live is not None:
                self.clock_offsets.measured(
                    time.time() - message.time, "heartbeat", self.live.run_id
                )
        elif isinstance(message, LiveTags):
            if self.live is not None:
                update_live(self.ctx.live, self.engine_id, self.live, message)
        elif isinstance(message, CommandResult):
            # answers to Ping, and to API requests: aggregator/api/commands.py correlates them
            self.ctx.hub.publish(f"unit/{self.engine_id}/command_result", message)
        elif isinstance(message, ModelProgress):  # run_model: aggregator/api/simulate_api.py
            self.ctx.hub.publish(f"unit/{self.engine_id}/model_progress", message)
        elif isinstance(message, ProtocolErrorMessage):
            log.warning(
                "engine %s reports a protocol error (rule %s): %s",
                self.engine_id,
                message.rule,
                message.message,
            )
            if message.rule == 7 and message.seq is not None:
                self._handle(
                    self.session.on_engine_gone(message.seq, message.seq_end, time.monotonic())
                )
        elif isinstance(message, RegisterEngine):
            self._protocol_error(
                ProtocolError("RegisterEngine is only allowed as the first frame", rule=1)
            )
        else:
            self._protocol_error(
                ProtocolError(
                    f"{message.type} is an aggregator message; an engine may not send it", rule=4
                )
            )

    def _handle(self, actions: list[Action]) -> None:
        if not actions:
            return
        assert self.session is not None
        ops: list[BatchOp] = []
        size = 0
        for action in actions:
            if isinstance(action, RequestResend):
                log.info(
                    "engine %s: gap before seq, asking to resend from %d",
                    self.engine_id,
                    action.from_seq,
                )
                self.send(ResendRequest(from_seq=action.from_seq))
                self.ctx.link_clock.soon(time.monotonic() + self.ctx.settings.resend_timeout)
                continue
            if isinstance(action, Overflow):
                log.warning(
                    "engine %s: %d frames (%d bytes) held beyond missing seq %d; closing the "
                    "link so the engine resends in order",
                    self.engine_id,
                    action.held,
                    action.held_bytes,
                    action.from_seq,
                )
                self._fatal(
                    ProtocolError(
                        f"too much held beyond missing seq {action.from_seq} ({action.held} "
                        f"frames, {action.held_bytes} bytes); reconnect and resend in order",
                        rule=7,
                    )
                )
                continue
            if isinstance(action, Store | CompareStored | IntegrityError | RecordGap):
                ops.append(BatchOp(self.engine_id, self.session_id, action))
                if isinstance(action, Store | CompareStored):
                    size += action.size
        if ops and not self._closing:
            self._outstanding += 1
            self._drained.clear()
            self._unstored.append(size)
            self._unstored_bytes += size
            if self._unstored_bytes > self.ctx.settings.unstored_bytes_per_engine:
                self._room.clear()
            self.ctx.writer.submit(self, ops, self.session.accepted)

    # --- writer callbacks ------------------------------------------------------------------------

    def _item_done(self, items: int) -> None:
        self._outstanding -= items
        for _ in range(min(items, len(self._unstored))):
            self._unstored_bytes -= self._unstored.popleft()
        if self._unstored_bytes <= self.ctx.settings.unstored_bytes_per_engine:
            self._room.set()
        if self._outstanding == 0:
            self._drained.set()

    def on_committed(self, seq: int, items: int) -> None:
        self._item_done(items)
        if self.session is None or self._closing:
            return
        # Always answer: a batch of resent duplicates must be acknowledged too (rule 6).
        ack = self.session.on_committed(seq, time.monotonic())
        self.send(Ack(seq=ack))

    def on_store_failed(self, error: BaseException, items: int) -> None:
        self._item_done(items)
        self.close("storage failed; reconnect and resend")
