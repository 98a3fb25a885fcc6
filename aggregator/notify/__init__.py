"""Notifications (issue 17): alarms and unit events reach the people who asked for them, by
e-mail and web push, even when nobody has the page open.

- prefs: what each person chose, and the events (`Event`);
- watch: which live changes are events (sans-I/O);
- dispatch: the bounded outbox with retries; nothing on ingest's path ever waits for it;
- mail, webpush: the two channels;
- service: all of it together, fed from the app's LiveHub; the API (aggregator/api/notify_api.py)
  gives it the rules of who may see which unit.

Who may import it: aggregator.app (which starts the service), aggregator.api.notify_api and
aggregator.cli. It imports the store and protocol, never engine (engine -> protocol <- aggregator).
"""

from __future__ import annotations

from aggregator.notify.config import NotifyConfig
from aggregator.notify.mail import MailConfig, MailConfigError, parse_mail_url

__all__ = ["MailConfig", "MailConfigError", "NotifyConfig", "parse_mail_url"]
