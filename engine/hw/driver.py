"""What every polling driver does alike, so that a new one only writes its transport.

`PollingDriver` is the base of the Modbus, OPC UA and serial drivers: the scan-cycle interface
(masked snapshot, queued writes, safe values, events), the stop grace and `settle_outputs`.
`TaskDriver` adds the worker task's start flag, wake-up and bounded stop for the asyncio ones.
`OutputLedger` is its sans-I/O write bookkeeping: the de-duplicating queue the scan fills and the
I/O side drains in order, and the record of what became of each output.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from engine.hw.base import (
    UNSET,
    Clock,
    ConnectionState,
    HardwareEvent,
    OutputChanged,
    OutputCheck,
    OutputResult,
    Quality,
    Reading,
    ScalarValue,
    masked_quality,
)
from engine.hw.recovery import RecoveryMachine, RecoveryPolicy

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueuedWrite:
    """`seq` orders every write ever queued, so a read can be told to have happened after it."""

    seq: int
    tag: str
    value: ScalarValue


class OutputLedger:
    """The write queue and each output's fate. Not thread-safe: a threaded driver locks it."""

    def __init__(self) -> None:
        self.pending: deque[QueuedWrite] = deque()
        self._seq = 0
        self._sent = 0  # seq of the last write the device answered (accepted or refused)
        self._requested: dict[str, ScalarValue] = {}  # for de-duplication only
        self._asked: dict[str, QueuedWrite] = {}  # the last value asked for, per tag
        self._refused: dict[str, tuple[int, str]] = {}  # tag -> (seq, the device's refusal)
        self._read_after: dict[str, int] = {}  # tag -> last seq sent before a read-back of it
        self._epoch = 0  # read-backs taken before the last `begin_settle` do not count
        self._since_reconnect = 0  # writes up to this seq may predate a device restart
        self._told: dict[str, int] = {}  # tag -> seq of the write a mismatch was reported for

    def queue(self, tag: str, value: ScalarValue, *, force: bool) -> bool:
        """`force` skips the de-duplication: safe values must reach the device even when they
        equal the last value asked for, which the device may no longer hold."""
        if not force and self._requested.get(tag, UNSET) == value:
            return False
        self._seq += 1
        write = QueuedWrite(self._seq, tag, value)
        self._requested[tag] = value
        self._asked[tag] = write
        self.pending.append(write)
        return True

    def head(self) -> QueuedWrite | None:
        return self.pending[0] if self.pending else None

    def done(self, write: QueuedWrite, refusal: str | None = None) -> None:
        """The device answered the head write; a link failure leaves it queued instead."""
        if self.pending and self.pending[0] is write:
            self.pending.popleft()
        self._sent = max(self._sent, write.seq)
        if refusal is None:
            self._refused.pop(write.tag, None)
            return
        self._refused[write.tag] = (write.seq, refusal)
        if self._requested.get(write.tag, UNSET) == write.value:
            del self._requested[write.tag]

    def forget_requested(self) -> None:
        """After a reconnect the device may have been power-cycled and hold its defaults: the
        next write of an unchanged value must be sent again (and the values asked for before
        are no longer expected back)."""
        self._requested.clear()
        self._since_reconnect = self._seq

    @property
    def sent(self) -> int:
        return self._sent

    def read_mark(self) -> tuple[int, int]:
        """Taken just before a read: what `mark_read` needs to place the read in time."""
        return self._sent, self._epoch

    def mark_read(self, tags: Iterable[str], mark: tuple[int, int]) -> None:
        """`tags` were read back from the device by a read that started at `mark` (after every
        write up to its seq was answered). A read that started before the settling began
        does not count: the device may have changed since (another master, its watchdog)."""
        sent_before, epoch = mark
        if epoch != self._epoch:
            return
        for tag in tags:
            self._read_after[tag] = max(self._read_after.get(tag, 0), sent_before)

    def read_back_due(self, tag: str) -> QueuedWrite | None:
        """The last write of `tag` if the device accepted it, no newer one is queued, a read
        since then has come back, it was asked for after the last reconnect, and no mismatch
        was reported for it yet: the write a read-back must now equal."""
        write = self._asked.get(tag)
        if (
            write is None
            or write.seq > self._sent
            or write.seq <= self._since_reconnect
            or tag in self._refused
            or self._read_after.get(tag, 0) < write.seq
            or self._told.get(tag) == write.seq
        ):
            return None
        return write

    def mismatch_told(self, write: QueuedWrite) -> None:
        self._told[write.tag] = write.seq

    def begin_settle(self) -> None:
        """From now on only read-backs that start later confirm an output."""
        self._epoch += 1
        self._read_after.clear()

    def settled(self, readable: Iterable[str]) -> bool:
        """Nothing queued, and each accepted write of a `readable` tag has been read back."""
        if self.pending:
            return False
        for tag in readable:
            write = self._asked.get(tag)
            if write is None or tag in self._refused:
                continue
            if self._read_after.get(tag, 0) < write.seq:
                return False
        return True

    def results(
        self,
        safe_values: Mapping[str, ScalarValue],
        read_back: Callable[[str], Reading | None],
        same: Callable[[str, ScalarValue, ScalarValue], bool],
        *,
        timeout: float,
        link_problem: str | None,
        link_down: bool = False,
    ) -> list[OutputResult]:
        """One result per output asked for or with a safe value. `read_back(tag)` is the reading
        that confirms `tag`, None if the device offers none; `link_problem` says what is wrong
        with the connection, if anything; while `link_down`, earlier read-backs are history."""
        queued = {w.tag for w in self.pending}
        tags = list(self._asked) + [t for t in safe_values if t not in self._asked]
        out: list[OutputResult] = []
        for tag in tags:
            write = self._asked.get(tag)
            if write is None:
                out.append(
                    OutputResult(
                        tag, safe_values[tag], OutputCheck.FAILED, "safe value never queued"
                    )
                )
                continue
            if tag in queued:
                why = f"not written within {timeout:g} s"
                if link_problem:
                    why += f"; connection {link_problem}"
                out.append(OutputResult(tag, write.value, OutputCheck.FAILED, why))
                continue
            refused = self._refused.get(tag)
            if refused is not None:
                out.append(
                    OutputResult(tag, write.value, OutputCheck.FAILED, f"refused: {refused[1]}")
                )
                continue
            out.append(self._checked(write, read_back(tag), same, timeout, link_problem, link_down))
        return out

    def _checked(
        self,
        write: QueuedWrite,
        reading: Reading | None,
        same: Callable[[str, ScalarValue, ScalarValue], bool],
        timeout: float,
        link_problem: str | None,
        link_down: bool,
    ) -> OutputResult:
        """While `link_down` a read-back is history: it may confirm no more than an accepted
        write, and the last value seen that differs keeps the output unsafe (state unknown)."""
        tag, value = write.tag, write.value
        if reading is None:
            return OutputResult(tag, value, OutputCheck.WRITTEN)
        seen = reading.value if reading.quality is Quality.GOOD else None
        differs = seen is not None and not same(tag, value, seen)
        if link_down and differs:
            return OutputResult(
                tag,
                value,
                OutputCheck.MISMATCH,
                f"state unknown: last seen {seen!r}; connection {link_problem}",
            )
        if self._read_after.get(tag, 0) < write.seq:
            why = f"not read back within {timeout:g} s"
            if link_problem:
                why += f"; connection {link_problem}"
            return OutputResult(tag, value, OutputCheck.WRITTEN, why)
        if seen is None:
            return OutputResult(tag, value, OutputCheck.WRITTEN, "the device refused the read-back")
        if differs:
            return OutputResult(tag, value, OutputCheck.MISMATCH, f"the device holds {seen!r}")
        if link_down:
            why = f"read back before the connection was lost ({link_problem})"
            return OutputResult(tag, value, OutputCheck.WRITTEN, why)
        return OutputResult(tag, value, OutputCheck.CONFIRMED)


