"""Managed-alarm messages (protocol 1.2): field rules a peer relies on."""

from __future__ import annotations

import json

import pytest

import protocol as p


def _event(**extra: object) -> dict[str, object]:
    return {
        "name": "PT01 high",
        "state": "unack_active",
        "previous": "normal",
        "active": True,
        "time": 1.0,
        "cause": "condition",
        "priority": "high",
        **extra,
    }


def test_alarm_states_are_the_isa_18_2_set() -> None:
    assert [s.value for s in p.AlarmState] == [
        "normal",
        "unack_active",
        "ack_active",
        "rtn_unack",
        "shelved",
        "suppressed",
        "out_of_service",
    ]
    assert [s.value for s in p.AlarmPriority] == ["low", "medium", "high", "urgent"]


def test_alarms_updated_is_stored() -> None:
    assert p.AlarmsUpdated in p.STORED_MESSAGE_TYPES
    frame = json.dumps({"type": "AlarmsUpdated", "seq": 3, "time": 1.0, "events": [_event()]})
    message = p.decode(frame)
    assert isinstance(message, p.AlarmsUpdated)
    assert message.events[0].state is p.AlarmState.UNACK_ACTIVE
    assert message.snapshot is False


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "AlarmsUpdated", "seq": 1, "time": 0, "events": []}, "AlarmsUpdated.events"),
        (
            {"type": "AlarmsUpdated", "seq": 1, "time": 0, "events": [_event(state="latched")]},
            "AlarmsUpdated.events.0.state",
        ),
        (
            {"type": "AlarmsUpdated", "seq": 1, "time": 0, "events": [_event(priority="p1")]},
            "AlarmsUpdated.events.0.priority",
        ),
        (
            {"type": "AlarmCommand", "id": "c", "user": "ann", "alarm": "A", "action": "silence"},
            "AlarmCommand.action",
        ),
        (
            {"type": "AlarmCommand", "id": "c", "alarm": "A", "action": "ack"},
            "AlarmCommand.user",
        ),
        (
            {
                "type": "AlarmCommand",
                "id": "c",
                "user": "ann",
                "alarm": "A",
                "action": "shelve",
                "minutes": -5,
                "reason": "x",
            },
            "AlarmCommand.minutes",
        ),
    ],
)
def test_bad_alarm_frames_name_the_field(frame: dict[str, object], expected: str) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.decode(json.dumps(frame))
    assert expected in str(info.value)


def test_uod_without_alarms_still_decodes() -> None:
    """A 1.1 engine sends no `alarms` in its UOD: an empty list, not an error."""
    uod = p.UodDescription.model_validate({"name": "Old unit"})
    assert uod.alarms == []


def test_alarm_definition_defaults() -> None:
    alarm = p.AlarmDefinition(name="A", condition="PT01 > 3 bar")
    assert alarm.kind is p.AlarmKind.CONDITION
    assert alarm.priority is p.AlarmPriority.MEDIUM
    assert alarm.delay == 0 and alarm.off_delay == 0 and alarm.deadband is None
    assert alarm.max_shelve_minutes == 60
