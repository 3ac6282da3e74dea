"""E-mails about a meeting carry its calendar event, on a real database (SQLite
file and PostgreSQL) and a real SMTP server: the attachment is parsed back with
the icalendar library and checked field by field through start, two reschedules
and a cancellation. The UID never changes and the SEQUENCE follows the feed's
rule (0 at the start, +1 per reschedule, +1 on cancellation), whether the events
come one by one or in one consumer batch, and a redelivered event changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from icalendar import Calendar

from services.common.consumer import Batch
from services.contracts import EventEnvelope
from services.notifications.adapters.tables import reminder_deadlines
from services.notifications.bootstrap import NotificationsContainer, consumer_spec
from tests.support.notifications import Interview, SmtpSink, inbox_of

pytestmark = pytest.mark.integration

Make = Callable[..., NotificationsContainer]
FIRST = datetime(2026, 12, 8, 14, 0, tzinfo=UTC)
SECOND = datetime(2026, 12, 9, 9, 30, tzinfo=UTC)
THIRD = datetime(2026, 12, 10, 16, 0, tzinfo=UTC)


@pytest.fixture
def mailer(make_container: Make, smtp: SmtpSink) -> NotificationsContainer:
    return make_container(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        email_domain="example.test",
        smtp_sender="hiring@example.test",
    )


def consume(container: NotificationsContainer, *batches: list[EventEnvelope]) -> None:
    """What the runner does with the real consumer spec: each batch in one transaction."""
    spec = consumer_spec(container)
    for batch in batches:
        with container.engine().begin() as conn:
            spec.apply(conn, Batch(batch))


def at(event: EventEnvelope, when: datetime) -> EventEnvelope:
    return event.model_copy(update={"occurred_at": when})


def life(interview: Interview) -> list[EventEnvelope]:
    """Start, reschedule (by the freelancer), reschedule (by the client), cancel."""
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    return [
        at(
            interview.event(
                "interview.started",
                "client",
                {"scheduled_at": FIRST.isoformat(), "duration_minutes": 45},
            ),
            t0,
        ),
        at(
            interview.event(
                "interview.rescheduled",
                "freelancer",
                {
                    "scheduled_at": SECOND.isoformat(),
                    "duration_minutes": 60,
                    "previous_scheduled_at": FIRST.isoformat(),
                    "reason": "a clash",
                },
            ),
            t0 + timedelta(hours=1),
        ),
        at(
            interview.event(
                "interview.rescheduled",
                "client",
                {
                    "scheduled_at": THIRD.isoformat(),
                    "duration_minutes": 30,
                    "previous_scheduled_at": SECOND.isoformat(),
                },
            ),
            t0 + timedelta(hours=2),
        ),
        at(
            interview.event(
                "interview.cancelled",
                "freelancer",
                {"reason": "found another job", "cancelled_by": "freelancer"},
            ),
            t0 + timedelta(hours=3),
        ),
    ]


def send_all(container: NotificationsContainer, smtp: SmtpSink) -> list[EmailMessage]:
    """Drains the outbox; the e-mails sent in this round."""
    before = len(smtp.messages)
    container.delivery_worker().run_until_idle()
    return smtp.parsed()[before:]  # type: ignore[no-any-return]


def invitation(mail: EmailMessage) -> tuple[Any, Calendar]:
    """The mail's one calendar attachment: its MIME part and the parsed calendar."""
    (part,) = [p for p in mail.iter_attachments() if p.get_content_type() == "text/calendar"]
    return part, Calendar.from_ical(part.get_content())


def check(
    mail: EmailMessage,
    interview: Interview,
    *,
    sequence: int,
    start: datetime,
    minutes: int,
    stamp: datetime,
    cancelled: bool,
) -> None:
    method = "CANCEL" if cancelled else "REQUEST"
    part, calendar = invitation(mail)
    assert part.get_filename() == "interview.ics"
    assert part.get_content_disposition() == "attachment"
    assert part.get_param("method") == method
    assert part.get_param("charset") == "utf-8"
    assert str(calendar["METHOD"]) == method
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == f"{interview.id}@interviews"
    assert int(event["SEQUENCE"]) == sequence
    assert event.decoded("DTSTART") == start
    assert event.decoded("DTEND") == start + timedelta(minutes=minutes)
    assert event.decoded("DTSTAMP") == stamp
    assert str(event["STATUS"]) == ("CANCELLED" if cancelled else "CONFIRMED")
    assert str(event["SUMMARY"]) == f"Interview for job {interview.job}"
    assert str(event["ORGANIZER"]) == f"mailto:{interview.client}@example.test"
    assert str(event["ATTENDEE"]) == f"mailto:{interview.freelancer}@example.test"
    # The text stays readable beside the attachment.
    assert mail.get_body(("plain",)).get_content().strip()  # type: ignore[union-attr]


