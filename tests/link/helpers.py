"""Shared pieces of the link tests: a registration, a fake engine, message builders."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from engine.ports import EngineCommandError, MethodSaved, Registration
from protocol.models import AlarmAction, ControlAction, TagDescription, TagValue, UodDescription


def registration(uod_name: str = "Test Unit") -> Registration:
    uod = UodDescription(
        name=uod_name, tags=[TagDescription(name="Counter", kind="reading", unit=None)]
    )
    return Registration(
        engine_id=f"testpc/{uod_name}",
        computer_name="testpc",
        uod_name=uod_name,
        uod=uod,
        uod_hash="uodhash",
        method_hash="methodhash",
    )


def sample_fields(n: int, tick: float | None = None) -> dict[str, Any]:
    """Fields of TagsUpdated sample number n (the value is the number, so order is checkable)."""
    t = 1_700_000_000.0 + n if tick is None else tick
    return {"time": t, "run_id": "run-1", "tags": [TagValue(name="Counter", value=n, tick=t)]}


@dataclass
class FakeControl:
    """An engine that records calls; `refuse` makes the next calls raise EngineCommandError."""

    reg: Registration = field(default_factory=registration)
    refuse: str | None = None
    crash: bool = False
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    called: threading.Event = field(default_factory=threading.Event)
    method_version: int = 0

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        self.called.set()
        if self.crash:
            raise ZeroDivisionError("division by zero")
        if self.refuse is not None:
            raise EngineCommandError(self.refuse)

    def registration(self) -> Registration:
        return self.reg

    def control(self, action: ControlAction, user: str) -> None:
        self._record("control", action, user)

    def inject(self, pcode: str, user: str) -> None:
        self._record("inject", pcode, user)

    def set_method(
        self, text: str, expected_version: int, line_ids: list[str | None] | None, user: str
    ) -> MethodSaved:
        self._record("set_method", text, expected_version, line_ids, user)
        if expected_version != self.method_version:
            raise EngineCommandError(
                f"method version is {self.method_version}, not {expected_version}",
                data={"current_version": self.method_version},
            )
        self.method_version += 1
        return MethodSaved(self.method_version)

    def cancel_line(self, run_log_id: str, user: str) -> None:
        self._record("cancel_line", run_log_id, user)

    def force_line(self, run_log_id: str, user: str) -> None:
        self._record("force_line", run_log_id, user)

    def resume_line(self, run_log_id: str, user: str, *, skip: bool) -> None:
        self._record("resume_line", run_log_id, user, skip)

    def alarm_action(
        self,
        name: str,
        action: AlarmAction,
        user: str,
        *,
        comment: str | None,
        minutes: float | None,
        reason: str | None,
    ) -> None:
        self._record("alarm_action", name, action, user, comment, minutes, reason)
