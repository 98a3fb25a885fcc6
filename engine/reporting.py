"""Link reporting: how the engine tells the world what happened.

Translates the interpreter's events into protocol messages (RunStarted/RunStopped, one RunLog per
scan with start/end process values, Method, MethodState), samples and live tag updates, the
control state and the error log, and hands them to the `MessageSink` (the link's outbox, the
console or nothing). It also feeds the human-level `EngineEvent` observers of `simulate`.

Reporting must never stop the scan: a failing sink or observer is counted, not raised. What a
state change does to the outputs is the scan's business (`_outputs_for_state`, implemented by
`engine.scan.ScanPipeline`); this layer only reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from engine.clock import Clock
from engine.describe import describe as _describe
from engine.describe import text_hash as _hash
from engine.lang import runlog as ev
from engine.lang.api import LineState, SystemState
from engine.live_rate import LivePlan, LiveRate
from engine.ports import MessageSink
from engine.tags import TagStore
from engine.uod.definition import Uod
from protocol.messages import (
    ControlState,
    ErrorLog,
    Method,
    MethodState,
    RunLog,
    RunStarted,
    RunStopped,
    TagsUpdated,
)
from protocol.models import ErrorLogEntry, RunLogLine, ScalarValue

if TYPE_CHECKING:
    from engine.lang.interpreter import Interpreter

EventKind = Literal["mark", "command", "state", "error"]


@dataclass(frozen=True)
class EngineEvent:
    """A human-level event for `simulate --json` and the standalone console."""

    run_time: float
    kind: EventKind
    text: str
    state: str
    detail: str | None = None


Observer = Callable[[EngineEvent], None]


class NullSink:
    """A sink that drops everything (simulate, benchmarks)."""

    def emit(self, kind: type[Any], /, **fields: Any) -> None:
        return None


# Change every scan without anything happening: sampled, but never a live update on their own.
_QUIET_TAGS = frozenset({"Clock"})


class LinkReporting:
    """The reporting layer of `engine.engine.Engine`; the attributes annotated here without a
    value are set by `Engine.__init__`."""

    uod: Uod
    clock: Clock
    store: TagStore
    interpreter: Interpreter
    _connected: bool
    _log_sources: dict[str, str]

    def _init_reporting(
        self, sink: MessageSink | None, observers: Sequence[Observer], method_hash: str
    ) -> None:
        self.sink: MessageSink = sink if sink is not None else NullSink()
        self.observers: list[Observer] = list(observers)
        self._next_sample: float | None = None
        self._run_sample_due = False
        self._run_log_values: dict[str, dict[str, ScalarValue]] = {}
        self._log_batch: dict[str, RunLogLine] = {}
        self._progress_pending: dict[str, RunLogLine] = {}
        self._event_run_id: str | None = None
        self._sink_online: bool | None = None
        self._control_user: str | None = None  # who asked, for RunStarted / RunStopped
        self._line_states: dict[str, LineState] = {}
        self._control_key: tuple[Any, ...] | None = None
        self._method_hash = method_hash
        self._started_once = False
        self._run_start_wall: float | None = None
        self._event_state = SystemState.STOPPED
        self.error_log: list[ErrorLogEntry] = []
        self.sink_errors = 0
        self.last_sink_error: str | None = None
        self._live_rate = LiveRate()

    def _outputs_for_state(
        self, old: SystemState, new: SystemState, now: float, wall: float
    ) -> None:
        """What a run state change does to outputs and commands (the scan pipeline's part)."""
        raise NotImplementedError

    def record(
        self,
        level: Literal["info", "warning", "error"],
        message: str,
        source: str = "shutdown",
    ) -> None:
        """An entry in the error log from outside the scan (the shutdown's account of itself)."""
        self._log(self.clock.wall(self.clock.monotonic()), level, message, source, notify=False)

    def final_report(self) -> None:
        """The last report before the process ends: pending events and run-log lines, and a
        full sample, so that the aggregator sees the outputs at their safe values."""
        now = self.clock.monotonic()
        self._process_events(now)
        self._flush_run_log(self.clock.wall(now), progress=True)
        self._next_sample = None
        self._report(now, self.clock.wall(now))

    def _value(self, name: str) -> ScalarValue:
        if name in self.store:
            return self.store.value(name)
        return None

    def _report(self, now: float, wall: float) -> None:
        run_id = self.interpreter.run_id or None
        online = getattr(self.sink, "connected", None)
        if online is not None and online != self._sink_online:
            if online and self._sink_online is not None:
                self._next_sample = None  # newly registered: the next sample has every tag
            self._sink_online = bool(online)
        plan = self._live_rate.plan(getattr(self.sink, "live_watched", None))
        due = self._next_sample is None or now >= self._next_sample - 1e-9
        if due or self._run_sample_due:
            self._flush_run_log(wall, progress=True)
            full = self._next_sample is None or self._run_sample_due
            if full:
                self.store.mark_all()
            self._run_sample_due = False
            if self._next_sample is None:
                self._next_sample = now
            while self._next_sample <= now + 1e-9:
                self._next_sample += self.uod.data_log_interval
            tags = self.store.take_sample()
            if tags:
                self._emit(TagsUpdated, time=wall, run_id=run_id, tags=tags, sample=True)
            if plan is LivePlan.SNAPSHOT and not full:
                self._live_snapshot(wall, run_id)
        elif plan is LivePlan.SNAPSHOT:
            self._live_snapshot(wall, run_id)
        elif plan is LivePlan.SEND:
            tags = self.store.take_live(quiet=_QUIET_TAGS)
            if tags:
                self._emit(TagsUpdated, time=wall, run_id=run_id, tags=tags, sample=False)
        # LivePlan.HOLD: the changes stay marked and ride with the next sample (engine/live_rate)
        self._report_control(wall)

    def _live_snapshot(self, wall: float, run_id: str | None) -> None:
        """Every tag as a live update (not stored): someone started watching (LiveDemand)."""
        self.store.take_live()
        tags = [tag.to_wire() for tag in self.store.tags.values()]
        if tags:
            self._emit(TagsUpdated, time=wall, run_id=run_id, tags=tags, sample=False)

    def _emit(self, kind: type[Any], /, **fields: Any) -> None:
        """Hands a message to the sink; a failing sink is counted, never allowed to stop the scan
        (the engine must keep the unit under control with or without its link)."""
        try:
            self.sink.emit(kind, **fields)
        except Exception as exc:
            self.sink_errors += 1
            self.last_sink_error = f"{kind.__name__}: {_describe(exc)}"

    def resample(self) -> None:
        """The next scan sends a full sample (after the link registers)."""
        self._next_sample = None

    def _report_control(self, wall: float) -> None:
        it = self.interpreter
        key = (
            it.state,
            it.method_status,
            it.block or "",
            it.run_counter,
            it.batch_name or "",
            self._connected,
        )
        if key == self._control_key:
            return
        self._control_key = key
        self._emit(
            ControlState,
            time=wall,
            run_id=it.run_id or None,
            state=it.state,
            method_status=str(it.method_status),
            block=it.block or "",
            run_time=max(0.0, float(it.run_time)),
            process_time=max(0.0, float(it.process_time)),
            run_counter=int(it.run_counter),
            batch_name=it.batch_name or "",
            connection_status="Connected" if self._connected else "Disconnected",
        )

    def _process_events(self, now: float) -> None:
        events = self.interpreter.drain_events()
        if not events and not self._log_batch:
            return  # most scans: nothing happened
        wall = self.clock.wall(now)
        for event in events:
            try:
                self._on_event(event, now, wall)
            except Exception as exc:  # reporting must never break the scan
                self._error(wall, f"event {type(event).__name__}: {_describe(exc)}", "engine")
        self._flush_run_log(wall)

    def _flush_run_log(self, wall: float, *, progress: bool = False) -> None:
        """One RunLog message per scan (not one per line change); progress-only changes are
        held back to the data-log interval so that a long Wait does not send ten messages a
        second."""
        if progress and self._progress_pending:
            for line_id, line in self._progress_pending.items():
                self._log_batch.setdefault(line_id, line)
            self._progress_pending.clear()
        if self._log_batch:
            lines, self._log_batch = list(self._log_batch.values()), {}
            self._emit(RunLog, time=wall, run_id=self._event_run_id, lines=lines)

    def _on_event(self, event: ev.Event, now: float, wall: float) -> None:
        it = self.interpreter
        match event:
            case ev.StateChanged(old=old, new=new):
                self._outputs_for_state(old, new, now, wall)
                self.store.update("System State", new.value, wall)
                self._event_state = new
                self._notify(wall, "state", new.value, new.value)
            case ev.RunLogChanged(line=line):
                self._on_run_log(line, wall)
            case ev.MarkSet(text=text):
                self.store.update("Mark", text, wall)
                self._notify(wall, "mark", text, self._event_state.value)
            case ev.LogMessage(level=level, text=text):
                self._log(wall, level, text, self._log_sources.pop(text, "method"))
            case ev.Notification(text=text):
                self._log(wall, "info", f"Notify: {text}", "notify")
            case ev.RunStarted(run_id=run_id, user=user):
                self._on_run_started(run_id, user, wall)
            case ev.RunStopped(run_id=run_id, reason=reason, user=user):
                self._flush_run_log(wall, progress=True)
                self._event_run_id = None
                self._emit(
                    RunStopped,
                    time=wall,
                    run_id=run_id,
                    stopped=wall,
                    reason=reason,
                    user=user or self._control_user,
                )
            case ev.MethodChanged(user=user):
                method = it.method
                self._method_hash = _hash("\n".join(line.text for line in method.lines))
                self._emit(
                    Method,
                    time=wall,
                    run_id=it.run_id or None,
                    version=int(method.version),
                    lines=[{"id": line.id, "text": line.text} for line in method.lines],
                    user=user,
                )
            case ev.MethodStateChanged():
                state = it.method_state
                self._emit(
                    MethodState,
                    time=wall,
                    run_id=it.run_id or None,
                    version=int(it.method.version),
                    started=list(state.started),
                    completed=list(state.completed),
                    failed=list(state.failed),
                )

    def _on_run_started(self, run_id: str, user: str | None, wall: float) -> None:
        it = self.interpreter
        self._flush_run_log(wall, progress=True)
        self._event_run_id = run_id
        # The run's first sample, with every tag, at the end of this scan: a run shorter than the
        # data-log interval still holds its starting values. The grid stays where it was: runs
        # started one after another would otherwise put every unit's samples on one rhythm.
        self._run_sample_due = True
        self._started_once = True
        self._run_start_wall = wall
        self._run_log_values.clear()
        self._line_states.clear()
        self._emit(
            RunStarted,
            time=wall,
            run_id=run_id,
            started=wall,
            method_version=int(it.method.version),
            user=user or self._control_user,
            run_counter=int(it.run_counter),
        )

    def _on_run_log(self, line: ev.RunLogLine, wall: float) -> None:
        values = self._process_values()
        if line.id not in self._run_log_values:
            self._run_log_values[line.id] = values
        start_values = self._run_log_values[line.id]
        end_values = values if line.end is not None else {}
        state = line.state
        wire = RunLogLine(
            id=line.id,
            line_id=line.line_id,
            text=line.text,
            start=line.start,
            end=line.end,
            progress=None if line.progress is None else min(1.0, max(0.0, line.progress)),
            state=state,
            user=line.user,
            start_values=start_values,
            end_values=end_values,
            cancellable=bool(line.cancellable),
            forcible=bool(line.forcible),
            error=line.message,
            retry_of=line.retry_of,
        )
        previous = self._line_states.get(line.id)
        if previous is state and line.end is None:
            self._progress_pending[line.id] = wire
        else:
            self._progress_pending.pop(line.id, None)
            self._log_batch[line.id] = wire
        if previous is not state:
            self._line_states[line.id] = state
            self._notify(wall, "command", line.text, self._event_state.value, detail=state.value)
        if line.end is not None:
            self._run_log_values.pop(line.id, None)

    def _process_values(self) -> dict[str, ScalarValue]:
        return {pv.tag: self._value(pv.tag) for pv in self.uod.process_values}

    def _log(
        self,
        wall: float,
        level: Literal["info", "warning", "error"],
        message: str,
        source: str,
        *,
        notify: bool = True,
    ) -> None:
        entry = ErrorLogEntry(time=wall, level=level, message=message, source=source)
        self.error_log.append(entry)
        if len(self.error_log) > 1000:
            del self.error_log[:500]
        self._emit(ErrorLog, time=wall, run_id=self.interpreter.run_id or None, entries=[entry])
        if notify and level == "error":
            self._notify(wall, "error", message, self._event_state.value)

    def _error(self, wall: float, message: str, source: str, *, notify: bool = True) -> None:
        self._log(wall, "error", message, source, notify=notify)

    def _notify(
        self, wall: float, kind: EventKind, text: str, state: str, detail: str | None = None
    ) -> None:
        if not self.observers:
            return
        # Events are drained after the interpreter's tick, so its run time and state may already
        # be those of after a Stop; the run's own start and the replayed state changes are not.
        run_time = wall - self._run_start_wall if self._run_start_wall is not None else 0.0
        event = EngineEvent(round(max(0.0, run_time), 3), kind, text, state, detail)
        for observer in self.observers:
            try:
                observer(event)
            except Exception as exc:  # a broken console must not break the scan
                self.sink_errors += 1
                self.last_sink_error = f"observer: {_describe(exc)}"