def test_start_reschedule_reschedule_cancel_update_one_calendar_event(
    mailer: NotificationsContainer, smtp: SmtpSink
) -> None:
    interview = Interview()
    started, moved, moved_again, cancelled = life(interview)

    consume(mailer, [started])
    mails = send_all(mailer, smtp)
    assert sorted(m["To"] for m in mails) == ["c-1@example.test", "f-1@example.test"]
    for mail in mails:
        check(mail, interview, sequence=0, start=FIRST, minutes=45,
              stamp=started.occurred_at, cancelled=False)  # fmt: skip

    consume(mailer, [moved])
    (mail,) = send_all(mailer, smtp)  # the other party: the client
    assert mail["To"] == "c-1@example.test"
    check(mail, interview, sequence=1, start=SECOND, minutes=60,
          stamp=moved.occurred_at, cancelled=False)  # fmt: skip

    consume(mailer, [moved_again])
    (mail,) = send_all(mailer, smtp)
    assert mail["To"] == "f-1@example.test"
    check(mail, interview, sequence=2, start=THIRD, minutes=30,
          stamp=moved_again.occurred_at, cancelled=False)  # fmt: skip

    consume(mailer, [cancelled])
    (mail,) = send_all(mailer, smtp)
    assert mail["To"] == "c-1@example.test"
    check(mail, interview, sequence=3, start=THIRD, minutes=30,
          stamp=cancelled.occurred_at, cancelled=True)  # fmt: skip

    # The inbox and the webhooks read the same calendar facts in the details.
    (entry,) = [n for n in inbox_of(mailer, "c-1") if n["type"] == "interview.cancelled"]
    assert entry["details"]["calendar"] == {
        "uid": f"{interview.id}@interviews",
        "sequence": 3,
        "method": "CANCEL",
        "status": "CANCELLED",
        "scheduled_at": THIRD.isoformat(),
        "duration_minutes": 30,
        "stamp": cancelled.occurred_at.isoformat(),
    }
    assert meeting_sequence(mailer, interview) == 3


def test_one_consumer_batch_gives_the_same_sequences_as_one_event_at_a_time(
    mailer: NotificationsContainer, smtp: SmtpSink
) -> None:
    interview = Interview()
    events = life(interview)
    consume(mailer, events)
    sequences = {
        (m["To"], str(m["Subject"])): int(invitation(m)[1].walk("VEVENT")[0]["SEQUENCE"])
        for m in send_all(mailer, smtp)
    }
    assert sequences == {
        ("c-1@example.test", "Interview started"): 0,
        ("f-1@example.test", "Interview started"): 0,
        ("c-1@example.test", "Interview rescheduled"): 1,
        ("f-1@example.test", "Interview rescheduled"): 2,
        ("c-1@example.test", "Interview cancelled"): 3,
    }


def test_a_redelivered_reschedule_sends_nothing_and_keeps_the_sequence(
    mailer: NotificationsContainer, smtp: SmtpSink
) -> None:
    interview = Interview()
    started, moved, moved_again, cancelled = life(interview)
    consume(mailer, [started], [moved], [moved_again])
    send_all(mailer, smtp)
    consume(mailer, [moved], [started, moved])  # again, as after a consumer crash
    assert send_all(mailer, smtp) == []
    assert meeting_sequence(mailer, interview) == 2
    consume(mailer, [cancelled])
    (mail,) = send_all(mailer, smtp)
    assert int(invitation(mail)[1].walk("VEVENT")[0]["SEQUENCE"]) == 3


def test_a_meeting_first_given_a_time_by_a_reschedule_counts_it_as_the_feed_does(
    mailer: NotificationsContainer, smtp: SmtpSink
) -> None:
    interview = Interview()
    consume(mailer, [interview.event("interview.started", "client", {})])
    assert all(not list(m.iter_attachments()) for m in send_all(mailer, smtp)), (
        "no time, no calendar event"
    )
    consume(
        mailer,
        [
            interview.event(
                "interview.rescheduled",
                "freelancer",
                {"scheduled_at": FIRST.isoformat(), "duration_minutes": 30},
            )
        ],
    )
    (mail,) = send_all(mailer, smtp)
    _, calendar = invitation(mail)
    (event,) = calendar.walk("VEVENT")
    assert int(event["SEQUENCE"]) == 1  # the feed: one reschedule since the start
    assert event.decoded("DTSTART") == FIRST


@pytest.mark.parametrize("started", [False, True], ids=["never-started", "started-without-time"])
def test_cancelling_an_interview_that_never_had_a_meeting_attaches_no_calendar(
    mailer: NotificationsContainer, smtp: SmtpSink, started: bool
) -> None:
    interview = Interview()
    events = [interview.event("interview.accepted", "freelancer")]
    if started:
        events.append(interview.event("interview.started", "freelancer", {}))
    events.append(
        interview.event(
            "interview.cancelled", "client", {"reason": "budget cut", "cancelled_by": "client"}
        )
    )
    consume(mailer, events)
    mails = [m for m in send_all(mailer, smtp) if m["Subject"] == "Interview cancelled"]
    assert [m["To"] for m in mails] == ["f-1@example.test"]
    assert list(mails[0].iter_attachments()) == []
    assert "Reason: budget cut." in mails[0].get_content()
    (entry,) = [n for n in inbox_of(mailer, "f-1") if n["type"] == "interview.cancelled"]
    assert "calendar" not in entry["details"]


def meeting_sequence(container: NotificationsContainer, interview: Interview) -> Any:
    with container.engine().connect() as conn:
        return conn.execute(
            sa.select(reminder_deadlines.c.calendar_sequence).where(
                reminder_deadlines.c.interview_id == str(interview.id),
                reminder_deadlines.c.what == "meeting",
            )
        ).scalar_one()