def _message(exc: Exception) -> str:
    """A KeyError's text without the quotes str() puts around it."""
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def close_enough(asked: ScalarValue, held: ScalarValue) -> bool:
    """Equality that forgives the last bits of a float and the case of a word ("Stop" is
    confirmed by a reply "STOP")."""
    if isinstance(asked, bool) or isinstance(held, bool):
        return bool(asked) == bool(held)
    if isinstance(asked, int | float) and isinstance(held, int | float):
        return math.isclose(asked, held, rel_tol=1e-9, abs_tol=1e-9)
    return str(asked).strip().casefold() == str(held).strip().casefold()


class PollingDriver(ABC):
    """One link polled by a background worker (an asyncio task or a thread).

    The scan side (`snapshot`, `write`, `write_safe_values`, `drain_events`) only touches memory
    under `_lock`; the worker takes writes from `_ledger` in order, stores `_readings`, appends
    `WriteRejected` to `_events` and reports each exchange through `_report`. A subclass
    declares its tags and provides the transport (see the abstract methods).
    """

    def __init__(
        self,
        name: str,
        tags: Iterable[str],
        read_tags: Iterable[str],
        clock: Clock,
        policy: RecoveryPolicy | None,
        stop_grace: float,
    ) -> None:
        seen: set[str] = set()
        for tag in tags:
            if tag in seen:
                raise ValueError(f"tag {tag!r} is declared twice")
            seen.add(tag)
        if stop_grace < 0:
            raise ValueError(f"stop_grace must be >= 0 seconds, not {stop_grace}")
        self.name = name
        self.stop_grace = stop_grace
        self._clock = clock
        self._lock = threading.Lock()  # uncontended in a single-threaded asyncio driver
        self._recovery = RecoveryMachine(name, policy or RecoveryPolicy())
        start = clock()
        self._readings: dict[str, Reading] = {
            tag: Reading(None, Quality.BAD, start) for tag in read_tags
        }
        self._ledger = OutputLedger()
        self._events: list[HardwareEvent] = []
        self._started = False
        self._dead = False  # the worker was found ended while the driver runs

    # ---- what a driver provides ----

    @abstractmethod
    def _check_write(self, tag: str, value: ScalarValue) -> None:
        """Raises KeyError (unknown tag) or ValueError (read-only, cannot be encoded)."""

    @abstractmethod
    def _safe_values(self) -> dict[str, ScalarValue]: ...

    @abstractmethod
    def _wake_io(self) -> None:
        """Tells an idle worker that writes are queued."""

    @abstractmethod
    async def _start_io(self) -> None: ...

    @abstractmethod
    async def _stop_io(self) -> None:
        """Ends the worker and closes the link, bounded in time."""

    @abstractmethod
    def _io_alive(self) -> bool: ...

    def _always_send(self, tag: str) -> bool:
        """True for writes that act each time (tare, zero), so they are never de-duplicated."""
        return False

    def _confirmable(self) -> list[str]:
        """Output tags whose writes the worker reads back (see `OutputLedger.mark_read`)."""
        return []

    def _read_back(self, tag: str) -> Reading | None:
        """The reading that confirms output `tag`; None if the device offers none."""
        return None

    def _same(self, tag: str, asked: ScalarValue, held: ScalarValue) -> bool:
        return close_enough(asked, held)

    def _before_settle(self) -> None:
        """Lets a driver make its read-backs due at once (called under `_lock`)."""
        return None

    # ---- the scan-cycle interface (never blocks) ----

    @property
    def connection_state(self) -> ConnectionState:
        return self._recovery.state

    def snapshot(self) -> Mapping[str, Reading]:
        if self._started and not self._io_alive() and not self._dead:
            self._dead = True
            self._fault(RuntimeError("the I/O worker ended"))
        with self._lock:
            state = self._recovery.state
            readings = dict(self._readings)
        if state is ConnectionState.OK:
            return MappingProxyType(readings)
        return MappingProxyType(
            {
                tag: Reading(r.value, masked_quality(state, r.quality), r.timestamp, r.unit)
                for tag, r in readings.items()
            }
        )

    def write(self, values: Mapping[str, ScalarValue]) -> None:
        self._queue(values, force=False)

    def write_safe(self, values: Mapping[str, ScalarValue]) -> None:
        """Safe values declared on tags (see `SafeWriter`): forced, like the driver's own."""
        self._queue(values, force=True)

    def write_safe_values(self) -> None:
        self._queue(self._safe_values(), force=True)

    def _queue(self, values: Mapping[str, ScalarValue], *, force: bool) -> None:
        """Each value on its own: the good ones are queued, then the first bad one (unknown tag,
        read-only, cannot be encoded) raises, naming every bad one if there are several."""
        good: list[tuple[str, ScalarValue]] = []
        problems: list[Exception] = []
        for tag, value in values.items():
            try:
                self._check_write(tag, value)
            except Exception as exc:
                problems.append(exc)
            else:
                good.append((tag, value))
        with self._lock:
            for tag, value in good:
                self._ledger.queue(tag, value, force=force or self._always_send(tag))
        if good:
            self._wake_io()
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise ValueError("; ".join(_message(p) for p in problems))

    def drain_events(self) -> list[HardwareEvent]:
        with self._lock:
            events: list[HardwareEvent] = [*self._recovery.drain_events(), *self._events]
            self._events = []
        events.sort(key=lambda e: e.timestamp)
        return events

    @property
    def pending_writes(self) -> int:
        with self._lock:
            return len(self._ledger.pending)

    # ---- the worker's side ----

    def _report(self, error: str | None, *, lost: bool = False) -> None:
        """One exchange's outcome for the recovery machine; `lost`: the link itself broke."""
        with self._lock:
            now = self._clock()
            if error is None:
                if self._recovery.link_down:
                    self._ledger.forget_requested()
                self._recovery.on_success(now)
            elif lost:
                self._recovery.on_connection_lost(now, error)
            else:
                self._recovery.on_error(now, error)

    def _watch_outputs(self, tags: Iterable[str]) -> None:
        """After a read-back of output `tags` (under `_lock` for a threaded worker): one that
        differs from the accepted write gives one `OutputChanged` per write."""
        for tag in tags:
            write = self._ledger.read_back_due(tag)
            if write is None:
                continue
            reading = self._read_back(tag)
            if reading is None or reading.quality is not Quality.GOOD or reading.value is None:
                continue
            if self._same(tag, write.value, reading.value):
                continue
            self._ledger.mismatch_told(write)
            message = (
                f"the device holds {reading.value!r}, not the {write.value!r} written: changed "
                "on the device (its watchdog, a local panel or another master)"
            )
            self._events.append(
                OutputChanged(tag, write.value, reading.value, message, self._clock(), self.name)
            )

    def _fault(self, exc: BaseException) -> None:
        """An unexpected exception in the worker: a driver bug, not a device answer. The link
        counts as lost (Error: readings BAD, the run pauses) and the worker carries on with a
        reconnect, so a one-off bug does not leave old values looking live."""
        _log.error("%s: driver error", self.name, exc_info=exc)
        with self._lock:
            self._recovery.on_fault(self._clock(), f"driver error: {type(exc).__name__}: {exc}")

    # ---- lifecycle ----

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._dead = False
        await self._start_io()

    async def stop(self) -> None:
        """Gives queued writes `stop_grace` seconds to reach the device (a stop must not drop a
        queued safe value), then ends the worker. Writes still queued are logged and stay
        queued, so a later `settle_outputs` reports them as FAILED."""
        if not self._started:
            return
        self._started = False
        await wait_until(lambda: not self.pending_writes or not self._io_alive(), self.stop_grace)
        await self._stop_io()
        with self._lock:
            left = list(self._ledger.pending)
        if left:
            _log.warning(
                "%s: stopped with %d write(s) not sent: %s",
                self.name,
                len(left),
                ", ".join(f"{w.tag}={w.value!r}" for w in left),
            )

    async def settle_outputs(self, timeout: float) -> list[OutputResult]:
        """Waits for the queue to drain and for a read-back after each confirmable write; a
        stopped driver is started for this and stopped again."""
        started_here = not self._started
        if started_here:
            await self.start()
        confirmable = self._confirmable()
        with self._lock:
            self._ledger.begin_settle()
            self._before_settle()
        self._wake_io()

        def settled() -> bool:
            with self._lock:
                return self._ledger.settled(confirmable)

        try:
            await wait_until(settled, max(0.0, timeout))
        finally:
            if started_here:
                grace, self.stop_grace = self.stop_grace, 0.0
                await self.stop()
                self.stop_grace = grace
        with self._lock:
            rec = self._recovery
            return self._ledger.results(
                self._safe_values(),
                self._read_back,
                self._same,
                timeout=timeout,
                link_problem=None
                if rec.state is ConnectionState.OK
                else f"{rec.state}: {rec.last_message}",
                link_down=rec.link_down,
            )


class TaskDriver(PollingDriver):
    """A `PollingDriver` whose worker is one asyncio task (Modbus, OPC UA); the serial driver's
    worker is a thread and does without. The subclass's `_run` loops while `_running` and waits on
    `_wake` between exchanges. `_start_io` sets all three."""

    _task: asyncio.Task[None] | None = None
    _wake: asyncio.Event | None = None
    _running: bool = False

    @abstractmethod
    def _exchange_timeout(self) -> float:
        """Seconds one request may take; the stop waits two of them for the task to end."""

    @abstractmethod
    async def _release_link(self) -> None:
        """Closes the transport once the task has ended."""

    def _wake_io(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _io_alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _stop_io(self) -> None:
        """Ends the task even if a library swallows the cancellation: the loop also checks
        `_running`."""
        task, self._task = self._task, None
        self._running = False
        self._wake_io()
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=2 * self._exchange_timeout() + 1)
            if task.done() and not task.cancelled():
                task.exception()
        await self._release_link()


async def wait_until(done: Callable[[], bool], timeout: float) -> None:
    """Polls `done` (state the worker updates) until it holds or `timeout` s have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done() and loop.time() < deadline:
        await asyncio.sleep(0.005)
