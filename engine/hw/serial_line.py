"""Line-based serial instruments: request bytes out, one terminated reply back, a regex on it.

pyserial blocks, so each port gets one worker thread; the scan only touches the snapshot and the
write queue under a lock and never waits for the line. Failures go to a `RecoveryMachine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import serial
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from engine.hw.base import (
    Clock,
    Quality,
    Reading,
    ScalarValue,
    WriteRejected,
)
from engine.hw.driver import PollingDriver
from engine.hw.recovery import Action, RecoveryPolicy

__all__ = ["RecoveryPolicy", "SerialExchange", "SerialHardware", "SerialPort"]


class SerialPort(BaseModel):
    """`url` is a device path (/dev/ttyUSB0) or any pyserial URL (socket://, rfc2217://, loop://)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=1)
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = 1

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stopbits must be 1, 1.5 or 2")
        return value

    bytesize: Literal[5, 6, 7, 8] = 8
    timeout: float = Field(default=0.5, gt=0, description="seconds to wait for a whole reply")


class SerialExchange(BaseModel):
    """One tag's conversation with the instrument.

    Reads send `request` every `poll_interval` and take the `value` (and optional `unit`) named
    groups of `pattern` from the reply. Writes send `write_template.format(value=...)` or the
    `write_choices` entry for the value; `pattern`, if given, must match the reply or the write
    counts as refused. `confirm_with` names a read exchange that reports the written value back
    (e.g. "Pump Speed PV" for "Pump Speed"), so `settle_outputs` can confirm it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: str = Field(min_length=1)
    kind: Literal["read", "write"] = "read"
    request: bytes = b""
    terminator: bytes = Field(default=b"\r\n", min_length=1)
    pattern: str | None = None
    value_type: Literal["float", "int", "str", "bool"] = "float"
    unit: str | None = None
    write_template: str | None = None
    write_choices: dict[str, str] | None = None
    always_send: bool = Field(
        default=False, description="send every write, not only changes (tare, zero)"
    )
    poll_interval: float = Field(default=0.5, gt=0)
    safe_value: ScalarValue | None = None
    confirm_with: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _consistent(self) -> SerialExchange:
        if self.kind == "read":
            if not self.request:
                raise ValueError(f"read exchange {self.tag!r} needs request bytes")
            if self.pattern is None or "value" not in re.compile(self.pattern).groupindex:
                raise ValueError(
                    f"read exchange {self.tag!r}: pattern needs a named group 'value', "
                    "e.g. (?P<value>-?\\d+\\.\\d+)"
                )
            if self.safe_value is not None:
                raise ValueError(f"read exchange {self.tag!r} cannot have a safe_value")
            if self.confirm_with is not None:
                raise ValueError(f"read exchange {self.tag!r} cannot have confirm_with")
        else:
            if (self.write_template is None) == (self.write_choices is None):
                raise ValueError(
                    f"write exchange {self.tag!r} needs exactly one of write_template "
                    "or write_choices"
                )
            if self.safe_value is not None:
                self.command_for(self.safe_value)
        return self

    @property
    def regex(self) -> re.Pattern[str]:
        assert self.pattern is not None
        return re.compile(self.pattern)

    def command_for(self, value: ScalarValue) -> bytes:
        """Bytes to send for a write; ValueError names what does not fit."""
        if self.write_choices is not None:
            key = str(value)
            if key not in self.write_choices:
                raise ValueError(
                    f"{self.tag}: {value!r} is not one of {sorted(self.write_choices)}"
                )
            return self.write_choices[key].encode("ascii")
        assert self.write_template is not None
        try:
            return self.write_template.format(value=value).encode("ascii")
        except (ValueError, TypeError, KeyError, IndexError, UnicodeEncodeError) as exc:
            raise ValueError(
                f"{self.tag}: cannot format {value!r} with {self.write_template!r}: {exc}"
            ) from None

    def convert(self, text: str) -> ScalarValue:
        if self.value_type == "float":
            return float(text)
        if self.value_type == "int":
            return int(text)
        if self.value_type == "bool":
            return text.strip().lower() in ("1", "true", "on", "yes", "run")
        return text


class _LinkError(Exception):
    """No (complete) reply or a broken port: handled by the recovery machine."""


class _Refused(Exception):
    """The instrument answered a write, but not with the expected acknowledgement."""


_EXCHANGES = TypeAdapter(list[SerialExchange])


class SerialHardware(PollingDriver):
    """One serial port and the instrument behind it."""

    def __init__(
        self,
        port: SerialPort,
        exchanges: Sequence[SerialExchange | Mapping[str, Any]],
        clock: Clock = time.monotonic,
        policy: RecoveryPolicy | None = None,
        name: str | None = None,
        stop_grace: float = 2.0,
    ) -> None:
        exs = _EXCHANGES.validate_python(list(exchanges))
        if not exs:
            raise ValueError("SerialHardware needs at least one exchange")
        self._reads = [ex for ex in exs if ex.kind == "read"]
        super().__init__(
            name or f"serial {port.url}",
            [ex.tag for ex in exs],
            [ex.tag for ex in self._reads],
            clock,
            policy,
            stop_grace,
        )
        self.port = port
        self.exchanges: dict[str, SerialExchange] = {ex.tag: ex for ex in exs}
        self._confirms: dict[str, list[str]] = {}  # read tag -> the write tags it confirms
        for ex in exs:
            if ex.confirm_with is None:
                continue
            target = self.exchanges.get(ex.confirm_with)
            if target is None or target.kind != "read":
                raise ValueError(
                    f"write exchange {ex.tag!r}: confirm_with {ex.confirm_with!r} "
                    "is not a read exchange"
                )
            self._confirms.setdefault(target.tag, []).append(ex.tag)
        self._due: dict[str, float] = {ex.tag: clock() for ex in self._reads}
        self._serial: serial.SerialBase | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scanned = False  # the scan read a snapshot since the last poll (see `snapshot`)
        self._settling = False
        self.exchanges_done = 0

    def snapshot(self) -> Mapping[str, Reading]:
        """Also lets the next poll go out. An instrument's own communication-loss watchdog
        sees the polls as the engine's heartbeat, so they stop when the scan stops: at most one
        poll per scan, none while the scan hangs. Writes are never held back."""
        with self._lock:
            self._scanned = True
        return super().snapshot()

    # ---- what the base needs ----

    def _check_write(self, tag: str, value: ScalarValue) -> None:
        ex = self.exchanges.get(tag)
        if ex is None:
            raise KeyError(f"{self.name}: no exchange declared for tag {tag!r}")
        if ex.kind != "write":
            raise ValueError(f"{self.name}: tag {tag!r} is a read exchange, not writable")
        ex.command_for(value)

    def _safe_values(self) -> dict[str, ScalarValue]:
        return {t: ex.safe_value for t, ex in self.exchanges.items() if ex.safe_value is not None}

    def _always_send(self, tag: str) -> bool:
        return self.exchanges[tag].always_send

    def _wake_io(self) -> None:
        self._wake.set()

    def _confirmable(self) -> list[str]:
        return [ex.tag for ex in self.exchanges.values() if ex.confirm_with is not None]

    def _read_back(self, tag: str) -> Reading | None:
        ex = self.exchanges.get(tag)
        if ex is None or ex.confirm_with is None:
            return None
        return self._readings.get(ex.confirm_with)

    def _before_settle(self) -> None:
        """The shutdown reads back without a scan."""
        self._settling = True
        for tag in self._confirms:
            self._due[tag] = float("-inf")

    async def _start_io(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _io_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def _stop_io(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        self._wake.set()
        if thread is not None:
            await asyncio.to_thread(thread.join, 5 * self.port.timeout + 1)

    # ---- the worker thread ----

    def _open(self) -> None:
        self._close()
        p = self.port
        try:
            self._serial = serial.serial_for_url(
                p.url,
                baudrate=p.baudrate,
                parity=p.parity,
                stopbits=p.stopbits,
                bytesize=p.bytesize,
                timeout=min(p.timeout, 0.1),
                write_timeout=p.timeout,
            )
        except Exception as exc:  # pyserial's errors vary by platform and URL handler
            # pyserial nests the OS error in its text; its errno says it in a few words.
            errno = getattr(exc, "errno", None)
            reason = os.strerror(errno).lower() if isinstance(errno, int) and errno > 0 else exc
            raise _LinkError(f"cannot open serial port {p.url}: {reason}") from None

    def _close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _transact(self, request: bytes, terminator: bytes, what: str) -> str:
        port = self._serial
        if port is None:
            raise _LinkError(f"port closed ({what})")
        try:
            port.reset_input_buffer()
            port.write(request)
            port.flush()
            deadline = time.monotonic() + self.port.timeout
            reply = bytearray()
            while not reply.endswith(terminator):
                chunk = port.read_until(terminator, 4096 - len(reply))
                reply += chunk
                if time.monotonic() >= deadline or len(reply) >= 4096:
                    break
        except Exception as exc:  # pyserial also raises termios.error, ValueError, TypeError
            self._close()
            raise _LinkError(f"{what}: port failed: {exc!r}") from None
        if not reply.endswith(terminator):
            if reply:
                raise _LinkError(
                    f"{what}: partial reply {bytes(reply)!r} without terminator "
                    f"{terminator!r} within {self.port.timeout} s"
                )
            raise _LinkError(f"{what}: no reply within {self.port.timeout} s")
        self.exchanges_done += 1
        return reply[: -len(terminator)].decode("ascii", errors="replace").strip()

    def _read(self, ex: SerialExchange) -> None:
        what = f"{ex.tag} ({ex.request!r})"
        with self._lock:
            mark = self._ledger.read_mark()
        text = self._transact(ex.request, ex.terminator, what)
        match = ex.regex.search(text)
        if match is None:
            raise _LinkError(f"{what}: unexpected reply {text!r} (pattern {ex.pattern!r})")
        try:
            value = ex.convert(match.group("value"))
        except ValueError:
            raise _LinkError(f"{what}: cannot read a {ex.value_type} from {text!r}") from None
        unit = match.groupdict().get("unit") or ex.unit
        with self._lock:
            self._readings[ex.tag] = Reading(value, Quality.GOOD, self._clock(), unit)
            self._ledger.mark_read(self._confirms.get(ex.tag, ()), mark)
            self._watch_outputs(self._confirms.get(ex.tag, ()))

    def _write(self, ex: SerialExchange, value: ScalarValue) -> None:
        command = ex.command_for(value)
        what = f"write {value!r} to {ex.tag} ({command!r})"
        text = self._transact(command, ex.terminator, what)
        if ex.pattern is not None and ex.regex.search(text) is None:
            raise _Refused(f"{what}: instrument answered {text!r}")

    def _flush_writes(self) -> None:
        while True:
            with self._lock:
                write = self._ledger.head()
            if write is None:
                return
            ex = self.exchanges[write.tag]
            try:
                self._write(ex, write.value)
            except _Refused as exc:
                with self._lock:
                    self._ledger.done(write, str(exc))
                    self._events.append(
                        WriteRejected(ex.tag, write.value, str(exc), self._clock(), self.name)
                    )
                continue
            with self._lock:
                self._ledger.done(write)

    def _cycle(self, reads: list[SerialExchange]) -> None:
        self._flush_writes()
        for ex in reads:
            self._due[ex.tag] = self._clock() + ex.poll_interval
            self._read(ex)

    def _run(self) -> None:
        try:
            self._open()
            self._report(None)
        except _LinkError as exc:
            self._report(str(exc), lost=True)
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:
                self._close()
                self._fault(exc)
        self._close()

    def _step(self) -> None:
        with self._lock:
            action = self._recovery.poll(self._clock())
            link_down = self._recovery.link_down
            deadline = self._recovery.next_deadline()
        if not link_down:
            self._poll_once()
        elif action is Action.RECONNECT:
            try:
                self._open()
                self._cycle(self._reads[:1])
            except _LinkError as exc:
                self._close()
                self._report(str(exc))
                return
            self._report(None)
        else:
            wait = 0.05 if deadline is None else max(0.0, deadline - self._clock())
            self._stop.wait(min(wait, 0.05))

    def _poll_once(self) -> None:
        now = self._clock()
        with self._lock:
            may_read = self._scanned or self._settling
        due = [ex for ex in self._reads if self._due[ex.tag] <= now] if may_read else []
        done = self.exchanges_done
        try:
            self._cycle(due)
        except _LinkError as exc:
            self._report(str(exc), lost=self._serial is None)
            return
        finally:
            if due:
                with self._lock:
                    self._scanned = False
        if self.exchanges_done > done:
            self._report(None)
        self._wake.clear()
        with self._lock:
            pending = bool(self._ledger.pending)
        if not pending:
            next_due = min(self._due.values(), default=now + 0.1)
            wait = min(next_due - self._clock(), 0.1)
            self._wake.wait(max(wait, 0.0 if may_read else 0.02))
