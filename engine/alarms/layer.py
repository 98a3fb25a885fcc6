"""The alarm layer of the engine: evaluates the UOD's alarms each scan and reports transitions.

Each transition goes out as an `AlarmsUpdated` through the sink (the link's durable outbox keeps
it while the aggregator is away) and, during a run, as a completed run-log line, so the alarms a
run saw are part of its record. The first scan sends a snapshot of every alarm. Operators' actions
(`alarm_action`) are reported at once, not at the next scan.
"""

from __future__ import annotations

from engine.alarms.evaluator import AlarmEvaluator
from engine.alarms.machine import AlarmActionError
from engine.lang.units import Registry
from engine.ports import EngineCommandError
from engine.reporting import LinkReporting
from protocol.messages import AlarmsUpdated, RunLog
from protocol.models import AlarmAction, AlarmCause, AlarmEvent, LineState, RunLogLine


class AlarmLayer(LinkReporting):
    """Between reporting and the scan pipeline in `engine.engine.Engine`."""

    _ureg: Registry

    def _init_alarms(self) -> None:
        self.alarms = AlarmEvaluator.for_unit(self.uod.alarms, self.uod.tags, self._ureg)
        self._alarm_snapshot_sent = False
        self._alarm_lines = 0

    def _scan_alarms(self, wall: float) -> None:
        if not self.alarms.alarms:
            return
        if not self._alarm_snapshot_sent:
            self._alarm_snapshot_sent = True
            self._emit(
                AlarmsUpdated,
                time=wall,
                run_id=self.interpreter.run_id or None,
                events=self.alarms.snapshot(wall, self._value),
                snapshot=True,
            )
        self._report_alarms(self.alarms.scan(wall, self._value), wall)

    def alarm_action(
        self,
        name: str,
        action: AlarmAction | str,
        user: str | None,
        *,
        comment: str | None = None,
        minutes: float | None = None,
        reason: str | None = None,
    ) -> None:
        """An operator's ack, shelve, unshelve, out_of_service or return_to_service; a refusal
        is an EngineCommandError whose message is shown to the person who asked."""
        wall = self.clock.wall(self.clock.monotonic())
        try:
            event = self.alarms.act(
                wall, name, action, user, comment=comment, minutes=minutes, reason=reason
            )
        except AlarmActionError as exc:
            raise EngineCommandError(str(exc)) from None
        self._report_alarms([event], wall)

    def _report_alarms(self, events: list[AlarmEvent], wall: float) -> None:
        if not events:
            return
        run_id = self.interpreter.run_id or None
        self._emit(AlarmsUpdated, time=wall, run_id=run_id, events=events)
        if run_id is None:
            return
        lines = []
        for event in events:
            if not _in_run_log(event):
                continue
            self._alarm_lines += 1
            lines.append(
                RunLogLine(
                    id=f"alarm-{self._alarm_lines}",
                    text=alarm_line_text(event),
                    start=event.time,
                    end=event.time,
                    state=LineState.COMPLETED,
                    user=event.user,
                )
            )
        if lines:
            self._emit(RunLog, time=wall, run_id=run_id, lines=lines)


def _in_run_log(event: AlarmEvent) -> bool:
    """What the run's record needs: every state change and operator action, but not the
    suppression by design that follows the run state, nor a condition hidden by a mask."""
    if event.cause in (AlarmCause.SUPPRESSED, AlarmCause.UNSUPPRESSED):
        return False
    return not (event.cause is AlarmCause.CONDITION and event.state == event.previous)


def alarm_line_text(event: AlarmEvent) -> str:
    """`Alarm PT01 high: normal -> unack_active (condition, value 4.2)` and the operator's note."""
    detail = event.cause.value
    if event.value is not None:
        detail += f", value {event.value}"
    text = f"Alarm {event.name}: {event.previous.value} -> {event.state.value} ({detail})"
    return f"{text}: {event.comment}" if event.comment else text
