"""The notification outbox never blocks and never drops silently; e-mail settings are checked
with one clear line each; the person's rules decide."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.notify import MailConfigError, parse_mail_url
from aggregator.notify.dispatch import Delivery, Dispatcher, Permanent
from aggregator.notify.prefs import Event, NotificationPrefs, NotifyRule, wants
from protocol import AlarmPriority


def recorder() -> tuple[list[tuple[str, str, int]], Dispatcher]:
    failed: list[tuple[str, str, int]] = []
    dispatcher = Dispatcher(
        lambda d, reason: failed.append((d.recipient, reason, d.attempts)),
        max_queued=2,
        senders=1,
        max_attempts=3,
        backoff=0.001,
    )
    return failed, dispatcher


async def test_retries_with_backoff_then_delivers() -> None:
    failed, dispatcher = recorder()
    tries: list[int] = []

    async def flaky() -> None:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("server busy")

    dispatcher.start()
    assert dispatcher.submit(Delivery("email", "u", "a@b", "s", flaky))
    await asyncio.wait_for(dispatcher.drained(), 5)
    await dispatcher.stop()
    assert len(tries) == 3 and dispatcher.sent == 1 and not failed


async def test_gives_up_after_the_last_attempt_and_reports_it() -> None:
    failed, dispatcher = recorder()

    async def down() -> None:
        raise ConnectionError("connection refused")

    async def refused() -> None:
        raise Permanent("mailbox unavailable")

    dispatcher.start()
    dispatcher.submit(Delivery("email", "u", "down@b", "s", down))
    dispatcher.submit(Delivery("email", "u", "refused@b", "s", refused))
    await asyncio.wait_for(dispatcher.drained(), 5)
    await dispatcher.stop()
    assert sorted(failed) == [
        ("down@b", "connection refused", 3),
        ("refused@b", "mailbox unavailable", 1),  # not retried: it cannot help
    ]


async def test_a_full_queue_refuses_at_once_and_says_so() -> None:
    failed, dispatcher = recorder()  # not started: nothing is taken off the queue
    hold = asyncio.Event()

    async def slow() -> None:
        await hold.wait()

    assert dispatcher.submit(Delivery("email", "u", "1", "s", slow))
    assert dispatcher.submit(Delivery("email", "u", "2", "s", slow))
    assert not dispatcher.submit(Delivery("email", "u", "3", "s", slow))
    assert failed == [("3", "the notification queue is full (2 waiting)", 0)]
    await dispatcher.stop()  # what was still queued is reported, not dropped
    assert [f[0] for f in failed] == ["3", "1", "2"]


@pytest.mark.parametrize(
    ("url", "sender", "problem"),
    [
        ("ftp://mail", "a@b.example", "use smtp://host:port"),
        ("smtp://", "a@b.example", "names no host"),
        ("smtp://mail:99999", "a@b.example", "port"),
        ("smtp://mail?starttls=maybe", "a@b.example", "starttls is auto, require or never"),
        ("smtp://me@mail", "a@b.example", "SETPOINT_SMTP_PASSWORD"),
        ("smtp://me:pw@mail?starttls=never", "a@b.example", "a login needs TLS"),
        ("file://host/x", "a@b.example", "file:///absolute/path"),
        ("smtp://mail", "not-an-address", "--smtp-from"),
    ],
)
def test_mail_settings_refused_with_one_line(url: str, sender: str, problem: str) -> None:
    with pytest.raises(MailConfigError, match=problem.replace("?", r"\?")):
        parse_mail_url(url, sender, env={})


def test_mail_settings_accepted() -> None:
    config = parse_mail_url(
        "smtp://me@mail.lab:2525", "sp@lab.example", env={"SETPOINT_SMTP_PASSWORD": "pw"}
    )
    assert (config.host, config.port, config.user, config.password) == (
        "mail.lab",
        2525,
        "me",
        "pw",
    )
    assert config.describe() == "smtp://me@mail.lab:2525"  # never the password
    assert parse_mail_url("smtps://mail", "a@b.c", env={}).port == 465
    assert parse_mail_url("smtp://mail", "a@b.c", env={}).port == 587
    assert parse_mail_url("file:///tmp/box", "a@b.c", env={}).path == Path("/tmp/box")


def test_serve_refuses_bad_mail_settings_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--data-dir", str(tmp_path), "--smtp-url", "smtp://mail"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "setpoint-aggregator: error: --smtp-url and --smtp-from go together"
    )
    code = main(
        ["serve", "--data-dir", str(tmp_path), "--smtp-url", "pop://x", "--smtp-from", "a@b.c"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "use smtp://host:port" in err


def test_rules_choose_events_per_unit_and_priority() -> None:
    prefs = NotificationPrefs(
        rules=[
            NotifyRule(unit_id="a", alarm_priority=AlarmPriority.MEDIUM, run_started=True),
            NotifyRule(unit_id=None, alarm_priority=AlarmPriority.URGENT),
        ]
    )

    def alarm(unit: str, priority: str) -> Event:
        return Event("alarm", unit, "t", "b", priority=priority)

    assert wants(prefs, alarm("a", "high")) and wants(prefs, alarm("a", "medium"))
    assert not wants(prefs, alarm("a", "low"))
    assert not wants(prefs, alarm("b", "high")) and wants(prefs, alarm("b", "urgent"))
    assert wants(prefs, Event("run_started", "a", "t", "b"))
    assert not wants(prefs, Event("run_started", "b", "t", "b"))
    assert not wants(prefs, Event("run_stopped", "a", "t", "b"))
