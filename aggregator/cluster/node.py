"""One aggregator node's part in a site: live fan-out and command routing over NATS.

Changes of the units whose engines this node holds go out on NATS (wire.py); changes of the
others come in, update the local LiveState (a replicated last-state cache) and are published on
the local hub, so /ws works the same for every unit. A request for a unit held elsewhere goes to
the holder over NATS request/reply; the holder hands it to its engine and relays the answer. The
node that got the HTTP request writes the audit entry (it knows the user, the reason and the
outcome, and it is exactly one node); the holder writes nothing.

Login attempts counted by one node are told to the others (api/throttle.py), so the site
throttles on its total. Which node may store an engine's frames is decided in PostgreSQL, not
here (store/fencing.py): NATS news can be late or lost, the lease cannot.

Why a cache and not ask-the-holder snapshots: the unit list needs every unit's summary for every
subscriber, a snapshot must not cost a cross-node round trip per browser and topic, and a cache
keeps serving the last state (marked stale) while the holder is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from aggregator.api.commands import EngineOffline, EngineRefused, EngineTimeout
from aggregator.cluster import wire
from aggregator.context import CONTEXT_KEY, AppContext
from protocol import CommandResult, ProtocolError, RunModel, decode

if TYPE_CHECKING:
    from nats.aio.client import Client as Nats
    from nats.aio.msg import Msg

    from aggregator.engine_ws import EngineConnection

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 100_000
"""Changes waiting to go out to NATS; beyond that the oldest are dropped (and counted as NATS
errors): ingest must never wait on NATS, and the next sync repairs the cache."""
REPLY_MARGIN = 2.0
"""Seconds the asking node waits beyond the engine's own timeout, for the relay's round trip."""


class ClusterStartError(Exception):
    """NATS could not be reached at start-up (one line, for the CLI)."""


@dataclass(frozen=True)
class ClusterConfig:
    url: str
    node: str
    site: str = "site"
    heartbeat: float = 1.0
    """Seconds between a node's 'alive' messages; 3 missed mark its units offline elsewhere."""
    connect_timeout: float = 5.0

    @property
    def prefix(self) -> str:
        return f"setpoint.{wire.subject_token(self.site)}"


