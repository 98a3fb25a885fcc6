"""Notifications reach people: each person's choices decide which unit events reach them; e-mail
goes through a real SMTP server (STARTTLS and login) or a mailbox file, web push through a push
service on loopback that decrypts the payload with the subscription's keys; failures are retried,
then kept for admins; an unacknowledged high-priority alarm escalates along the unit's list."""

from __future__ import annotations

import mailbox
import time
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.api.notify_api import NOTIFY_KEY
from aggregator.notify import NotifyConfig, parse_mail_url
from aggregator.notify.service import NotificationService
from tests.aggregator.helpers import until
from tests.api.conftest import Api, start_api, stop_api
from tests.api.fake_engine import FakeEngine
from tests.api.notify_helpers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Browser,
    PushService,
    free_port,
    start_smtp,
    verify_vapid,
)
from tests.api.test_alarms import ALARM_UOD, alarms, event

SENDER = "setpoint@lab.example"


def service(api: Api) -> NotificationService:
    return api.agg.app[NOTIFY_KEY]


def mails(path: Path) -> list[Message]:
    if not path.exists():
        return []
    box = mailbox.mbox(str(path))
    try:
        return list(box)
    finally:
        box.close()


async def wait_mails(path: Path, count: int) -> list[Message]:
    await until(lambda: len(mails(path)) >= count, 10.0, f"{count} e-mail(s) in {path}")
    return mails(path)


async def choose(api: Api, role: str, **prefs: Any) -> dict[str, Any]:
    status, body = await api.call("PUT", "/api/me/notifications", role, json=prefs)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def with_mail(tmp_path: Path, mail_url: str | None = None, **extra: Any) -> NotifyConfig:
    url = mail_url or f"file://{tmp_path / 'mail' / 'mbox'}"
    settings: dict[str, Any] = {"tick_interval": 3600.0, "backoff": 0.01, "max_attempts": 2}
    settings.update(extra)
    return NotifyConfig(data_dir=tmp_path / "data", mail=parse_mail_url(url, SENDER), **settings)


@pytest.fixture
async def mbox_api(db_url: str, tmp_path: Path, password_hash: str) -> AsyncIterator[Api]:
    api = await start_api(db_url, tmp_path, password_hash, with_mail(tmp_path))
    try:
        yield api
    finally:
        await stop_api(api)


async def test_settings_are_per_person_and_checked(api: Api) -> None:
    status, body = await api.call("GET", "/api/me/notifications", "viewer")
    assert status == 200
    assert body["rules"] == [] and body["email_available"] is False
    assert len(body["vapid_public_key"]) == 87  # 65 bytes, base64url
    status, body = await api.call(
        "PUT",
        "/api/me/notifications",
        "viewer",
        json={"email": "v@lab.example", "email_enabled": True},
    )
    assert status == 422 and body["field"] == "email_enabled"
    assert "--smtp-url" in body["error"]
    status, body = await api.call("PUT", "/api/me/notifications", "viewer", json={"email": "nope"})
    assert status == 422 and body["field"] == "email"
    status, body = await api.call(
        "PUT", "/api/me/notifications", "viewer", json={"rules": [{"unit_id": "nowhere"}]}
    )
    assert status == 404 and body["field"] == "rules.0.unit_id"
    status, body = await api.call(
        "PUT", "/api/me/notifications", "viewer", json={"rules": [{"alarm_priority": "severe"}]}
    )
    assert status == 422 and body["field"] == "rules.0.alarm_priority"
    status, body = await api.call(
        "PUT", "/api/me/notifications", "viewer", json={"rules": [{"offline_seconds": -1}]}
    )
    assert status == 422 and body["field"] == "rules.0.offline_seconds"
    status, body = await api.call("PUT", "/api/me/notifications", "viewer", json={"sms": True})
    assert status == 422 and body["field"] == "sms"
    saved = await choose(api, "viewer", web_push_enabled=True, rules=[{"notify_lines": True}])
    assert saved["rules"][0]["notify_lines"] is True
    status, mine = await api.call("GET", "/api/me/notifications", "viewer")
    assert mine["web_push_enabled"] is True
    status, theirs = await api.call("GET", "/api/me/notifications", "operator")
    assert theirs["web_push_enabled"] is False
    status, body = await api.call("POST", "/api/me/notifications/test", "operator")
    assert status == 409 and "no channel" in body["error"]


