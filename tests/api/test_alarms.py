"""Managed alarms through the aggregator: stored transitions become the current state and the
journal (part of their run's record), and the operator's actions are checked by role, forwarded
to the engine as AlarmCommand and audited whether the engine accepted or refused."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

import protocol as p
from aggregator.api.alarms_api import ALARM_BOOK_KEY
from tests.aggregator.helpers import UOD, until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine

HIGH = p.AlarmDefinition(
    name="PT01 high",
    priority=p.AlarmPriority.HIGH,
    condition="PT01 > 3 bar",
    tag="PT01",
    delay=2.0,
    message="Check the column outlet",
    max_shelve_minutes=30,
    escalation_minutes=1,
)
HIGH_HIGH = p.AlarmDefinition(
    name="PT01 high-high",
    priority=p.AlarmPriority.URGENT,
    condition="PT01 > 4 bar",
    tag="PT01",
    max_shelve_minutes=0,
)
ALARM_UOD = UOD.model_copy(update={"alarms": [HIGH, HIGH_HIGH]})


def event(
    name: str,
    state: str,
    previous: str,
    t: float,
    *,
    cause: str = "condition",
    active: bool = True,
    priority: str = "high",
    **extra: Any,
) -> p.AlarmEvent:
    return p.AlarmEvent(
        name=name,
        state=p.AlarmState(state),
        previous=p.AlarmState(previous),
        active=active,
        time=t,
        cause=p.AlarmCause(cause),
        priority=p.AlarmPriority(priority),
        **extra,
    )


async def alarms(
    engine: FakeEngine, *events: p.AlarmEvent, run_id: str | None = None, snapshot: bool = False
) -> int:
    return await engine.emit(
        lambda seq: p.AlarmsUpdated(
            seq=seq, time=time.time(), run_id=run_id, events=list(events), snapshot=snapshot
        )
    )


async def alarm_engine(api: Api) -> FakeEngine:
    return await api.engine(uod=ALARM_UOD)


def audit_rows(api: Api, action: str) -> list[dict[str, Any]]:
    with api.agg.ctx.storage.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT user, detail_json FROM audit WHERE action = :a ORDER BY id"),
            {"a": action},
        ).all()
    return [{"user": r.user, **json.loads(r.detail_json)} for r in rows]


async def test_transitions_become_current_state_and_journal_of_their_run(api: Api) -> None:
    engine = await alarm_engine(api)
    unit = quote(engine.engine_id, safe="")
    t0 = time.time()
    await alarms(
        engine,
        event("PT01 high", "normal", "normal", t0, cause="snapshot", active=False),
        event(
            "PT01 high-high",
            "normal",
            "normal",
            t0,
            cause="snapshot",
            active=False,
            priority="urgent",
        ),
        snapshot=True,
    )
    status, listed = await api.call("GET", f"/api/units/{unit}/alarms", "viewer")
    assert status == 200, listed
    assert [(a["name"], a["state"], a["priority"]) for a in listed] == [
        ("PT01 high", "normal", "high"),
        ("PT01 high-high", "normal", "urgent"),
    ]
    await engine.run_started("run-a", t0)
    await alarms(
        engine,
        event("PT01 high", "unack_active", "normal", t0 + 3, value=3.4),
        run_id="run-a",
    )
    status, active = await api.call("GET", "/api/alarms", "viewer")
    assert status == 200 and len(active) == 1
    raised = active[0]
    assert raised["unit_id"] == engine.engine_id and raised["state"] == "unack_active"
    assert raised["value"] == 3.4 and raised["unack_since"] == t0 + 3
    assert raised["condition"] == "PT01 > 3 bar" and raised["max_shelve_minutes"] == 30
    await alarms(
        engine,
        event(
            "PT01 high",
            "ack_active",
            "unack_active",
            t0 + 5,
            cause="ack",
            user="op",
            comment="seen",
        ),
        run_id="run-a",
    )
    status, page = await api.call("GET", f"/api/alarms/journal?unit_id={unit}", "viewer")
    assert status == 200
    entries = page["entries"]
    # the snapshot was news (nothing held before); then the raise and the acknowledgement
    assert [(e["state"], e["cause"]) for e in entries][:2] == [
        ("ack_active", "ack"),
        ("unack_active", "condition"),
    ]
    assert entries[0]["user"] == "op" and entries[0]["comment"] == "seen"
    assert entries[0]["run_id"] == "run-a"
    status, of_run = await api.call("GET", "/api/alarms/journal?run_id=run-a", "viewer")
    assert status == 200
    assert [e["state"] for e in of_run["entries"]] == ["ack_active", "unack_active"]
    status, page1 = await api.call("GET", f"/api/alarms/journal?unit_id={unit}&limit=1", "viewer")
    assert len(page1["entries"]) == 1 and page1["next"] is not None
    cursor = page1["next"]
    status, page2 = await api.call(
        "GET", f"/api/alarms/journal?unit_id={unit}&limit=1&cursor={cursor}", "viewer"
    )
    assert page2["entries"][0]["state"] == "unack_active"
    status, later = await api.call(
        "GET", f"/api/alarms/journal?unit_id={unit}&since={t0 + 4}", "viewer"
    )
    assert [e["cause"] for e in later["entries"]] == ["ack"]
    # a snapshot repeating what is held adds nothing to the journal
    await alarms(
        engine,
        event("PT01 high", "ack_active", "ack_active", t0 + 9, cause="snapshot"),
        event(
            "PT01 high-high",
            "normal",
            "normal",
            t0 + 9,
            cause="snapshot",
            active=False,
            priority="urgent",
        ),
        snapshot=True,
    )
    status, again = await api.call("GET", f"/api/alarms/journal?unit_id={unit}", "viewer")
    assert len(again["entries"]) == len(entries)
    await engine.aclose()


async def test_actions_by_role_are_forwarded_and_audited(api: Api) -> None:
    engine = await alarm_engine(api)
    unit = quote(engine.engine_id, safe="")
    base = f"/api/units/{unit}/alarms/PT01%20high"
    await alarms(engine, event("PT01 high", "unack_active", "normal", time.time()))
    await until(
        lambda: api.agg.app[ALARM_BOOK_KEY].state(engine.engine_id, "PT01 high") is not None
    )

    status, body = await api.call("POST", f"{base}/ack", "viewer", json={})
    assert status == 403 and "operator" in body["error"]
    assert not engine.requests
    assert audit_rows(api, "alarm ack")[-1]["user"] == api.names["viewer"]

    status, body = await api.call("POST", f"{base}/ack", "operator", json={"comment": "on it"})
    assert status == 200, body
    sent = engine.requests[-1]
    assert isinstance(sent, p.AlarmCommand)
    assert (sent.alarm, sent.action, sent.user, sent.comment) == (
        "PT01 high",
        p.AlarmAction.ACK,
        api.names["operator"],
        "on it",
    )
    entry = audit_rows(api, "alarm ack")[-1]
    assert entry["user"] == api.names["operator"]
    assert entry["new"]["alarm"] == "PT01 high" and entry["new"]["result"] == "ok"

    engine.answer = lambda _: (False, "only an unacknowledged alarm can be acknowledged", None)
    status, body = await api.call("POST", f"{base}/ack", "operator", json={})
    assert status == 409 and "only an unacknowledged" in body["error"]
    assert "only an unacknowledged" in audit_rows(api, "alarm ack")[-1]["new"]["result"]
    engine.answer = lambda _: (True, None, None)

    status, body = await api.call("POST", f"{base}/shelve", "operator", json={"minutes": 10})
    assert status == 422 and body["field"] == "reason"
    status, body = await api.call(
        "POST", f"{base}/shelve", "operator", json={"minutes": 31, "reason": "calibration"}
    )
    assert status == 422 and body["field"] == "minutes" and "30" in body["error"]
    status, body = await api.call(
        "POST", f"{base}/shelve", "operator", json={"minutes": 15, "reason": "calibration"}
    )
    assert status == 200, body
    sent = engine.requests[-1]
    assert (sent.action, sent.minutes, sent.reason) == (p.AlarmAction.SHELVE, 15, "calibration")
    assert audit_rows(api, "alarm shelve")[-1]["new"]["reason"] == "calibration"

    status, body = await api.call(
        "POST",
        f"/api/units/{unit}/alarms/PT01%20high-high/shelve",
        "operator",
        json={"minutes": 5, "reason": "x"},
    )
    assert status == 409 and "cannot be shelved" in body["error"]

    for path, payload, action in (
        ("unshelve", {}, p.AlarmAction.UNSHELVE),
        ("out-of-service", {"reason": "sensor replaced"}, p.AlarmAction.OUT_OF_SERVICE),
        ("return-to-service", {"comment": "back"}, p.AlarmAction.RETURN_TO_SERVICE),
    ):
        status, body = await api.call("POST", f"{base}/{path}", "operator", json=payload)
        assert status == 200, (path, body)
        assert engine.requests[-1].action == action
        assert audit_rows(api, f"alarm {action.value}")[-1]["new"]["result"] == "ok"

    status, body = await api.call("POST", f"{base}/out-of-service", "operator", json={})
    assert status == 422 and body["field"] == "reason"
    status, body = await api.call("POST", f"/api/units/{unit}/alarms/nope/ack", "operator", json={})
    assert status == 404 and "no alarm 'nope'" in body["error"]
    status, body = await api.call("POST", "/api/units/nowhere/alarms/x/ack", "operator", json={})
    assert status == 404
    await engine.aclose()


async def test_offline_engine_answers_503_and_is_audited(api: Api) -> None:
    engine = await alarm_engine(api)
    unit = quote(engine.engine_id, safe="")
    await engine.aclose()
    await until(lambda: not api.agg.ctx.live.engines[engine.engine_id].online)
    status, body = await api.call(
        "POST", f"/api/units/{unit}/alarms/PT01%20high/ack", "operator", json={}
    )
    assert status == 503, body
    assert audit_rows(api, "alarm ack")[-1]["new"]["result"] == body["error"]


async def test_journal_filters_are_checked(api: Api) -> None:
    status, body = await api.call("GET", "/api/alarms/journal?since=abc", "viewer")
    assert status == 400 and body["field"] == "since"
    status, body = await api.call("GET", "/api/alarms/journal?unit_id=nowhere", "viewer")
    assert status == 404
    status, body = await api.call("GET", "/api/alarms/journal?run_id=nothing", "viewer")
    assert status == 404
    status, body = await api.call("GET", "/api/alarms/journal?limit=0", "viewer")
    assert status == 400 and body["field"] == "limit"
    status, body = await api.call("GET", "/api/alarms/journal", None)
    assert status == 401
