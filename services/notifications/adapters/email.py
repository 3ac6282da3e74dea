"""E-mail over SMTP: one message per delivery, with a stable Message-ID."""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from ..delivery import OutgoingMessage, SendResult


class SmtpSender:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout_seconds

    def build(self, message: OutgoingMessage, now: datetime) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address or ""
        mail["Subject"] = message.title
        mail["Date"] = format_datetime(now)
        # Stable across retries, so a mail system (or a person) can spot a repeat.
        domain = self.sender.rpartition("@")[2] or "localhost"
        mail["Message-ID"] = f"<{message.notification_id}@{domain}>"
        mail["X-Notification-Id"] = message.notification_id
        mail.set_content(message.text + "\n")
        return mail

    def send(self, message: OutgoingMessage, now: datetime) -> SendResult:
        if not message.address:
            return SendResult(False, None, "no e-mail address")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(self.build(message, now))
        except smtplib.SMTPResponseException as error:
            return SendResult(
                False, error.smtp_code, f"SMTP {error.smtp_code}: {error.smtp_error!r}"
            )
        except (smtplib.SMTPException, OSError) as error:
            return SendResult(False, None, f"{type(error).__name__}: {error}"[:500])
        if refused:
            return SendResult(False, None, f"refused: {refused}"[:500])
        return SendResult(True, 250, None)