async def test_unit_events_reach_who_chose_them_by_email(mbox_api: Api, tmp_path: Path) -> None:
    api = mbox_api
    box = tmp_path / "mail" / "mbox"
    engine = await api.engine(uod=ALARM_UOD)
    unit = engine.engine_id
    await choose(
        api,
        "operator",
        email="op@lab.example",
        email_enabled=True,
        rules=[
            {
                "unit_id": unit,
                "alarm_priority": "high",
                "run_started": True,
                "run_stopped": True,
                "run_paused": True,
                "method_error": True,
                "notify_lines": True,
            }
        ],
    )
    await choose(
        api,
        "viewer",
        email="viewer@lab.example",
        email_enabled=True,
        rules=[{"unit_id": None, "alarm_priority": "urgent"}],
    )
    t0 = time.time()
    await engine.run_started("run-n", t0)
    await engine.control_state(p.SystemState.RUNNING, "run-n")
    await engine.control_state(p.SystemState.PAUSED, "run-n")
    await engine.control_state(p.SystemState.PAUSED, "run-n", method_status="Error", block="Load")
    await engine.emit(
        lambda seq: p.ErrorLog(
            seq=seq,
            time=t0 + 1,
            run_id="run-n",
            entries=[
                p.ErrorLogEntry(
                    time=t0 + 1, level="info", message="Notify: Column loaded", source="notify"
                )
            ],
        )
    )
    await alarms(
        engine,
        event(
            "PT01 high-high",
            "unack_active",
            "normal",
            t0 + 2,
            priority="urgent",
            value=4.2,
            message="Stop the pump",
        ),
    )
    await alarms(
        engine, event("PT01 high", "unack_active", "normal", t0 + 3, value=3.1, priority="medium")
    )  # below the operator's "high"
    await engine.run_stopped("run-n", t0 + 4)
    got = await wait_mails(box, 7)
    await service(api).settled()
    got = mails(box)
    to_op = [m["Subject"] for m in got if m["To"] == "op@lab.example"]
    to_viewer = [m["Subject"] for m in got if m["To"] == "viewer@lab.example"]
    name = ALARM_UOD.name
    assert to_op == [
        f"[Setpoint] {name}: run started",
        f"[Setpoint] {name}: paused",
        f"[Setpoint] {name}: method error",
        f"[Setpoint] {name}: Column loaded",
        f"[Setpoint] {name}: URGENT alarm PT01 high-high",
        f"[Setpoint] {name}: run stopped",
    ]
    assert to_viewer == [f"[Setpoint] {name}: URGENT alarm PT01 high-high"]
    alarm_mail = next(m for m in got if "URGENT" in m["Subject"])
    text = alarm_mail.get_payload()
    assert isinstance(text, str) and "Stop the pump (value 4.2)" in text and unit in text
    assert all(m["From"] == SENDER for m in got)
    await engine.aclose()


