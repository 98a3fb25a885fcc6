"""The interface every simulated process implements.

Models are pure: no clock, no I/O. Whoever drives them (the simulated hardware driver in the
engine, or the Modbus device simulator) decides how time passes by calling `step(dt)`, so the same
model runs in real time, at maximum speed in `simulate`, or one step at a time in a test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class ProcessModel(Protocol):
    """A process with named inputs (actuators) and named outputs (sensors)."""

    def set_input(self, name: str, value: float | str) -> None:
        """Set an actuator; an unknown name or a value out of range raises ValueError."""
        ...

    def step(self, dt: float) -> None:
        """Advance the process by `dt` seconds (dt >= 0)."""
        ...

    def outputs(self) -> Mapping[str, float | str]:
        """Current sensor values; cheap, may be called every scan."""
        ...


def first_order(value: float, target: float, dt: float, tau: float) -> float:
    """Exact step of a first-order lag: stable for any dt, so fast simulation stays correct."""
    if tau <= 0:
        return target
    return target + (value - target) * math.exp(-dt / tau)
