"""What every polling driver does alike, apart from its transport.

`OutputLedger` is the sans-I/O write bookkeeping: the de-duplicating queue the scan fills and the
I/O side drains in order, and the record of what became of each output, from which
`settle_outputs` reports whether the device holds what was asked for.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from engine.hw.base import (
    UNSET,
    OutputCheck,
    OutputResult,
    Quality,
    Reading,
    ScalarValue,
)


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
        next write of an unchanged value must be sent again."""
        self._requested.clear()

    @property
    def sent(self) -> int:
        return self._sent

    def mark_read(self, tags: Iterable[str], sent_before: int) -> None:
        """`tags` were read back from the device after every write up to `sent_before`."""
        for tag in tags:
            self._read_after[tag] = max(self._read_after.get(tag, 0), sent_before)

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
            result = self._checked(write, read_back(tag), same, timeout, link_problem)
            if link_down and result.check is not OutputCheck.WRITTEN:
                result = OutputResult(
                    tag,
                    write.value,
                    OutputCheck.WRITTEN,
                    f"read back before the connection was lost ({link_problem})",
                )
            out.append(result)
        return out

    def _checked(
        self,
        write: QueuedWrite,
        reading: Reading | None,
        same: Callable[[str, ScalarValue, ScalarValue], bool],
        timeout: float,
        link_problem: str | None,
    ) -> OutputResult:
        tag, value = write.tag, write.value
        if reading is None:
            return OutputResult(tag, value, OutputCheck.WRITTEN)
        if self._read_after.get(tag, 0) < write.seq:
            why = f"not read back within {timeout:g} s"
            if link_problem:
                why += f"; connection {link_problem}"
            return OutputResult(tag, value, OutputCheck.WRITTEN, why)
        if reading.quality is not Quality.GOOD or reading.value is None:
            return OutputResult(tag, value, OutputCheck.WRITTEN, "the device refused the read-back")
        if same(tag, value, reading.value):
            return OutputResult(tag, value, OutputCheck.CONFIRMED)
        return OutputResult(tag, value, OutputCheck.MISMATCH, f"the device holds {reading.value!r}")


def close_enough(asked: ScalarValue, held: ScalarValue) -> bool:
    """Equality that forgives the last bits of a float and the case of a word ("Stop" is
    confirmed by a reply "STOP")."""
    if isinstance(asked, bool) or isinstance(held, bool):
        return bool(asked) == bool(held)
    if isinstance(asked, int | float) and isinstance(held, int | float):
        return math.isclose(asked, held, rel_tol=1e-9, abs_tol=1e-9)
    return str(asked).strip().casefold() == str(held).strip().casefold()
