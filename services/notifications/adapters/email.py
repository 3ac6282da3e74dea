"""E-mail over SMTP: one message per delivery, with a stable Message-ID.

An e-mail about a started, rescheduled or cancelled meeting carries the
meeting's calendar event as an attachment (``interview.ics``,
``text/calendar; method=REQUEST|CANCEL``), built by ``common.calendar``, the
function the interviews service's feed uses: the same UID, SEQUENCE, times and
status as the feed at that moment, so a calendar application updates one event
in place. Its organizer (the client) and attendee (the freelancer) are their
e-mail addresses where both ids make one, else the feed's URNs.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from ...common.calendar import interview_calendar, meeting_description, meeting_summary
from ..delivery import OutgoingMessage, SendResult
from ..recorder import email_address

CALENDAR_FILENAME = "interview.ics"


def calendar_attachment(calendar: Mapping[str, Any], domain: str | None) -> bytes:
    """The ``.ics`` of a meeting invitation (``delivery.meeting_invitation``)."""
    client, freelancer = str(calendar["client_id"]), str(calendar["freelancer_id"])
    mail_domain = domain if all(email_address(u, domain) for u in (client, freelancer)) else None
    return interview_calendar(
        interview_id=calendar["interview_id"],
        summary=meeting_summary(calendar["job_id"]),
        description=meeting_description(
            calendar["interview_id"], calendar["job_id"], client, freelancer
        ),
        start=datetime.fromisoformat(calendar["scheduled_at"]),
        duration_minutes=int(calendar["duration_minutes"]),
        organizer_id=client,
        attendee_id=freelancer,
        sequence=int(calendar["sequence"]),
        stamp=datetime.fromisoformat(calendar["stamp"]),
        cancelled=calendar["method"] == "CANCEL",
        email_domain=mail_domain,
    )


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
        if message.calendar is not None:
            mail.add_attachment(
                calendar_attachment(message.calendar, (message.address or "").rpartition("@")[2]),
                maintype="text",
                subtype="calendar",
                filename=CALENDAR_FILENAME,
                params={"method": message.calendar["method"], "charset": "utf-8"},
            )
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
