"""Timing: the run's clocks and when a line may run (thresholds, Waits, the base unit).

Run Time is wall time since Start; every other position (Process Time, Block Time, a scope's
time, accumulated amounts such as Block Volume) lives on the monotonic counters of timelines.py,
which advance only while the run is neither Paused nor Holding. Conversions from a `Base:` unit
to a counter are resolved once per run and cached, since thresholds are checked every scan.
"""

from __future__ import annotations

from engine.lang.api import SystemState
from engine.lang.core import ACTIVE, EPSILON, FIXED, InterpreterCore
from engine.lang.instructions import TIME_BASES, ArgumentError, check_base, parse_duration
from engine.lang.parser import Line
from engine.lang.paths import Path, Pending, PendingKind
from engine.lang.runlog import RunLogLine
from engine.lang.timelines import TIME
from engine.lang.units import factor


class Timing(InterpreterCore):
    @property
    def run_time(self) -> float:
        return self._now - self._run_start if self._state in ACTIVE else 0.0

    @property
    def process_time(self) -> float:
        if self._state not in ACTIVE:
            return 0.0
        return self._clocks.time - self._run_clock_start

    @property
    def block_time(self) -> float:
        if self._blocks:
            return self._blocks[-1].timeline.position(self._clocks, TIME)
        return self.process_time

    @property
    def scope_time(self) -> float:
        return self.process_time

    def block_amount(self, unit: str) -> float:
        """The innermost block's timeline (the run's when no block runs) in a base unit, for the
        engine's `Block Volume` / `Block CV` tags."""
        kind, scale = self._resolve_base(unit)
        if self._blocks:
            timeline = self._blocks[-1].timeline
        elif self._main is not None:
            timeline = self._main.scope
        else:
            return 0.0
        return timeline.position(self._clocks, kind) / scale

    def _advance(self, now: float) -> bool:
        """Moves the clocks to `now`; True when timelines flow (neither Paused nor Holding)."""
        if not self._clock_set:
            self._clock_set = True
            self._now = now
        dt = now - self._now if now > self._now else 0.0
        self._now = max(self._now, now)
        flowing = self._state is not SystemState.PAUSED and self._state is not SystemState.HOLDING
        if flowing:
            self._clocks.time += dt
        if self._amount_tags is None or self._amount_tags:
            self._read_amounts(flowing)
        return flowing

    def _note_time(self, now: float) -> None:
        """An operator action between scans: later scans measure time from here."""
        if not self._clock_set:
            self._clock_set = True
            self._now = now
        self._now = max(self._now, now)

    def _read_amounts(self, flowing: bool) -> None:
        if self._amount_tags is None:
            self._amount_tags = tuple(dict.fromkeys(self._ctx.base_units().values()))
        for tag in self._amount_tags:
            try:
                value = self._ctx.tag_value(tag)
            except Exception:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            current = float(value)
            last = self._amount_last.get(tag)
            self._amount_last[tag] = current
            if flowing and last is not None:
                amounts = self._clocks.amounts
                amounts[tag] = amounts.get(tag, 0.0) + (current - last)

    def _resolve_base(self, base: str) -> tuple[str, float]:
        """(timeline kind, factor from the base unit to that timeline's native unit)."""
        cached = self._bases.get(base)
        if cached is not None:
            return cached
        bases = self._ctx.base_units()
        check_base(base, bases)
        ureg = self._ctx.ureg
        if base in TIME_BASES:
            resolved = (TIME, factor(ureg, base, "s"))
        else:
            tag = bases[base]
            unit = self._ctx.tag_unit(tag)
            try:
                scale = 1.0 if unit is None or unit == base else factor(ureg, base, unit)
            except Exception as exc:
                raise ArgumentError(f"Base '{base}' does not fit '{tag}' in {unit}") from exc
            resolved = (tag, scale)
        self._bases[base] = resolved
        return resolved

    def _duration(self, text: str) -> float:
        seconds = self._durations.get(text)
        if seconds is None:
            seconds = self._durations[text] = parse_duration(text, self._ctx.ureg)
        return seconds

    def _threshold(self, path: Path, line: Line, log: RunLogLine, now: float) -> bool:
        """True when the line may run now; otherwise the path waits on it."""
        try:
            kind, scale = self._resolve_base(path.base)
        except ArgumentError as exc:
            self._fail(path, line, log, str(exc), now)
            return False
        target = (line.threshold or 0.0) * scale
        if path.timeline().position(self._clocks, kind) + EPSILON >= target:
            return True
        fixed = line.name in FIXED
        log.cancellable = log.forcible = not fixed
        log.progress = 0.0
        path.pending = Pending(PendingKind.THRESHOLD, line, log, kind, target)
        self._live[log.id] = path
        self._emit(log)
        return False

    def _ready(self, path: Path, pending: Pending) -> bool:
        if pending.forced:
            return True
        if pending.kind is PendingKind.THRESHOLD:
            position = path.timeline().position(self._clocks, pending.timeline_kind)
            return position + EPSILON >= pending.target
        if pending.kind is PendingKind.WAIT:
            return self._clocks.time + EPSILON >= pending.target
        return self._lock_free(path)

    def _update_progress(self) -> None:
        for path in self._paths:
            pending = path.pending
            if pending is None or pending.kind is PendingKind.LOCK:
                continue
            if pending.kind is PendingKind.WAIT:
                span = pending.target - pending.start
                done = self._clocks.time - pending.start
            else:
                span = pending.target
                done = path.timeline().position(self._clocks, pending.timeline_kind)
            progress = 1.0 if span <= 0 else max(0.0, min(1.0, done / span))
            log = pending.log
            if log.progress is None or abs(progress - log.progress) >= 0.01:
                log.progress = round(progress, 3)
                self._emit(log)
