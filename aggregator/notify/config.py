"""How the aggregator reaches people: given by `serve` (--smtp-url, --smtp-from) or by tests."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from aggregator.notify.mail import MailConfig


@dataclass(frozen=True)
class NotifyConfig:
    data_dir: Path | None = None
    """Where the VAPID key is kept; None: a key for this process only (tests)."""
    mail: MailConfig | None = None
    """None: this server sends no e-mail."""
    mail_tls: ssl.SSLContext | None = None
    """TLS settings for SMTP (tests trust their own certificate); None: the system's."""
    tick_interval: float = 5.0
    """Seconds between checks of offline units and unacknowledged alarms (escalation)."""
    max_queued: int = 1000
    max_attempts: int = 5
    backoff: float = 2.0
    """Seconds before the first retry; doubled for each further one (at most 300 s)."""
    push_ttl: int = 24 * 3600

    @property
    def push_subject(self) -> str:
        """The VAPID contact push services may write to about our messages."""
        return f"mailto:{self.mail.sender}" if self.mail else "mailto:setpoint@localhost"
