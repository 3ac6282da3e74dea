"""The rules table: who is told what, for each event (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest

from services.contracts import EventEnvelope
from services.notifications.delivery import BackoffPolicy
from services.notifications.preferences import UnknownTimeZoneError, parse_time_zone
from services.notifications.rules import (
    EVENT_TYPES,
    NOTIFICATION_TYPES,
    RULES,
    Deadline,
    drafts_for_event,
    drafts_for_reminder,
    format_when,
    rules_markdown,
)

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def envelope(
    type_: str, data: dict[str, Any] | None = None, actor: str = "client", **over: Any
) -> EventEnvelope:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "type": type_,
        "schema_version": 2 if type_ == "interview.cancelled" else 1,
        "interview_id": UUID("00000000-0000-0000-0000-0000000000aa"),
        "version": 2,
        "position": 7,
        "occurred_at": AT,
        "actor": {"id": "c-1" if actor == "client" else "f-1", "role": actor},
        "job_id": "job-42",
        "client_id": "c-1",
        "freelancer_id": "f-1",
        "correlation_id": "corr",
        "causation_id": "cause",
        "data": data or {},
    }
    return EventEnvelope.model_validate(fields | over)


def told(event: EventEnvelope) -> dict[str, str]:
    return {d.recipient_id: d.message for d in drafts_for_event(event)}


def test_the_freelancer_is_told_of_an_invitation_with_job_client_and_deadline() -> None:
    result = told(
        envelope(
            "interview.invited",
            {"message": "Let's talk", "expires_at": "2026-12-02T12:00:00Z"},
        )
    )
    assert list(result) == ["f-1"]
    assert result["f-1"] == (
        'Client c-1 invited you to interview for job job-42. Their message: "Let\'s talk"'
        " Please answer by Wednesday 2 December 2026 at 12:00 UTC."
    )


@pytest.mark.parametrize(
    "event_type",
    [
        "interview.accepted",
        "interview.declined",
        "interview.offer_accepted",
        "interview.offer_declined",
    ],
)
def test_the_client_is_told_when_the_freelancer_answers(event_type: str) -> None:
    result = told(envelope(event_type, actor="freelancer"))
    assert list(result) == ["c-1"]
    assert "Freelancer f-1" in result["c-1"] and "job-42" in result["c-1"]


def test_a_decline_carries_its_reason() -> None:
    result = told(envelope("interview.offer_declined", {"reason": "too low"}, actor="freelancer"))
    assert "Reason: too low. You may extend a revised offer." in result["c-1"]


def test_both_are_told_the_date_and_time_when_an_interview_starts() -> None:
    result = told(
        envelope("interview.started", {"scheduled_at": "2026-11-26T15:30:00+01:00"}, "freelancer")
    )
    assert set(result) == {"c-1", "f-1"}
    assert result["c-1"] == (
        "Your interview with freelancer f-1 for job job-42 has started."
        " It is scheduled for Thursday 26 November 2026 at 14:30 UTC. It lasts 30 minutes."
    )
    assert result["f-1"].startswith("Your interview with client c-1 for job job-42")
    assert "Thursday 26 November 2026 at 14:30 UTC" in result["f-1"]


def test_a_start_without_a_date_says_so_and_when_it_started() -> None:
    result = told(envelope("interview.started", {"scheduled_at": None}))
    assert "no date and time was scheduled" in result["f-1"]
    assert format_when(AT) in result["f-1"]


def test_the_freelancer_is_told_the_terms_of_an_offer() -> None:
    data = {
        "amount": "1500",
        "currency": "EUR",
        "rate_type": "fixed",
        "start_date": "2026-12-01",
        "message": None,
        "expires_at": None,
    }
    result = told(envelope("interview.offer_extended", data))
    assert result == {
        "f-1": "Client c-1 offered you job job-42: 1,500.00 EUR fixed price,"
        " starting Tuesday 1 December 2026."
    }
    hourly = told(
        envelope("interview.offer_extended", data | {"rate_type": "hourly", "amount": "45.5"})
    )
    assert "45.50 EUR per hour" in hourly["f-1"]


def test_both_parties_are_told_when_closing_the_job_cancelled_their_interview() -> None:
    data = {"reason": "job closed", "cancelled_by": "client", "job_closed": True}

    result = told(envelope("interview.cancelled", data, "client", schema_version=3))

    assert result == {
        "c-1": "You closed job job-42; your interview with freelancer f-1 is cancelled.",
        "f-1": "Client c-1 closed job job-42; your interview is cancelled.",
    }
    plain = told(envelope("interview.cancelled", data | {"job_closed": False}, "client"))
    assert list(plain) == ["f-1"] and "Reason: job closed" in plain["f-1"]


@pytest.mark.parametrize(("who", "other"), [("client", "f-1"), ("freelancer", "c-1")])
def test_only_the_other_party_is_told_of_a_cancellation(who: str, other: str) -> None:
    event = envelope("interview.cancelled", {"reason": "found someone", "cancelled_by": who}, who)
    result = told(event)
    assert list(result) == [other]
    assert result[other].endswith(
        "cancelled the interview with you for job job-42. Reason: found someone."
    )
    assert result[other].startswith("Client c-1" if who == "client" else "Freelancer f-1")


@pytest.mark.parametrize("what", ["invitation", "offer"])
def test_both_are_told_when_something_expires(what: str) -> None:
    result = told(envelope("interview.expired", {"what": what}, "system"))
    assert set(result) == {"c-1", "f-1"}
    assert all(what in message and "expired" in message for message in result.values())


def test_every_event_type_has_a_rule_and_ids_are_stable_per_event_and_recipient() -> None:
    assert {r.trigger for r in RULES if r.kind == "event"} == set(EVENT_TYPES)
    event = envelope("interview.expired", {"what": "offer"}, "system")
    first, again = drafts_for_event(event), drafts_for_event(event)
    assert [d.id for d in first] == [d.id for d in again]
    assert len({d.id for d in first}) == 2
    other = envelope("interview.expired", {"what": "offer"}, "system")
    assert not {d.id for d in first} & {d.id for d in drafts_for_event(other)}


def test_reminders_go_to_the_party_who_must_answer() -> None:
    deadline = Deadline(
        "offer", uuid4(), "job-42", "c-1", "f-1", datetime(2026, 12, 1, 9, tzinfo=UTC)
    )
    (draft,) = drafts_for_reminder(deadline, AT)
    assert draft.recipient_id == "f-1" and draft.kind == "reminder"
    assert draft.type == "interview.reminder" and "interview.reminder" in NOTIFICATION_TYPES
    assert "Tuesday 1 December 2026 at 09:00 UTC" in draft.message
    assert drafts_for_reminder(deadline, AT)[0].id == draft.id


def test_the_rules_render_as_a_markdown_table() -> None:
    table = rules_markdown().splitlines()
    assert len(table) == 2 + len(RULES)
    assert all(line.startswith("|") for line in table)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = BackoffPolicy(base_seconds=2, factor=2, max_seconds=10, jitter=0.25, max_attempts=5)
    assert [policy.nominal(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    assert policy.delay(3, 0.0) == 8 and policy.delay(3, 1.0) == 6


# ------------------------------------------------------------------ time zones

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def told_in(event: EventEnvelope, **zones: str) -> dict[str, str]:
    by_user = {user.replace("_", "-"): ZoneInfo(name) for user, name in zones.items()}
    return {d.recipient_id: d.message for d in drafts_for_event(event, by_user)}


def test_times_show_in_the_zone_with_its_abbreviation_which_follows_daylight_saving() -> None:
    winter = datetime(2026, 12, 8, 14, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 8, 14, 0, tzinfo=UTC)
    assert format_when(winter, BERLIN) == "Tuesday 8 December 2026 at 15:00 CET"
    assert format_when(summer, BERLIN) == "Wednesday 8 July 2026 at 16:00 CEST"
    assert format_when(winter, NEW_YORK) == "Tuesday 8 December 2026 at 09:00 EST"
    assert format_when(summer, NEW_YORK) == "Wednesday 8 July 2026 at 10:00 EDT"
    # The night the clocks go forward in Berlin (29 March 2026, 02:00 CET -> 03:00 CEST).
    assert format_when(datetime(2026, 3, 29, 0, 59, tzinfo=UTC), BERLIN).endswith("01:59 CET")
    assert format_when(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), BERLIN).endswith("03:00 CEST")
    # The date is the local one: 23:30 UTC is already the next day in Berlin.
    assert format_when(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), BERLIN) == (
        "Friday 1 January 2027 at 00:30 CET"
    )


def test_dates_name_every_weekday_and_month_in_english() -> None:
    monday = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)
    days = [format_when(monday + timedelta(days=k)) for k in range(7)]
    assert [d.split()[0] for d in days] == [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    ]  # fmt: skip
    months = [format_when(datetime(2027, m, 1, tzinfo=UTC)).split()[2] for m in range(1, 13)]
    assert months == [
        "January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December",
    ]  # fmt: skip
    assert format_when(datetime(2026, 12, 1, 9, 5, tzinfo=UTC)) == (
        "Tuesday 1 December 2026 at 09:05 UTC"
    )
    assert format_when(datetime(987, 6, 5, 4, 3, tzinfo=UTC)) == "Tuesday 5 June 987 at 04:03 UTC"


def test_a_zone_without_an_abbreviation_shows_its_utc_offset() -> None:
    at = datetime(2026, 12, 8, 14, 0, tzinfo=UTC)
    assert format_when(at, ZoneInfo("America/Sao_Paulo")).endswith("11:00 UTC-03:00")
    assert format_when(at, ZoneInfo("Asia/Kathmandu")).endswith("19:45 UTC+05:45")
    assert format_when(at) == "Tuesday 8 December 2026 at 14:00 UTC"


def test_each_recipient_reads_the_start_in_their_own_zone() -> None:
    event = envelope(
        "interview.started",
        {"scheduled_at": "2026-12-08T14:00:00Z", "duration_minutes": 45},
        "freelancer",
    )
    result = told_in(event, c_1="Europe/Berlin", f_1="America/New_York")
    assert result["c-1"].endswith(
        "It is scheduled for Tuesday 8 December 2026 at 15:00 CET. It lasts 45 minutes."
    )
    assert "Tuesday 8 December 2026 at 09:00 EST" in result["f-1"]
    (draft,) = [d for d in drafts_for_event(event, {"c-1": BERLIN}) if d.recipient_id == "c-1"]
    assert draft.details["scheduled_at"] == "2026-12-08T14:00:00+00:00"
    assert draft.details["time_zone"] == "Europe/Berlin"
    assert draft.details["duration_minutes"] == 45


def test_a_deadline_is_shown_in_the_freelancers_zone() -> None:
    event = envelope("interview.invited", {"expires_at": "2026-07-01T22:00:00Z"})
    assert told_in(event, f_1="Europe/Berlin")["f-1"].endswith(
        " Please answer by Thursday 2 July 2026 at 00:00 CEST."
    )


def test_the_other_party_is_told_of_a_reschedule_with_the_old_and_the_new_time() -> None:
    data = {
        "scheduled_at": "2026-12-09T16:00:00+00:00",
        "duration_minutes": 60,
        "previous_scheduled_at": "2026-12-08T14:00:00+00:00",
        "reason": "a clash",
    }
    by_client = told_in(envelope("interview.rescheduled", data, "client"), f_1="Europe/Berlin")
    assert by_client == {
        "f-1": "Client c-1 moved your interview for job job-42 from Tuesday 8 December 2026"
        " at 15:00 CET to Wednesday 9 December 2026 at 17:00 CET (60 minutes)."
        " Reason: a clash."
    }
    by_freelancer = told(envelope("interview.rescheduled", data, "freelancer"))
    assert list(by_freelancer) == ["c-1"]
    assert by_freelancer["c-1"].startswith("Freelancer f-1 moved your interview")
    assert "from Tuesday 8 December 2026 at 14:00 UTC to Wednesday" in by_freelancer["c-1"]


def test_the_freelancer_is_told_when_the_client_withdraws_the_offer() -> None:
    event = envelope(
        "interview.offer_withdrawn", {"reason": "budget frozen", "status": "in_progress"}
    )
    (draft,) = drafts_for_event(event)
    assert draft.recipient_id == "f-1" and draft.title == "Offer withdrawn"
    assert draft.message == (
        "Client c-1 withdrew their offer for job job-42. Reason: budget frozen."
        " There is nothing to answer; the interview goes on."
    )
    assert draft.details["status"] == "in_progress"


def test_both_parties_are_told_when_the_client_closes_the_job() -> None:
    event = envelope(
        "interview.cancelled",
        {"reason": "job closed", "cancelled_by": "client", "job_closed": True},
        schema_version=3,
    )
    drafts = {d.recipient_id: d for d in drafts_for_event(event)}
    assert set(drafts) == {"c-1", "f-1"}, "unlike a cancellation, the client is told too"
    assert drafts["f-1"].message == "Client c-1 closed job job-42; your interview is cancelled."
    assert drafts["c-1"].message == (
        "You closed job job-42; your interview with freelancer f-1 is cancelled."
    )
    assert {d.title for d in drafts.values()} == {"Job closed"}
    assert all(d.details["job_closed"] is True for d in drafts.values())
    # A cancellation without the flag (v2, or v3 with false) tells the other party only.
    for data in ({"reason": "x", "cancelled_by": "client"}, {"reason": "x", "job_closed": False}):
        assert list(told(envelope("interview.cancelled", {"cancelled_by": "client"} | data))) == [
            "f-1"
        ]


def test_both_parties_are_reminded_of_a_meeting_in_their_zones() -> None:
    meeting = Deadline(
        "meeting",
        uuid4(),
        "job-42",
        "c-1",
        "f-1",
        datetime(2026, 12, 8, 14, 0, tzinfo=UTC),
        duration_minutes=45,
        version=3,
    )
    drafts = {d.recipient_id: d for d in drafts_for_reminder(meeting, AT, {"c-1": BERLIN})}
    assert drafts["c-1"].message == (
        "Your interview with freelancer f-1 for job job-42 starts on"
        " Tuesday 8 December 2026 at 15:00 CET (45 minutes)."
    )
    assert drafts["f-1"].message.endswith(
        "starts on Tuesday 8 December 2026 at 14:00 UTC (45 minutes)."
    )
    assert {d.type for d in drafts.values()} == {"interview.reminder"}
    rescheduled = Deadline(**{**meeting.__dict__, "version": 4})
    assert drafts["c-1"].id == drafts_for_reminder(meeting, AT)[0].id, "stable per schedule"
    assert drafts["c-1"].id != drafts_for_reminder(rescheduled, AT)[0].id, "new per reschedule"


@pytest.mark.parametrize("name", ["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires"])
def test_iana_names_are_time_zones(name: str) -> None:
    assert str(parse_time_zone(name)) == name


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "europe/berlin", "../../etc/passwd", "localtime", "", "+01:00"]
)
def test_anything_else_is_no_time_zone(name: str) -> None:
    with pytest.raises(UnknownTimeZoneError):
        parse_time_zone(name)


def test_notification_and_delivery_ids_are_the_uuid5_of_their_source() -> None:
    """The ids are derived without building UUID objects, and stay the ids of before:
    a notification recorded again (a replay) keeps its id, its deliveries theirs."""
    from uuid import NAMESPACE_URL, uuid5

    from services.notifications.recorder import delivery_id
    from services.notifications.rules import notification_id

    for source in ("event:00000000-0000-0000-0000-0000000000aa", "reminder:x:offer:é ☃", ""):
        for role in ("client", "freelancer"):
            expected = uuid5(
                uuid5(NAMESPACE_URL, "urn:interviews:notification"), f"{source}:{role}"
            )
            assert notification_id(source, role) == str(expected)
    namespace = uuid5(NAMESPACE_URL, "urn:interviews:notification-delivery")
    assert delivery_id("n-1", "email", "f-1@example.org") == str(
        uuid5(namespace, "n-1:email:f-1@example.org")
    )
