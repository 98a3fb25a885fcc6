"""How far a run_model simulation moves its clock per scan: coarse while nothing changes quickly,
the unit's own scan interval whenever something could happen soon.

A real unit scans every 0.1 s, and a simulation that does the same spends most of a long method
(a 2-hour load) scanning a process that does not change. The model's scans are therefore
COARSE_STEP apart, except that the simulation goes back to the unit's scan interval
- for QUIET_AFTER simulated seconds after anything happened: a line ran or ended, a mark, a state
  change (a method's lines come in bursts, and their effects, such as a pump ramp, are fast);
- while a UOD command runs (one called every scan, such as a controller, behaves as it does on
  the unit only at the unit's scan interval);
- while a reading, a calculated tag or an output moves (a detector front, a temperature ramp), so
  that a Watch on a process value fires at the scan it would fire on the real unit;
- when a waiting line (a threshold such as `110 End block` in CV, a Wait, a running command with
  progress) is within NEAR_SCANS coarse steps of its end, extrapolated from its progress, or past
  NEAR_END of it (progress is reported in 1 % steps).
So thresholds, Waits and process-value Watches resolve at the unit's scan interval, as in a fine
simulation. What can still come up to one coarse step late: a condition on a tag that rises
steadily and is not a reading (a Watch on an accumulator or a time tag), or a reading that drifts
by less than MOVING per coarse step when it crosses a Watch's limit. tests/model_run/
test_model_step.py checks that the example methods predict the same marks, end state and duration
as the fine simulation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

COARSE_STEP = 1.0  # simulated s per scan while nothing changes (SimulatedHardware's max_step)
QUIET_AFTER = 5.0  # simulated s at the unit's scan interval after a line, mark or state change
NEAR_SCANS = 3.0  # coarse steps before a waiting line's extrapolated end: back to fine scans
NEAR_END = 0.99  # a waiting line this far along ends at fine scans whatever its rate
MOVING = 1e-4  # relative change of a reading over one coarse step that counts as moving


class StepPolicy:
    """Fed events, run-log progress and tag values; says how many scan intervals the next scan
    is away. `coarse` <= the scan interval makes every step a fine one (the plain simulation)."""

    def __init__(self, interval: float, coarse: float | None, watched: Iterable[str]) -> None:
        self.interval = interval
        self.ratio = max(1, round((coarse or 0.0) / interval))
        self.watched = tuple(watched)
        self._busy_until = QUIET_AFTER
        self._values: dict[str, float] = {}
        self._values_at = 0.0
        self._lines: dict[str, tuple[float, float, float, float]] = {}  # t0, p0, t1, p1
        self.fine_scans = 0
        self.coarse_scans = 0

    def activity(self, run_time: float) -> None:
        """Something happened at `run_time` (a line, a mark, a state change)."""
        self._busy_until = max(self._busy_until, run_time + QUIET_AFTER)

    def line(self, line_id: str, progress: float | None, ended: bool, run_time: float) -> None:
        """A run-log line's report: its progress while it waits, or its end."""
        if ended or progress is None:
            self._lines.pop(line_id, None)
            return
        known = self._lines.get(line_id)
        if known is None:
            self._lines[line_id] = (run_time, progress, run_time, progress)
        elif progress != known[3]:
            self._lines[line_id] = (known[2], known[3], run_time, progress)

    def next_ratio(self, run_time: float, values: Mapping[str, Any], commands: bool) -> int:
        """Scan intervals to the next scan: 1 (fine) or the coarse ratio. `commands`: a UOD
        command is running (called every scan, such as a controller: its dynamics depend on
        the scan interval)."""
        if self.ratio == 1:
            self.fine_scans += 1
            return 1
        moving = self._moving(run_time, values)
        if commands or moving or run_time < self._busy_until or self._line_due(run_time):
            self.fine_scans += 1
            return 1
        self.coarse_scans += 1
        return self.ratio

    def _moving(self, run_time: float, values: Mapping[str, Any]) -> bool:
        """True when a watched tag changed, over the time since the last look, faster than
        MOVING of its value per coarse step."""
        elapsed = run_time - self._values_at
        self._values_at = run_time
        last = self._values
        moving = False
        current: dict[str, float] = {}
        for tag in self.watched:
            value = values.get(tag)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            number = float(value)
            current[tag] = number
            before = last.get(tag)
            if before is None or moving:
                continue
            change = abs(number - before)
            if change and elapsed > 0:
                per_step = change * self.ratio * self.interval / elapsed
                moving = per_step > MOVING * max(abs(number), abs(before)) + 1e-9
        self._values = current
        return moving or len(current) != len(last)

    def _line_due(self, run_time: float) -> bool:
        horizon = NEAR_SCANS * self.ratio * self.interval
        for t0, p0, t1, p1 in self._lines.values():
            if t1 > t0 and p1 > p0:
                rate = (p1 - p0) / (t1 - t0)
                if (1.0 - p1) / rate - (run_time - t1) < horizon:
                    return True
            elif p1 >= NEAR_END:
                return True
        return False