async def test_email_over_starttls_with_login(
    db_url: str, tmp_path: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp = start_smtp(tmp_path)
    monkeypatch.setenv("SETPOINT_SMTP_PASSWORD", SMTP_PASSWORD)
    config = with_mail(
        tmp_path, f"smtp://{SMTP_USER}@127.0.0.1:{smtp.port}", mail_tls=smtp.client_tls
    )
    api = await start_api(db_url, tmp_path, password_hash, config)
    try:
        await choose(api, "operator", email="op@lab.example", email_enabled=True)
        status, body = await api.call("POST", "/api/me/notifications/test", "operator")
        assert status == 200 and body == {"queued": 1}
        await until(lambda: smtp.sink.messages, 10.0, "the message at the SMTP server")
        message, over_tls, login = smtp.sink.messages[0]
        assert over_tls and login.login == SMTP_USER.encode()
        assert message["To"] == "op@lab.example" and message["From"] == SENDER
        assert message["Subject"] == "[Setpoint] Test notification"
    finally:
        await stop_api(api)
        smtp.controller.stop()


async def test_no_password_in_the_clear_and_admins_see_the_failure(
    db_url: str, tmp_path: Path, password_hash: str
) -> None:
    from aiosmtpd.controller import Controller

    from tests.api.notify_helpers import MailSink

    sink = MailSink()
    port = free_port()
    plain = Controller(sink, hostname="127.0.0.1", port=port)  # no STARTTLS offered
    plain.start()
    url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}"
    api = await start_api(db_url, tmp_path, password_hash, with_mail(tmp_path, url))
    try:
        await choose(api, "operator", email="op@lab.example", email_enabled=True)
        status, _ = await api.call("POST", "/api/me/notifications/test", "operator")
        assert status == 200
        await service(api).settled()

        async def failures() -> list[dict[str, Any]]:
            status, page = await api.call("GET", "/api/notifications/failures", "admin")
            assert status == 200
            items: list[dict[str, Any]] = page["items"]
            return items

        items = await failures()  # settled: every failure is recorded
        assert not sink.messages
        [failure] = items
        assert failure["channel"] == "email" and failure["recipient"] == "op@lab.example"
        assert (
            "does not offer STARTTLS" in failure["error"] and SMTP_PASSWORD not in failure["error"]
        )
        assert failure["attempts"] == 2  # retried, then kept
        status, page = await api.call("GET", "/api/notifications/failures", "admin")
        assert page["email"] == f"smtp://{SMTP_USER}@127.0.0.1:{port}"
        status, _ = await api.call("GET", "/api/notifications/failures", "operator")
        assert status == 403
    finally:
        await stop_api(api)
        plain.stop()


async def test_web_push_is_encrypted_to_the_subscription(api: Api, engine: FakeEngine) -> None:
    push = await PushService().start()
    try:
        browser = Browser()
        endpoint = f"{push.url}/push/device-1"
        status, body = await api.call(
            "POST", "/api/me/push-subscriptions", "operator", json=browser.subscription(endpoint)
        )
        assert status == 204, body
        settings = await choose(
            api, "operator", web_push_enabled=True, rules=[{"notify_lines": True}]
        )
        assert settings["push_subscriptions"] == 1
        await engine.emit(
            lambda seq: p.ErrorLog(
                seq=seq,
                time=time.time(),
                entries=[
                    p.ErrorLogEntry(
                        time=time.time(),
                        level="info",
                        message="Notify: Fraction 3 ready",
                        source="notify",
                    )
                ],
            )
        )
        await until(lambda: push.received, 10.0, "a push message")
        device, headers, payload = push.received[0]
        assert device == "device-1"
        assert headers["Content-Encoding"] == "aes128gcm" and int(headers["TTL"]) > 0
        assert b"Fraction" not in payload  # the push service cannot read it
        message = browser.decrypt(payload)
        assert message["body"] == "Fraction 3 ready" and message["unit_id"] == engine.engine_id
        assert message["url"] == f"/units/{engine.engine_id}"
        verify_vapid(headers["Authorization"], push.url, settings["vapid_public_key"])

        push.status = 410  # the browser unsubscribed: forget it, and say so
        status, _ = await api.call("POST", "/api/me/notifications/test", "operator")
        assert status == 200
        await service(api).settled()

        def forgotten() -> bool:
            known = service(api).known(api.names["operator"])
            assert known is not None
            return not known.pushes

        await until(forgotten, 5.0, "the subscription forgotten")
        status, page = await api.call("GET", "/api/notifications/failures", "admin")
        assert "subscription was removed" in page["items"][0]["error"]
        status, mine = await api.call("GET", "/api/me/notifications", "operator")
        assert mine["push_subscriptions"] == 0
        status, body = await api.call(
            "DELETE", f"/api/me/push-subscriptions?endpoint={quote(endpoint)}", "operator"
        )
        assert status == 404
        status, body = await api.call(
            "POST",
            "/api/me/push-subscriptions",
            "operator",
            json={"endpoint": "ftp://x/y/z/1", "keys": {"p256dh": "a", "auth": "b"}},
        )
        assert status == 422 and body["field"] == "endpoint"
    finally:
        await push.stop()


