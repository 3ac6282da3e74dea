"""The interview's calendar object (services/common/calendar.py), parsed back with
the icalendar library and checked field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from icalendar import Calendar

from services.common.calendar import calendar_address, interview_calendar, interview_uid

IID = UUID("8c4c0d8e-7d1a-4e33-9d55-2f0f4b1e0a11")
BERLIN_WINTER = timezone(timedelta(hours=1))
START = datetime(2027, 1, 15, 10, 30, tzinfo=BERLIN_WINTER)  # 09:30 UTC
STAMP = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def build(**overrides: Any) -> bytes:
    kwargs: dict[str, Any] = dict(
        interview_id=IID,
        summary="Interview for job job-7",
        description="Interview for job job-7, between client-1 and freelancer-1.",
        start=START,
        duration_minutes=45,
        organizer_id="client-1",
        attendee_id="freelancer-1",
        sequence=0,
        stamp=STAMP,
    )
    kwargs.update(overrides)
    return interview_calendar(**kwargs)


def parse(raw: bytes) -> tuple[Calendar, Any]:
    calendar = Calendar.from_ical(raw)
    events = calendar.walk("VEVENT")
    assert len(events) == 1, "one VEVENT"
    return calendar, events[0]


def test_a_standing_meeting_is_a_request_with_every_field_set() -> None:
    calendar, event = parse(build())

    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["PRODID"]) == "-//Interview Platform//Interviews//EN"
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == f"{IID}@interviews" == interview_uid(IID)
    assert int(event["SEQUENCE"]) == 0
    assert event.decoded("DTSTART") == datetime(2027, 1, 15, 9, 30, tzinfo=UTC)
    assert event.decoded("DTEND") == datetime(2027, 1, 15, 10, 15, tzinfo=UTC)
    assert event.decoded("DTSTART").utcoffset() == timedelta(0), "written in UTC"
    assert event.decoded("DTSTAMP") == STAMP
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["SUMMARY"]) == "Interview for job job-7"
    assert str(event["DESCRIPTION"]) == (
        "Interview for job job-7, between client-1 and freelancer-1."
    )
    assert str(event["ORGANIZER"]) == "urn:x-interviews:user:client-1"
    assert event["ORGANIZER"].params["CN"] == "client-1"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "urn:x-interviews:user:freelancer-1"
    assert (attendee.params["CN"], attendee.params["ROLE"], attendee.params["RSVP"]) == (
        "freelancer-1",
        "REQ-PARTICIPANT",
        "TRUE",
    )
    assert b"\r\n" in build(), "lines end in CRLF (RFC 5545)"


def test_a_reschedule_keeps_the_uid_and_raises_the_sequence() -> None:
    _, before = parse(build())
    later = START + timedelta(days=1)

    _, after = parse(build(start=later, duration_minutes=60, sequence=1))

    assert str(after["UID"]) == str(before["UID"])
    assert int(after["SEQUENCE"]) > int(before["SEQUENCE"])
    assert after.decoded("DTSTART") == later.astimezone(UTC)
    assert after.decoded("DTEND") - after.decoded("DTSTART") == timedelta(minutes=60)


def test_a_cancelled_meeting_is_a_cancel_with_status_cancelled() -> None:
    calendar, event = parse(build(sequence=2, cancelled=True))

    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) == 2
    assert str(event["UID"]) == interview_uid(IID)
    assert "RSVP" not in event["ATTENDEE"].params, "nobody is asked to reply to a cancellation"


def test_a_published_calendar_names_no_attendee() -> None:
    calendar, event = parse(build(method="PUBLISH"))

    assert str(calendar["METHOD"]) == "PUBLISH"
    assert "ATTENDEE" not in event
    assert "ORGANIZER" in event


def test_with_an_email_domain_the_parties_are_mailto_addresses() -> None:
    _, event = parse(build(email_domain="example.org"))

    assert str(event["ORGANIZER"]) == "mailto:client-1@example.org"
    assert str(event["ATTENDEE"]) == "mailto:freelancer-1@example.org"
    assert calendar_address("x") == "urn:x-interviews:user:x"


def test_the_same_interview_gives_the_same_bytes() -> None:
    assert build() == build()


def test_text_is_escaped_by_the_library_not_templated() -> None:
    tricky = "Line one\nSUMMARY:forged; with, commas"

    _, event = parse(build(description=tricky))

    assert str(event["DESCRIPTION"]) == tricky
    assert str(event["SUMMARY"]) == "Interview for job job-7"


@pytest.mark.parametrize(
    "overrides",
    [
        {"start": datetime(2027, 1, 15, 10, 30)},
        {"stamp": datetime(2026, 12, 1, 8, 0)},
        {"duration_minutes": 0},
        {"sequence": -1},
    ],
    ids=["naive start", "naive stamp", "no duration", "negative sequence"],
)
def test_impossible_input_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build(**overrides)
