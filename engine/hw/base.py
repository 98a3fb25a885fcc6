"""The contract between the scan cycle and every hardware driver.

The scan cycle must never wait on a device, so everything here except `start` and `stop` is
synchronous and only touches in-memory state that background workers keep up to date.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol, runtime_checkable

ScalarValue = float | int | str | bool
Clock = Callable[[], float]


class Unset:
    """Marks "nothing written yet", which no tag value (not even None) can be mistaken for."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()


class Quality(StrEnum):
    GOOD = "good"
    STALE = "stale"
    BAD = "bad"


@dataclass(frozen=True)
class Reading:
    """One tag's latest value; `timestamp` is the driver clock at the read that produced it."""

    value: ScalarValue | None
    quality: Quality
    timestamp: float
    unit: str | None = None


class ConnectionState(StrEnum):
    OK = "OK"
    ISSUE = "Issue"
    RECONNECT = "Reconnect"
    ERROR = "Error"


@dataclass(frozen=True)
class ConnectionChanged:
    """A connection state change; the engine logs `message` and pauses the run on ERROR."""

    old: ConnectionState
    new: ConnectionState
    message: str
    timestamp: float
    source: str = ""


@dataclass(frozen=True)
class WriteRejected:
    """The device answered a write with a refusal (not a connection problem, so no recovery)."""

    tag: str
    value: ScalarValue
    message: str
    timestamp: float
    source: str = ""


@dataclass(frozen=True)
class OutputChanged:
    """An output read back, after the engine's last write to it was accepted, holds another
    value: the device changed it (its own watchdog, a local panel, another master). The engine
    pauses the run with safe outputs: its idea of the outputs is wrong."""

    tag: str
    asked: ScalarValue
    held: ScalarValue
    message: str
    timestamp: float
    source: str = ""


HardwareEvent = ConnectionChanged | WriteRejected | OutputChanged


class OutputCheck(StrEnum):
    """How far the engine could make sure an output holds the value it last asked for."""

    CONFIRMED = "confirmed"  # written and read back equal
    WRITTEN = "written"  # the device accepted the write; the driver cannot read it back
    MISMATCH = "mismatch"  # read back, but the device holds another value
    FAILED = "failed"  # not written: link down, refused, or out of time


@dataclass(frozen=True)
class OutputResult:
    """One output after `Hardware.settle_outputs`: what was asked for and what became of it."""

    tag: str
    value: ScalarValue
    check: OutputCheck
    detail: str = ""

    @property
    def safe(self) -> bool:
        return self.check in (OutputCheck.CONFIRMED, OutputCheck.WRITTEN)


@runtime_checkable
class Hardware(Protocol):
    """What the scan cycle uses. Only `start` and `stop` may await; the rest never block."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def snapshot(self) -> Mapping[str, Reading]: ...

    def write(self, values: Mapping[str, ScalarValue]) -> None: ...

    def write_safe_values(self) -> None: ...

    def drain_events(self) -> list[HardwareEvent]: ...

    async def settle_outputs(self, timeout: float) -> list[OutputResult]:
        """Waits (at most `timeout` s) until every queued write has reached the device, then
        reads back what the driver can. One result per output tag that was ever written or has
        a safe value. Used at shutdown, after the safe values were queued: the process must not
        exit while a pump still runs. Never raises for device trouble; it reports it."""
        ...

    @property
    def connection_state(self) -> ConnectionState: ...


@runtime_checkable
class SafeWriter(Protocol):
    """What a driver offers beyond `Hardware` so that safe values declared on tags reach the
    device as surely as its own: `write_safe` never de-duplicates (the device may no longer hold
    what was last asked for) and queues each value on its own, so one it cannot take (unknown,
    read-only) does not hold back the rest; it raises for those afterwards. A driver without it
    gets the tag safe values through `write`."""

    def write_safe(self, values: Mapping[str, ScalarValue]) -> None: ...


def masked_quality(state: ConnectionState, quality: Quality) -> Quality:
    """Quality as the scan must see it: live values become stale during an outage, bad on Error."""
    if quality is Quality.BAD or state is ConnectionState.OK:
        return quality
    if state is ConnectionState.ERROR:
        return Quality.BAD
    return Quality.STALE
