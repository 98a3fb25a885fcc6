"""Notifications put together: events from the live side, who wants them, and the channels.

The service listens on the app's LiveHub (it runs inside ingest's publish call, so it only
decides and queues), keeps every person's choices and push subscriptions in memory (they change
only through the API, which tells it), and checks every tick interval for units offline too long
and for alarms to escalate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from aggregator.notify.config import NotifyConfig
from aggregator.notify.dispatch import Delivery, Dispatcher, Permanent
from aggregator.notify.mail import Mailer
from aggregator.notify.prefs import Event, NotificationPrefs, offline_thresholds, wants
from aggregator.notify.watch import UnitWatch
from aggregator.notify.webpush import PushGone, PushRefused, PushSender, Subscription, VapidKey
from aggregator.store.alarms import AlarmChange
from aggregator.store.notifications import NotificationStore, Person
from aggregator.store.rows import AlarmStateRow
from aggregator.ticks import sleep_to_tick
from protocol import UodDescription

log = logging.getLogger(__name__)
T = TypeVar("T")

ESCALATING = frozenset({"high", "urgent"})


@dataclass
class Hooks:
    """What the service needs from the rest of the aggregator (given by the API layer)."""

    read: Callable[..., Awaitable[Any]]
    """Run a read on a worker thread: read(fn, *args)."""
    write: Callable[..., Awaitable[Any]]
    """Run a write on the writer thread: write(fn, *args)."""
    clock: Callable[[], float]
    visible: Callable[[str, str], bool] = lambda role, unit: True
    """May a user of this role see this unit (the API's rule)."""
    uod: Callable[[str], UodDescription | None] = lambda unit: None
    alarms: Callable[[], Iterable[AlarmStateRow]] = tuple
    """Every alarm's current state (alarm views with unack_since and escalated)."""
    mark_escalated: Callable[[str, str, float, int], None] = lambda *args: None


@dataclass
class _Known:
    person: Person
    prefs: NotificationPrefs
    pushes: list[Subscription] = field(default_factory=list)


class NotificationService:
    def __init__(self, config: NotifyConfig, store: NotificationStore, hooks: Hooks) -> None:
        self.config = config
        self.store = store
        self.hooks = hooks
        self.watch = UnitWatch()
        self.mailer = Mailer(config.mail, tls=config.mail_tls) if config.mail else None
        self.vapid = (
            VapidKey.load_or_create(config.data_dir)
            if config.data_dir is not None
            else VapidKey.generate()
        )
        self.push = PushSender(self.vapid, config.push_subject, ttl=config.push_ttl)
        self.dispatcher = Dispatcher(
            self._failed,
            max_queued=config.max_queued,
            max_attempts=config.max_attempts,
            backoff=config.backoff,
        )
        self._people: dict[str, _Known] = {}
        self._escalation: dict[str, list[str]] = {}
        self._offline_told: set[tuple[str, float, int]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        for person in await self.hooks.read(self.store.people):
            await self.reload_person(person.name)
        self.dispatcher.start()
        self._ticker = asyncio.create_task(self._tick_loop(), name="notify-ticker")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for task in list(self._pending):
            with contextlib.suppress(Exception):
                await task
        await self.dispatcher.stop()
        await self.push.close()

    async def reload_person(self, name: str) -> None:
        """Read a person's choices and subscriptions again (after the API changed them)."""
        person = await self.hooks.read(self.store.person, name)
        if person is None:
            self._people.pop(name, None)
            return
        try:
            prefs = NotificationPrefs.model_validate_json(person.prefs_json or "{}")
        except ValidationError:
            log.warning("user %s: unreadable notification settings ignored", name)
            prefs = NotificationPrefs()
        rows = await self.hooks.read(self.store.push_subscriptions, person.user_id)
        pushes = [Subscription(r.endpoint, r.p256dh, r.auth) for r in rows]
        self._people[name] = _Known(person, prefs, pushes)

    async def settled(self) -> None:
        """Until nothing is queued or being sent and every failure is recorded (tests)."""
        while self.dispatcher.waiting or self._pending:
            await self.dispatcher.drained()
            if self._pending:
                await asyncio.wait(list(self._pending))

    def known(self, name: str) -> _Known | None:
        return self._people.get(name)

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run a write in the background, kept until done (stop waits for it)."""
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def load_escalation(self, unit_id: str) -> list[str]:
        users, _, _ = await self.hooks.read(self.store.escalation, unit_id)
        self._escalation[unit_id] = list(users)
        return self._escalation[unit_id]

    # --- events -----------------------------------------------------------------------------------

    def on_live(self, topic: str, data: Any) -> None:
        """LiveHub subscriber: decide and queue, never wait."""
        now = self.hooks.clock()
        if topic == "units" and isinstance(data, dict):
            for event in self.watch.on_summary(data, now):
                self.route(event)
            return
        if not topic.startswith("unit/"):
            return
        unit, _, kind = topic[len("unit/") :].rpartition("/")
        if kind == "errors":
            entries = data.get("entries", []) if isinstance(data, dict) else data
            for event in self.watch.on_errors(unit, entries if isinstance(entries, list) else []):
                self.route(event)
        elif kind == "alarms_stored" and isinstance(data, AlarmChange):
            for event in self.watch.on_alarms(data):
                self.route(event)

    def route(self, event: Event) -> int:
        """Queue the event for everyone who asked for it and may see the unit; how many."""
        count = 0
        for known in list(self._people.values()):
            if not self.hooks.visible(known.person.role, event.unit_id):
                continue
            if wants(known.prefs, event):
                count += self.deliver(known, event)
        return count

    def deliver(self, known: _Known, event: Event) -> int:
        """Queue one event on each of the person's channels; returns how many deliveries."""
        prefs, name = known.prefs, known.person.name
        queued = 0
        if prefs.email_enabled and prefs.email:
            queued += 1
            self.dispatcher.submit(self._mail(name, prefs.email, event))
        if prefs.web_push_enabled:
            for sub in known.pushes:
                queued += 1
                self.dispatcher.submit(self._push(known, sub, event))
        return queued

    def _mail(self, user: str, to: str, event: Event) -> Delivery:
        mailer = self.mailer

        async def send() -> None:
            if mailer is None:
                raise Permanent("this server sends no e-mail (serve --smtp-url is not set)")
            await mailer.send(to, f"[Setpoint] {event.title}", _mail_body(event, self.watch.names))

        return Delivery("email", user, to, event.title, send)

    def _push(self, known: _Known, sub: Subscription, event: Event) -> Delivery:
        payload: dict[str, object] = {
            "title": event.title,
            "body": event.body[:1000],
            "tag": event.tag or f"{event.kind}-{event.unit_id}",
            "url": "/alarms"
            if event.kind in ("alarm", "escalation")
            else f"/units/{event.unit_id}",
            "unit_id": event.unit_id,
            "kind": event.kind,
            "urgent": event.priority in ESCALATING,
        }

        async def send() -> None:
            try:
                await self.push.send(sub, payload)
            except PushGone as gone:
                if sub in known.pushes:
                    known.pushes.remove(sub)
                await self.hooks.write(self.store.remove_push, sub.endpoint)
                raise Permanent(f"{gone}; the subscription was removed") from None
            except PushRefused as refused:
                raise Permanent(str(refused)) from None

        return Delivery("web_push", known.person.name, _short(sub.endpoint), event.title, send)

    def _failed(self, delivery: Delivery, reason: str) -> None:
        self.spawn(
            self.hooks.write(
                self.store.add_failure,
                delivery.channel,
                delivery.user,
                delivery.recipient,
                delivery.subject,
                reason,
                delivery.attempts,
            )
        )

    # --- the clock: offline units and escalation ----------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await sleep_to_tick(self.config.tick_interval)
            try:
                self.tick()
            except Exception:
                log.exception("notification check failed")

    def tick(self) -> None:
        now = self.hooks.clock()
        self._offline(now)
        self._escalate(now)

    def _offline(self, now: float) -> None:
        since_by_unit = dict(self.watch.offline_since)
        self._offline_told = {k for k in self._offline_told if since_by_unit.get(k[0]) == k[1]}
        for unit, since in since_by_unit.items():
            for known in list(self._people.values()):
                key = (unit, since, known.person.user_id)
                if key in self._offline_told or not self.hooks.visible(known.person.role, unit):
                    continue
                thresholds = offline_thresholds(known.prefs, unit)
                if not thresholds or now - since < thresholds[0]:
                    continue
                self._offline_told.add(key)
                name = self.watch.names.get(unit, unit)
                minutes = (now - since) / 60
                event = Event(
                    "offline",
                    unit,
                    f"{name}: offline",
                    f"The unit has been offline for {minutes:.1f} min.",
                    offline_for=now - since,
                    tag=f"offline-{unit}",
                )
                self.deliver(known, event)

    def _escalate(self, now: float) -> None:
        for alarm in list(self.hooks.alarms()):
            since = alarm.unack_since
            if since is None or alarm.priority not in ESCALATING:
                continue
            unit, name = alarm.unit_id, alarm.name
            uod = self.hooks.uod(unit)
            definition = next((a for a in uod.alarms if a.name == name), None) if uod else None
            if definition is None or definition.escalation_minutes is None:
                continue
            step = alarm.escalated + 1
            if now - since < step * definition.escalation_minutes * 60:
                continue
            self.hooks.mark_escalated(unit, name, since, step)
            chain = self._escalation.get(unit, [])
            if step > len(chain):
                continue
            self._escalate_to(chain[step - 1], alarm, step, now - since)

    def _escalate_to(self, user: str, alarm: AlarmStateRow, step: int, waited: float) -> None:
        unit = alarm.unit_id
        label = self.watch.names.get(unit, unit)
        event = Event(
            "escalation",
            unit,
            f"{label}: {alarm.priority.upper()} alarm {alarm.name} not acknowledged",
            f"{alarm.message or alarm.name}: unacknowledged for {waited / 60:.0f} min; "
            f"you are step {step} of the unit's escalation list.",
            priority=alarm.priority,
            tag=f"alarm-{unit}-{alarm.name}",
        )
        known = self._people.get(user)
        if known is None or not self.deliver(known, event):
            self._failed(
                Delivery("escalation", user, user, event.title, _nothing),
                f"{user} is on the escalation list of {unit} but has no e-mail or web push "
                "notifications enabled",
            )
            log.error("escalation of %s/%s: %s has no channel enabled", unit, alarm.name, user)


async def _nothing() -> None:
    return None


def _short(endpoint: str) -> str:
    return endpoint if len(endpoint) <= 80 else endpoint[:77] + "..."


def _mail_body(event: Event, names: dict[str, str]) -> str:
    unit = names.get(event.unit_id, event.unit_id)
    where = f"Unit: {unit} ({event.unit_id})\n" if event.unit_id else ""
    return (
        f"{event.body}\n\n{where}"
        "You receive this because of your notification settings in Setpoint "
        "(Settings > Notifications).\n"
    )