@dataclass
class Cluster:
    app: web.Application
    config: ClusterConfig
    nc: Nats | None = None
    holders: dict[str, str] = field(default_factory=dict)
    """Remote unit id -> the node that last said it holds it."""
    holder_since: dict[str, float] = field(default_factory=dict)
    """Remote unit id -> `since` of the newest holder heard of (older holders are ignored)."""
    _since: dict[str, float] = field(default_factory=dict)
    """Unit held here -> when its link registered."""
    _leaving: set[EngineConnection] = field(default_factory=set)
    _nodes: dict[str, float] = field(default_factory=dict)
    _outbox: deque[tuple[str, bytes]] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _replaying: bool = False
    _stopping: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _unsubscribe: Callable[[], None] | None = None

    @property
    def ctx(self) -> AppContext:
        return self.app[CONTEXT_KEY]

    @property
    def subjects(self) -> wire.Subjects:
        return wire.Subjects(self.config.prefix)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        import nats  # only a node that joins a site pays for it

        last_error: list[str] = []

        async def error(exc: Exception) -> None:
            self.ctx.metrics.nats_errors.inc()
            last_error[:] = [str(exc) or type(exc).__name__]
            if self.nc is not None:  # before the first connection, start() reports it once
                log.warning("NATS: %s", last_error[0])

        async def disconnected() -> None:
            if self.nc is not None and not self._stopping:
                log.warning("NATS: disconnected from %s; reconnecting", self.config.url)

        async def reconnected() -> None:
            log.info("NATS: reconnected; exchanging unit states")
            self._rejoin()

        try:
            self.nc = await asyncio.wait_for(
                nats.connect(
                    self.config.url,
                    name=f"setpoint-{self.config.node}",
                    no_echo=True,
                    connect_timeout=min(2.0, self.config.connect_timeout),
                    reconnect_time_wait=0.5,
                    max_reconnect_attempts=-1,
                    error_cb=error,
                    reconnected_cb=reconnected,
                    disconnected_cb=disconnected,
                ),
                self.config.connect_timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            why = last_error[0] if last_error else (str(exc) or type(exc).__name__)
            raise ClusterStartError(
                f"cannot reach NATS at {self.config.url} within "
                f"{self.config.connect_timeout:g} s ({why}); is nats-server running?"
            ) from None
        s = self.subjects
        await self.nc.subscribe(s.everything, cb=self._on_message)
        await self.nc.subscribe(s.commands, cb=self._on_command)
        self._unsubscribe = self.ctx.hub.subscribe(self._on_hub)
        self._share_throttle()
        self._tasks = [
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._beat()),
        ]
        self._rejoin()
        log.info(
            "joined site %r as node %r via %s", self.config.site, self.config.node, self.config.url
        )

    async def stop(self) -> None:
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.nc is not None:
            await self._flush()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 2.0)
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _flush(self) -> None:
        """What the app's shutdown queued (its engines going offline): the other nodes show
        them offline now instead of after this node's heartbeat silence."""
        assert self.nc is not None
        subject = f"{self.subjects.nodes}.{wire.subject_token(self.config.node)}"
        self._outbox.append((subject, json.dumps({"node": self.config.node, "held": []}).encode()))
        while self._outbox:
            try:
                await self.nc.publish(*self._outbox.popleft())
            except Exception:
                self.ctx.metrics.nats_errors.inc()
                break

    def _rejoin(self) -> None:
        """After (re)connecting: tell the others what we hold, ask them for what they hold."""
        for unit_id in list(self.ctx.connections):
            self._announce(unit_id)
        self._send(self.subjects.sync, json.dumps({"node": self.config.node}).encode())

    # --- out ------------------------------------------------------------------------------------

    def _send(self, subject: str, payload: bytes) -> None:
        if len(self._outbox) >= OUTBOX_LIMIT:
            self._outbox.popleft()
            self.ctx.metrics.nats_errors.inc()
        self._outbox.append((subject, payload))
        self._wake.set()

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox and self.nc is not None:
                subject, payload = self._outbox.popleft()
                try:
                    await self.nc.publish(subject, payload)
                except Exception as exc:  # closed or buffer full while reconnecting
                    self.ctx.metrics.nats_errors.inc()
                    log.debug("NATS publish failed: %s", exc)

    def _forward(self, unit_id: str, kind: str, data: Any) -> None:
        since = self._since.setdefault(unit_id, time.time())
        payload = wire.encode(self.config.node, unit_id, kind, data, since)
        self._send(self.subjects.unit(unit_id, kind), payload)

    def _on_hub(self, topic: str, data: Any) -> None:
        """Synchronous, inside ingest: only encode and queue."""
        if self._replaying:
            return
        if topic == "units":
            unit_id = data.get("id") if isinstance(data, dict) else None
            if not isinstance(unit_id, str):
                return
            if unit_id in self.ctx.connections:
                self._forward(unit_id, "units", data)
            elif unit_id in self._since:  # the link just ended: say so, once
                self._forward(unit_id, "units", data)
                if not data.get("online", True):
                    del self._since[unit_id]
            return
        parsed = wire.parse_topic(topic)
        if parsed is None or parsed[0] not in self.ctx.connections:
            return
        if parsed[1] == "registration":
            self._since[parsed[0]] = time.time()  # a new link: a newer holder than any before
        self._forward(parsed[0], parsed[1], wire.outgoing(parsed[1], data))

    def _announce(self, unit_id: str) -> None:
        """Everything a node that just joined needs to know of one held unit."""
        from aggregator.api.service import API_STATE_KEY

        live = self.ctx.live.engines.get(unit_id)
        if live is None:
            return
        if live.uod is not None:
            self._forward(unit_id, "registration", live.uod)
        method = self.app[API_STATE_KEY].methods.get(unit_id) if API_STATE_KEY in self.app else None
        if method is not None:
            self._forward(unit_id, "method", method)
        self._forward(unit_id, "method_state", live.method_state)
        self._forward(unit_id, "control", live.control)
        self._forward(
            unit_id, "tags", {"tags": [t.as_json() for t in live.tags.values()], "sample": None}
        )
        self._forward(unit_id, "units", live.summary())

    async def _beat(self) -> None:
        """'Alive, holding these units' every heartbeat; and a silent node's units go offline."""
        subject = f"{self.subjects.nodes}.{wire.subject_token(self.config.node)}"
        while True:
            held = sorted(self.ctx.connections)
            self._send(subject, json.dumps({"node": self.config.node, "held": held}).encode())
            silent = time.monotonic() - 3 * self.config.heartbeat
            for node, seen in list(self._nodes.items()):
                if seen < silent:
                    del self._nodes[node]
                    log.warning("node %r is silent; its units are offline here", node)
                    for unit_id, holder in list(self.holders.items()):
                        if holder == node:
                            self._gone(unit_id)
            await asyncio.sleep(self.config.heartbeat)

    # --- in -------------------------------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        kind = self.subjects.kind_of(msg.subject)
        if kind == "unit":
            self._on_unit(msg.data)
        elif kind == "node":
            self._on_node(msg.data)
        elif kind == "sync":
            for unit_id in list(self.ctx.connections):
                self._announce(unit_id)
        elif kind == "throttle":
            self._on_throttle(msg.data)

    def _on_unit(self, data: bytes) -> None:
        change = wire.decode(data)
        if change is None or change.node == self.config.node:
            return
        self._nodes[change.node] = time.monotonic()
        unit_id = change.unit_id
        connection = self.ctx.connections.get(unit_id)
        if connection is not None:
            if change.since > self._since.get(unit_id, 0.0):
                self._taken_over(unit_id, change.node)
            return  # else: an older holder's news
        if change.since < self.holder_since.get(unit_id, 0.0):
            return  # an old holder (still) talking after the unit moved on
        self.holder_since[unit_id] = change.since
        going = change.kind == "units" and not (
            isinstance(change.data, dict) and change.data.get("online")
        )
        if going:
            self.holders.pop(unit_id, None)
        else:
            self.holders[unit_id] = change.node
        self._replay(lambda: wire.apply(self.ctx.live, change))

    def _taken_over(self, unit_id: str, node: str) -> None:
        """The engine registered on `node` after it did here: this link is stale (the engine
        lost it without our noticing); end it, then ask for the new holder's full state."""
        connection = self.ctx.connections[unit_id]
        if connection in self._leaving:
            return
        self._leaving.add(connection)
        log.warning("engine %s: taken over by node %r; closing the link here", unit_id, node)
        connection.close(f"taken over by node {node!r}")

        async def resync() -> None:
            try:
                await connection.done.wait()
            finally:
                self._leaving.discard(connection)
            self._send(self.subjects.sync, json.dumps({"node": self.config.node}).encode())

        task = asyncio.ensure_future(resync())
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    def _replay(self, apply: Callable[[], tuple[str, Any] | None]) -> None:
        self._replaying = True
        try:
            published = apply()
            if published is not None:
                self.ctx.hub.publish(*published)
        finally:
            self._replaying = False

    def _gone(self, unit_id: str) -> None:
        self.holders.pop(unit_id, None)
        live = self.ctx.live.engines.get(unit_id)
        if live is None or unit_id in self.ctx.connections:
            return
        change = wire.Change("", unit_id, "units", {"online": False, "run_id": live.run_id})
        self._replay(lambda: wire.apply(self.ctx.live, change))
        tags = {"tags": [t.as_json() for t in live.tags.values()], "sample": None}
        self._replay(lambda: (f"unit/{unit_id}/tags", tags))

    def _on_node(self, data: bytes) -> None:
        try:
            raw = json.loads(data)
            node, held = str(raw["node"]), set(raw["held"])
        except (ValueError, KeyError, TypeError):
            return
        if node == self.config.node:
            return
        self._nodes[node] = time.monotonic()
        for unit_id, holder in list(self.holders.items()):
            if holder == node and unit_id not in held:
                self._gone(unit_id)

    # --- login throttling (item 3) ---------------------------------------------------------------

    def _share_throttle(self) -> None:
        """Tell the other nodes of each login attempt counted here (api/throttle.py)."""
        from aggregator.api.service import API_STATE_KEY

        if API_STATE_KEY not in self.app:
            return
        subject = self.subjects.throttle

        def changed(change: str, keys: list[str]) -> None:
            self._send(subject, json.dumps({"change": change, "keys": keys}).encode())

        self.app[API_STATE_KEY].throttle.on_change = changed

    def _on_throttle(self, data: bytes) -> None:
        from aggregator.api.service import API_STATE_KEY

        try:
            raw = json.loads(data)
            change, keys = str(raw["change"]), [str(k) for k in raw["keys"]]
        except (ValueError, KeyError, TypeError):
            return
        if API_STATE_KEY in self.app:
            state = self.app[API_STATE_KEY]
            state.throttle.apply(change, keys, state.throttle_clock())

    # --- command routing ------------------------------------------------------------------------

    async def request(self, unit_id: str, message: Any, timeout: float) -> CommandResult:
        """`message` for a unit this node does not hold, through the node that holds it."""
        holder = self.holders.get(unit_id)
        if holder is None:
            raise EngineOffline(f"unit {unit_id!r} is offline (no node of the site holds it)")
        if isinstance(message, RunModel):  # its progress stays on the holder (wire.FORWARDED)
            raise EngineOffline(
                f"unit {unit_id!r} is held by node {holder!r}: simulate it on that node"
            )
        if self.nc is None or not self.nc.is_connected:
            raise EngineOffline(
                f"unit {unit_id!r} is held by node {holder!r}, which cannot be reached: "
                "NATS is not connected"
            )
        import nats.errors

        payload = json.dumps(
            {"unit": unit_id, "timeout": timeout, "message": message.model_dump(mode="json")}
        ).encode()
        try:
            reply = await self.nc.request(
                self.subjects.command(unit_id), payload, timeout=timeout + REPLY_MARGIN
            )
        except nats.errors.NoRespondersError:
            raise EngineOffline(f"unit {unit_id!r} is offline (no node answers for it)") from None
        except nats.errors.TimeoutError:
            raise EngineTimeout(
                f"unit {unit_id!r} (held by node {holder!r}) did not answer within "
                f"{timeout + REPLY_MARGIN:g} s"
            ) from None
        except nats.errors.Error as exc:
            self.ctx.metrics.nats_errors.inc()
            raise EngineOffline(f"unit {unit_id!r}: NATS request failed ({exc})") from None
        return _answer(unit_id, reply.data)

    async def _on_command(self, msg: Msg) -> None:
        """Each request in a task of its own: one slow engine must not hold up the others."""
        task = asyncio.ensure_future(self._relay(msg))
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    async def _relay(self, msg: Msg) -> None:
        try:
            raw = json.loads(msg.data)
            unit_id, timeout = str(raw["unit"]), float(raw["timeout"])
            message = decode(json.dumps(raw["message"]))
        except (ValueError, KeyError, TypeError, ProtocolError):
            return
        if unit_id not in self.ctx.connections:
            return  # not ours: the holder answers
        from aggregator.api.service import API_STATE_KEY

        commands = self.app[API_STATE_KEY].commands
        try:
            result = await commands.request(
                unit_id, lambda cid: message.model_copy(update={"id": cid}), timeout=timeout
            )
            answer: dict[str, Any] = {"status": "ok", "result": result.model_dump(mode="json")}
        except EngineRefused as exc:
            answer = {"status": "refused", "error": exc.error, "data": exc.data}
        except EngineTimeout as exc:
            answer = {"status": "timeout", "error": str(exc)}
        except EngineOffline as exc:
            answer = {"status": "offline", "error": str(exc)}
        with contextlib.suppress(Exception):
            await msg.respond(json.dumps(answer).encode())


def _answer(unit_id: str, data: bytes) -> CommandResult:
    try:
        raw = json.loads(data)
        status = raw["status"]
    except (ValueError, KeyError, TypeError):
        raise EngineOffline(f"unit {unit_id!r}: unreadable answer from its node") from None
    if status == "ok":
        return CommandResult.model_validate(raw["result"])
    error = str(raw.get("error", ""))
    if status == "refused":
        raise EngineRefused(error, raw.get("data"))
    if status == "timeout":
        raise EngineTimeout(error)
    raise EngineOffline(error)
