"""The e-mail a delivery builds (no SMTP server): the text first, then the
meeting's ``interview.ics`` when the notification holds a calendar change."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from typing import Any
from uuid import UUID

import pytest
from icalendar import Calendar

from services.notifications.adapters.email import SmtpSender
from services.notifications.delivery import OutgoingMessage

pytestmark = pytest.mark.unit

IID = UUID("8c4c0d8e-7d1a-4e33-9d55-2f0f4b1e0a11")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def message(calendar: dict[str, Any] | None, **ids: str) -> OutgoingMessage:
    invitation = None
    if calendar is not None:
        invitation = calendar | {
            "interview_id": str(IID),
            "job_id": "job-7",
            "client_id": ids.get("client", "client-1"),
            "freelancer_id": ids.get("freelancer", "freelancer-1"),
        }
    return OutgoingMessage(
        delivery_id="d-1",
        notification_id="n-1",
        attempt=1,
        lease_token="t",
        channel="email",
        recipient_id="freelancer-1",
        title="Interview cancelled",
        text="Client client-1 cancelled the interview with you for job job-7.",
        body=b"{}",
        address="freelancer-1@example.test",
        calendar=invitation,
    )


CANCEL = {
    "uid": f"{IID}@interviews",
    "sequence": 3,
    "method": "CANCEL",
    "status": "CANCELLED",
    "scheduled_at": "2026-12-08T14:00:00+00:00",
    "duration_minutes": 45,
    "stamp": "2026-12-01T08:00:00+00:00",
}


def parsed(msg: OutgoingMessage) -> Any:
    built = SmtpSender("127.0.0.1", 25, "hiring@example.test").build(msg, NOW)
    return message_from_bytes(built.as_bytes(), policy=default)


def test_a_cancellation_carries_a_cancel_with_the_stored_sequence() -> None:
    mail = parsed(message(CANCEL))
    assert mail.get_body(("plain",)).get_content().startswith("Client client-1 cancelled")
    (part,) = list(mail.iter_attachments())
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "CANCEL"
    assert part.get_filename() == "interview.ics"
    calendar = Calendar.from_ical(part.get_content())
    (event,) = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["UID"]) == f"{IID}@interviews"
    assert int(event["SEQUENCE"]) == 3
    assert str(event["STATUS"]) == "CANCELLED"
    assert event.decoded("DTSTART") == datetime(2026, 12, 8, 14, 0, tzinfo=UTC)
    assert event.decoded("DTEND") == datetime(2026, 12, 8, 14, 45, tzinfo=UTC)
    assert event.decoded("DTSTAMP") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert str(event["ORGANIZER"]) == "mailto:client-1@example.test"


def test_ids_that_make_no_e_mail_address_keep_the_feeds_urns() -> None:
    mail = parsed(message(CANCEL, client="client:1/acme"))
    (part,) = list(mail.iter_attachments())
    (event,) = Calendar.from_ical(part.get_content()).walk("VEVENT")
    assert str(event["ORGANIZER"]) == "urn:x-interviews:user:client:1/acme"
    assert str(event["ATTENDEE"]) == "urn:x-interviews:user:freelancer-1"


def test_a_notification_without_a_calendar_is_plain_text() -> None:
    mail = parsed(message(None))
    assert not mail.is_multipart()
    assert mail.get_content_type() == "text/plain"
