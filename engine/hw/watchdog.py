"""The engine's half of a device-side watchdog: a heartbeat register the engine keeps changing.

Nothing in the engine can write safe values after SIGKILL, a power loss or a crashed PC. A device
with a communication-loss watchdog can: it watches a register the engine changes every `period`
and goes to its own safe state when the register stops changing for its `timeout`. The beat is
tied to the scan (it advances only if the scan read the snapshot since the last beat), so a hung
scan stops it as surely as a dead process.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Heartbeat(BaseModel):
    """A Modbus heartbeat register and, optionally, the device's watchdog timeout.

    `mode="counter"` writes 1, 2, ... 65535, 0, 1 ... to a holding register; `mode="toggle"`
    writes 1, 0, 1 ... (a coil must toggle). `timeout` is the device's communication-loss
    timeout in seconds: with `timeout_address` the engine writes it (in units of `timeout_unit`
    seconds, uint16, holding register) on every connect; without it, it documents the value
    configured on the device and is checked against `period`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: int = Field(ge=0, le=65535)
    table: Literal["holding", "coil"] = "holding"
    device_id: int = Field(default=1, ge=0, le=247)
    period: float = Field(default=0.5, gt=0, description="seconds between beats")
    mode: Literal["counter", "toggle"] = "counter"
    timeout: float | None = Field(
        default=None, gt=0, description="the device's communication-loss timeout, seconds"
    )
    timeout_address: int | None = Field(default=None, ge=0, le=65535)
    timeout_unit: float = Field(default=0.001, gt=0, description="seconds per count (ms: 0.001)")

    @model_validator(mode="after")
    def _consistent(self) -> Heartbeat:
        if self.table == "coil" and self.mode != "toggle":
            raise ValueError("a coil heartbeat can only toggle: use mode='toggle'")
        if self.timeout_address is not None and self.timeout is None:
            raise ValueError("timeout_address given without timeout (seconds)")
        if self.timeout is not None:
            if self.timeout < 2 * self.period:
                raise ValueError(
                    f"timeout {self.timeout:g} s must be at least twice period "
                    f"{self.period:g} s, or the device trips between two beats"
                )
            counts = round(self.timeout / self.timeout_unit)
            if self.timeout_address is not None and not 1 <= counts <= 65535:
                raise ValueError(
                    f"timeout {self.timeout:g} s is {counts} counts of {self.timeout_unit:g} s; "
                    "a uint16 register holds 1..65535"
                )
        if self.timeout_address is not None and (
            self.table == "holding" and self.timeout_address == self.address
        ):
            raise ValueError("timeout_address and address are the same register")
        return self

    @property
    def timeout_counts(self) -> int | None:
        if self.timeout is None or self.timeout_address is None:
            return None
        return round(self.timeout / self.timeout_unit)


class HeartbeatState:
    """Sans-I/O: which value to write when, given the time and whether the scan is alive."""

    def __init__(self, config: Heartbeat) -> None:
        self.config = config
        self.value = 0
        self.beats = 0
        self._next: float | None = None
        self._retry_at: float | None = None
        self._scanned = False
        self.configure_pending = config.timeout_counts is not None
        self.refusal: str | None = None  # the device's last refusal, until a write is accepted

    def scanned(self) -> None:
        self._scanned = True

    def connected(self) -> None:
        """A new connection: the device may have restarted, so configure it and beat at once."""
        self.configure_pending = self.config.timeout_counts is not None
        self._next = None
        self._retry_at = None

    def waiting(self, now: float) -> bool:
        """True while a refused write waits for its retry (one attempt per `period`)."""
        return self._retry_at is not None and now < self._retry_at

    def refused(self, message: str, now: float, *, retry: bool) -> bool:
        """The device refused a heartbeat (`retry`: again after a period) or timeout write;
        True when this refusal is news."""
        if retry:
            self._retry_at = now + self.config.period
        news = message != self.refusal
        self.refusal = message
        return news

    def due(self, now: float) -> int | None:
        """The next value to write, or None: not time yet, or no scan since the last beat."""
        if not self._scanned or (self._next is not None and now < self._next):
            return None
        if self.config.mode == "toggle":
            return 1 - self.value
        return (self.value + 1) % 65536

    def written(self, value: int, now: float) -> None:
        self.value = value
        self.beats += 1
        self._scanned = False
        self._next = now + self.config.period
        self._retry_at = None
        self.refusal = None
