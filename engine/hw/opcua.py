"""OPC UA driver: values arrive by subscription, writes go out on change, the recovery machine
decides when to reconnect.

The server samples each node at the UOD's scan interval (or faster) and sends only changes; the
driver's task stores them for the scan's `snapshot()`, sends queued writes one by one, reads each
written node back (for `settle_outputs`) and watches the session. On a lost session it tears the
link down and builds a new one (connect, log in, learn the nodes, subscribe again) when the
recovery machine says so. asyncua is imported when the driver starts, not before.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.hw.base import Clock, ConnectionState, Quality, Reading, ScalarValue, WriteRejected
from engine.hw.driver import TaskDriver, close_enough
from engine.hw.opcua_config import (
    FLOAT,
    OpcUaClient,
    OpcUaNode,
    as_nodes,
    encode,
    plain,
    quality_of,
    same_unit_by_pint,
    unit_problem,
)
from engine.hw.recovery import Action, RecoveryPolicy

if TYPE_CHECKING:
    from engine.hw.opcua_link import NodeInfo, OpcUaLink

__all__ = ["OpcUaClient", "OpcUaHardware", "OpcUaNode", "RecoveryPolicy"]

_IDLE_STEP = 0.1  # s between looks at the session and the recovery deadlines when idle


class OpcUaHardware(TaskDriver):
    """The nodes of one OPC UA server, one tag each.

    `units` (tag -> the UOD's unit, None for none) is checked against each node's
    EngineeringUnits on every connect; `uod.opcua(...)` passes the UOD's own. `scan_interval`
    is the fastest the engine looks: the sampling interval is at most that."""

    def __init__(
        self,
        connection: OpcUaClient,
        nodes: Mapping[str, str | OpcUaNode | Mapping[str, Any]],
        *,
        units: Mapping[str, str | None] | None = None,
        scan_interval: float = 0.1,
        clock: Clock = time.monotonic,
        policy: RecoveryPolicy | None = None,
        name: str | None = None,
        stop_grace: float = 2.0,
    ) -> None:
        declared = as_nodes(nodes)
        if scan_interval <= 0:
            raise ValueError(f"scan_interval must be > 0 s, not {scan_interval}")
        sampling = connection.sampling_interval or scan_interval
        if sampling > scan_interval:
            raise ValueError(
                f"sampling_interval {sampling:g} s is slower than the scan ({scan_interval:g} s): "
                "the scan would see old values"
            )
        tags = list(declared)
        super().__init__(name or connection.describe(), tags, tags, clock, policy, stop_grace)
        self.connection = connection
        self.registers: dict[str, OpcUaNode] = declared
        self.units = dict(units) if units is not None else None
        self.sampling = sampling
        self._info: dict[str, NodeInfo] = {}
        self._link: OpcUaLink | None = None
        self._first: asyncio.Future[str | None] | None = None
        self._attempt_now = True
        self._due: set[str] = set()  # written tags not yet read back
        self._read_backs: dict[str, Reading] = {}
        self._same_unit: Callable[[str, str], bool] | None = None
        self.values_received = 0  # data changes from the subscription
        self.writes_sent = 0
        self.connects = 0

    # ---- what the base needs --------------------------------------------------------------

    def _check_write(self, tag: str, value: ScalarValue) -> None:
        if tag not in self.registers:
            raise KeyError(f"{self.name}: no node declared for tag {tag!r}")
        info = self._info.get(tag)
        if info is None:
            return  # not connected yet: the server will accept or refuse it
        node = self.registers[tag].node
        if not info.writable:
            raise ValueError(f"{self.name}: tag {tag!r}: node {node} is read-only")
        if info.variant_type is None:
            raise ValueError(f"{self.name}: tag {tag!r}: node {node} has a type a tag cannot hold")
        try:
            encode(info.variant_type, value)
        except ValueError as exc:
            raise ValueError(f"{self.name}: tag {tag!r} (node {node}): {exc}") from None

    def _safe_values(self) -> dict[str, ScalarValue]:
        return {t: n.safe_value for t, n in self.registers.items() if n.safe_value is not None}

    def _confirmable(self) -> list[str]:
        """Every written node is read back once the writes before it are answered."""
        return list(self.registers)

    def _read_back(self, tag: str) -> Reading | None:
        return self._read_backs.get(tag) or Reading(None, Quality.BAD, 0.0)

    def _before_settle(self) -> None:
        """Every node read back before is read again: only a read-back after the settling
        began confirms an output."""
        self._due |= set(self._read_backs)

    def _same(self, tag: str, asked: ScalarValue, held: ScalarValue) -> bool:
        """Compared as the node holds them, so a Float node's rounding does not count."""
        info = self._info.get(tag)
        if info is None or info.variant_type is None:
            return close_enough(asked, held)
        try:
            a, h = encode(info.variant_type, asked), encode(info.variant_type, held)
        except ValueError:
            return False
        if info.variant_type == FLOAT:
            return bool(struct.pack("<f", float(a)) == struct.pack("<f", float(h)))
        return close_enough(a, h)

    async def _start_io(self) -> None:
        """Waits for the first connect (a few requests' time at most): a server that refuses a
        node, the login or the security, or whose units differ from the UOD's, stops the engine
        at start with one line instead of a run that pauses later."""
        from engine.hw.opcua_link import quiet_library

        quiet_library()
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._first = loop.create_future()
        self._running = True
        self._task = asyncio.create_task(self._run(), name=f"opcua {self.name}")
        with contextlib.suppress(TimeoutError):
            problem = await asyncio.wait_for(
                asyncio.shield(self._first), 3 * self.connection.timeout
            )
            if problem is not None:
                await self._stop_io()
                raise ValueError(f"{self.name}: {problem}")

    def _exchange_timeout(self) -> float:
        return self.connection.timeout

    async def _release_link(self) -> None:
        await self._close_link()

    # ---- the I/O task ---------------------------------------------------------------------

    async def _run(self) -> None:
        self._attempt_now = True
        while self._running:
            try:
                await self._step()
            except Exception as exc:  # a driver or library bug (a plain UaError, ...)
                self._fault(exc)
                with contextlib.suppress(Exception):
                    await self._close_link()

    async def _step(self) -> None:
        from engine.hw.opcua_link import LinkError

        assert self._wake is not None
        rec = self._recovery
        if self._link is None:
            if self._attempt_now or rec.poll(self._clock()) is Action.RECONNECT:
                self._attempt_now = False
                await self._connect()
            else:
                await self._idle(rec.next_deadline())
            return
        broken = self._link.broken
        if broken is not None:
            await self._drop(broken)
            return
        try:
            await self._flush()
        except LinkError as exc:
            lost = self._link.broken is not None
            self._report(str(exc), lost=lost)
            if lost:
                await self._close_link()
            return
        rec.poll(self._clock())
        if rec.link_down:  # the recovery machine wants the link rebuilt
            await self._close_link()
            return
        self._wake.clear()
        if not self._ledger.pending:
            await self._idle(rec.next_deadline())

    async def _idle(self, deadline: float | None) -> None:
        assert self._wake is not None
        delay = _IDLE_STEP
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - self._clock()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()

    async def _connect(self) -> None:
        from engine.hw.opcua_link import ConfigError, LinkError, OpcUaLink

        link = OpcUaLink(
            self.connection, self.registers, self.sampling, self._on_value, self._on_lost
        )
        try:
            await link.open(want_units=self.units is not None)
            problems = self._unit_problems(link.info)
            if problems:
                raise ConfigError("; ".join(problems))
            await link.subscribe()
        except LinkError as exc:
            await link.close()
            self._first_attempt(str(exc) if isinstance(exc, ConfigError) else None)
            self._report(str(exc), lost=True)
            return
        self._link = link
        self._info = link.info
        self.connects += 1
        self._due |= set(self._read_backs)  # what was read back before may have changed
        self._first_attempt(None)
        self._report(None)

    def _first_attempt(self, problem: str | None) -> None:
        if self._first is not None and not self._first.done():
            self._first.set_result(problem)

    def _unit_problems(self, info: Mapping[str, NodeInfo]) -> list[str]:
        if self.units is None:
            return []
        problems = []
        for tag, node in info.items():
            if tag not in self.units:
                continue
            declared, served = self.units[tag], node.unit
            differ = served is not None and declared is not None and declared != served
            if differ and self._same_unit is None:
                self._same_unit = same_unit_by_pint()
            problem = unit_problem(tag, declared, served, self._same_unit)
            if problem:
                problems.append(problem)
        return problems

    async def _flush(self) -> None:
        """Sends queued writes in order, then reads the written nodes back. Raises LinkError."""
        link = self._link
        assert link is not None
        while (write := self._ledger.head()) is not None:
            self.writes_sent += 1
            refusal = await link.write(write.tag, write.value)
            if refusal is None:
                self._ledger.done(write)
                self._due.add(write.tag)
            else:
                node = self.registers[write.tag].node
                message = f"write of {write.value!r} to node {node}: {refusal}"
                self._ledger.done(write, message)
                self._events.append(
                    WriteRejected(write.tag, write.value, message, self._clock(), self.name)
                )
            self._report(None)
        if self._due:
            mark = self._ledger.read_mark()
            tags = sorted(self._due)
            values = await link.read(tags)
            now = self._clock()
            for tag, (value, status) in values.items():
                self._read_backs[tag] = Reading(plain(value), quality_of(status), now)
            self._ledger.mark_read(tags, mark)
            self._watch_outputs(tags)
            self._due.clear()
            self._report(None)

    def _on_value(self, tag: str, value: object, status: int) -> None:
        """A data change from the subscription (runs on the loop, between scans)."""
        self.values_received += 1
        now = self._clock()
        quality = quality_of(status)
        held = plain(value)
        if held is None or quality is Quality.BAD:
            self._readings[tag] = Reading(self._readings[tag].value, Quality.BAD, now)
        else:
            self._readings[tag] = Reading(held, quality, now)
        if self._recovery.state is ConnectionState.ISSUE:
            self._report(None)

    def _on_lost(self, message: str) -> None:
        self._wake_io()

    async def _drop(self, why: str) -> None:
        """The session is gone: values are stale until the new subscription sends them again."""
        self._report(why, lost=True)
        await self._close_link()

    async def _close_link(self) -> None:
        link, self._link = self._link, None
        for tag, r in self._readings.items():
            if r.quality is Quality.GOOD:
                self._readings[tag] = Reading(r.value, Quality.STALE, r.timestamp, r.unit)
        if link is not None:
            await link.close()