async def test_unacknowledged_alarm_escalates_along_the_list(mbox_api: Api, tmp_path: Path) -> None:
    api = mbox_api
    box = tmp_path / "mail" / "mbox"
    engine = await api.engine(uod=ALARM_UOD)
    unit = quote(engine.engine_id, safe="")
    for role in ("operator", "admin"):
        await choose(api, role, email=f"{role}@lab.example", email_enabled=True)
    chain = [api.names["operator"], api.names["admin"]]
    status, body = await api.call(
        "PUT", f"/api/units/{unit}/escalation", "operator", json={"users": chain}
    )
    assert status == 403
    status, body = await api.call(
        "PUT", f"/api/units/{unit}/escalation", "admin", json={"users": ["nobody"]}
    )
    assert status == 422 and body["field"] == "users.0"
    status, body = await api.call(
        "PUT", f"/api/units/{unit}/escalation", "admin", json={"users": chain}
    )
    assert status == 200 and body["users"] == chain
    status, body = await api.call("GET", f"/api/units/{unit}/escalation", "viewer")
    assert body["users"] == chain and body["updated_by"] == api.names["admin"]

    # PT01 high: priority high, escalation_minutes 1; raised 130 s ago, still unacknowledged
    await alarms(engine, event("PT01 high", "unack_active", "normal", time.time() - 130))
    svc = service(api)
    await until(lambda: any(a.name == "PT01 high" for a in svc.hooks.alarms()))
    svc.tick()
    first = await wait_mails(box, 1)
    assert first[0]["To"] == "operator@lab.example"
    assert "PT01 high not acknowledged" in first[0]["Subject"]
    svc.tick()  # two minutes: the next on the list
    second = await wait_mails(box, 2)
    assert second[1]["To"] == "admin@lab.example"
    svc.tick()  # step 3 is due only at three minutes
    await svc.settled()
    assert len(mails(box)) == 2

    def escalated() -> int:
        with api.agg.ctx.storage.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT escalated FROM alarm_current WHERE name = 'PT01 high'")
                ).scalar_one()
            )

    await until(lambda: escalated() == 2)  # kept: a restarted aggregator does not start over
    await alarms(engine, event("PT01 high", "ack_active", "unack_active", time.time(), cause="ack"))
    await alarms(engine, event("PT01 high", "normal", "ack_active", time.time(), active=False))
    svc.tick()
    await svc.settled()
    assert len(mails(box)) == 2
    await engine.aclose()


async def test_offline_longer_than_chosen(mbox_api: Api, tmp_path: Path) -> None:
    api = mbox_api
    box = tmp_path / "mail" / "mbox"
    engine = await api.engine()
    await choose(
        api,
        "viewer",
        email="viewer@lab.example",
        email_enabled=True,
        rules=[{"unit_id": engine.engine_id, "offline_seconds": 0}],
    )
    svc = service(api)
    svc.tick()
    await engine.aclose()
    await until(lambda: engine.engine_id in svc.watch.offline_since)
    svc.tick()
    svc.tick()  # once per time offline
    got = await wait_mails(box, 1)
    await svc.settled()
    assert len(mails(box)) == 1 and got[0]["Subject"].endswith("offline")
