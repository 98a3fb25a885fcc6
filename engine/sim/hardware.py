"""The Hardware driver for simulated units: a process model stepped on the engine's clock.

Because the model advances by the clock's elapsed time at each snapshot, the same driver runs in
real time under `run` and as fast as the CPU allows under `simulate --speed max`. Faults can be
injected (`fail`, `recover`) so the engine's error path can be tested without a real device.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.hw.base import (
    Clock,
    ConnectionChanged,
    ConnectionState,
    HardwareEvent,
    OutputCheck,
    OutputResult,
    Quality,
    Reading,
    ScalarValue,
    WriteRejected,
)
from engine.sim.model import ProcessModel


class SimulatedHardware:
    """`registers` maps tag name -> model input or output name."""

    def __init__(
        self,
        model: ProcessModel,
        registers: Mapping[str, str],
        clock: Clock,
        *,
        safe_values: Mapping[str, ScalarValue] | None = None,
        max_step: float = 1.0,
        name: str = "simulator",
    ) -> None:
        self.model = model
        self.registers: dict[str, str] = dict(registers)
        self.name = name
        self._clock = clock
        self._last = clock()
        self._max_step = max_step
        outputs = model.outputs()
        self._outputs = {tag: io for tag, io in self.registers.items() if io in outputs}
        self._inputs = {tag: io for tag, io in self.registers.items() if io not in outputs}
        self._written: dict[str, ScalarValue] = {}
        self._queued: dict[str, ScalarValue] = {}
        self._safe_values = dict(safe_values or {})
        self._state = ConnectionState.OK
        self._events: list[HardwareEvent] = []
        self.writes = 0

    @property
    def connection_state(self) -> ConnectionState:
        return self._state

    async def start(self) -> None:
        self._last = self._clock()

    async def stop(self) -> None:
        return None

    def snapshot(self) -> Mapping[str, Reading]:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        # Long gaps (a paused debugger, a first scan) are split so lags stay accurate.
        while elapsed > 0:
            step = min(elapsed, self._max_step)
            self.model.step(step)
            elapsed -= step
        quality = Quality.GOOD if self._state is ConnectionState.OK else Quality.BAD
        values = self.model.outputs()
        readings = {tag: Reading(values[io], quality, now) for tag, io in self._outputs.items()}
        for tag in self._inputs:
            if tag in self._written:
                readings[tag] = Reading(self._written[tag], quality, now)
        return readings

    def write(self, values: Mapping[str, ScalarValue]) -> None:
        now = self._clock()
        for tag, value in values.items():
            io = self._inputs.get(tag)
            if io is None:
                self._events.append(
                    WriteRejected(tag, value, f"{tag} is not writable", now, self.name)
                )
                continue
            if self._state is not ConnectionState.OK:
                self._queued[tag] = value  # delivered on recovery, like a recovering driver
                continue
            try:
                self.model.set_input(io, value)
            except ValueError as exc:
                self._events.append(WriteRejected(tag, value, str(exc), now, self.name))
                continue
            self._written[tag] = value
            self.writes += 1

    def write_safe_values(self) -> None:
        if self._safe_values:
            self.write(self._safe_values)

    def drain_events(self) -> list[HardwareEvent]:
        events, self._events = self._events, []
        return events

    async def settle_outputs(self, timeout: float) -> list[OutputResult]:
        """The model takes writes at once, so a written value is as good as read back."""
        results = [
            OutputResult(tag, value, OutputCheck.CONFIRMED) for tag, value in self._written.items()
        ]
        results += [
            OutputResult(tag, value, OutputCheck.FAILED, "link down (simulated)")
            for tag, value in self._queued.items()
        ]
        return results

    # ---- fault injection --------------------------------------------------------------------

    def fail(self, message: str = "simulated connection loss") -> None:
        self._set_state(ConnectionState.ERROR, message)

    def recover(self) -> None:
        self._set_state(ConnectionState.OK, "simulated connection restored")
        queued, self._queued = self._queued, {}
        if queued:
            self.write(queued)

    def _set_state(self, new: ConnectionState, message: str) -> None:
        if new is self._state:
            return
        self._events.append(ConnectionChanged(self._state, new, message, self._clock(), self.name))
        self._state = new
