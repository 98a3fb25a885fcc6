"""E-mail delivery: an SMTP server (STARTTLS, login) or a local mailbox file.

smtplib is blocking, so each message is sent on a worker thread; the dispatcher (dispatch.py)
keeps that off ingest's path. `file:///path` appends to an mbox file instead, which the demo uses
to show notifications working without a mail server.
"""

from __future__ import annotations

import asyncio
import mailbox
import os
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

PASSWORD_ENV = "SETPOINT_SMTP_PASSWORD"
SMTP_TIMEOUT = 30.0


class MailConfigError(ValueError):
    """The --smtp-url or --smtp-from is not usable; the message says why."""


@dataclass(frozen=True)
class MailConfig:
    """Where e-mail goes. scheme: smtp (STARTTLS when the server offers it, required before a
    login), smtps (TLS from the start) or file (an mbox file)."""

    scheme: str
    sender: str
    host: str = ""
    port: int = 0
    user: str | None = None
    password: str | None = None
    path: Path | None = None
    starttls: str = "auto"
    """auto: when offered (required with a login); require; never (only without a login)."""

    def describe(self) -> str:
        """For logs and the admin page: never the password."""
        if self.scheme == "file":
            return f"mailbox file {self.path}"
        who = f"{self.user}@" if self.user else ""
        return f"{self.scheme}://{who}{self.host}:{self.port}"


def parse_mail_url(url: str, sender: str, env: dict[str, str] | None = None) -> MailConfig:
    """`smtp://[user[:password]@]host[:port][?starttls=auto|require|never]`, `smtps://...` or
    `file:///path/to/mailbox`. A password left out of the URL is read from
    SETPOINT_SMTP_PASSWORD, so it need not appear on a command line."""
    env = dict(os.environ) if env is None else env
    if not sender or "@" not in sender or any(c in sender for c in "\r\n<>"):
        raise MailConfigError(f"--smtp-from {sender!r} is not an e-mail address")
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not parts.path or parts.netloc not in ("", "localhost"):
            raise MailConfigError(f"--smtp-url {url!r}: a file URL is file:///absolute/path")
        return MailConfig("file", sender, path=Path(unquote(parts.path)))
    if parts.scheme not in ("smtp", "smtps"):
        raise MailConfigError(
            f"--smtp-url {url!r}: use smtp://host:port, smtps://host:port or file:///path"
        )
    if not parts.hostname:
        raise MailConfigError(f"--smtp-url {url!r} names no host")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
    except ValueError:
        raise MailConfigError(f"--smtp-url {url!r}: the port is not a number 1..65535") from None
    starttls = parse_qs(parts.query).get("starttls", ["auto"])[-1]
    if starttls not in ("auto", "require", "never"):
        raise MailConfigError(f"--smtp-url {url!r}: starttls is auto, require or never")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else env.get(PASSWORD_ENV) or None
    if user and password is None:
        raise MailConfigError(
            f"--smtp-url names the user {user!r} but no password: put it in {PASSWORD_ENV}"
        )
    if user and starttls == "never" and parts.scheme == "smtp":
        raise MailConfigError("--smtp-url: a login needs TLS; starttls=never is refused with one")
    return MailConfig(parts.scheme, sender, parts.hostname, port, user, password, starttls=starttls)


def build_message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject.replace("\r", " ").replace("\n", " ")[:200]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(body)
    return message


class Mailer:
    """Sends one message at a time per call; safe to call from several threads."""

    def __init__(self, config: MailConfig, *, tls: ssl.SSLContext | None = None) -> None:
        self.config = config
        self._tls = tls or ssl.create_default_context()
        self._file_lock = threading.Lock()

    async def send(self, to: str, subject: str, body: str) -> None:
        message = build_message(self.config.sender, to, subject, body)
        await asyncio.to_thread(self.send_sync, message)

    def send_sync(self, message: EmailMessage) -> None:
        if self.config.scheme == "file":
            self._to_file(message)
        elif self.config.scheme == "smtps":
            with smtplib.SMTP_SSL(
                self.config.host, self.config.port, timeout=SMTP_TIMEOUT, context=self._tls
            ) as smtp:
                self._login_and_send(smtp, message)
        else:
            with smtplib.SMTP(self.config.host, self.config.port, timeout=SMTP_TIMEOUT) as smtp:
                smtp.ehlo()
                self._starttls(smtp)
                self._login_and_send(smtp, message)

    def _starttls(self, smtp: smtplib.SMTP) -> None:
        mode = self.config.starttls
        offered = smtp.has_extn("starttls")
        if mode == "never":
            return
        if offered:
            smtp.starttls(context=self._tls)
            smtp.ehlo()
        elif mode == "require" or self.config.user:
            raise smtplib.SMTPNotSupportedError(
                f"{self.config.host}:{self.config.port} does not offer STARTTLS; not sending "
                + ("the password in the clear" if self.config.user else "without TLS")
            )

    def _login_and_send(self, smtp: smtplib.SMTP, message: EmailMessage) -> None:
        if self.config.user:
            smtp.login(self.config.user, self.config.password or "")
        smtp.send_message(message)

    def _to_file(self, message: EmailMessage) -> None:
        path = self.config.path
        assert path is not None
        with self._file_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            box = mailbox.mbox(str(path))
            box.lock()
            try:
                box.add(message)
                box.flush()
            finally:
                box.unlock()
                box.close()
