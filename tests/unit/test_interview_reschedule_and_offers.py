"""The second round of DESIGN's table: offers return the interview to the state
they were made from, the client withdraws an offer, either party reschedules,
meetings have a duration, interviews stuck in progress without a start can be
started, and events of the old shapes still read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.interviews.domain import (
    AlreadyScheduledError,
    Interview,
    InvalidCommandError,
    NotAllowedError,
    TransitionNotAllowedError,
)
from services.interviews.scheduler import change_for
from tests.support.interview_domain import (
    CLIENT,
    FREELANCER,
    SOON,
    T0,
    TERMS,
    ctx,
    extend,
    first_break,
    interview_in,
    invite,
)

MEETING = T0 + timedelta(days=3)
MOVED = T0 + timedelta(days=4, hours=2)

# ------------------------------------------------------- offers and their return

# How the offer ends -> (the command, the event it records)
OFFER_ENDINGS: dict[str, tuple[Callable[[Interview], None], type[Interview.Event]]] = {
    "declined": (lambda i: i.decline_offer(ctx(FREELANCER), "too low"), Interview.OfferDeclined),
    "withdrawn": (lambda i: i.withdraw_offer(ctx(CLIENT), "budget cut"), Interview.OfferWithdrawn),
}


@pytest.mark.parametrize("ending", OFFER_ENDINGS)
@pytest.mark.parametrize("made_from", ["accepted", "in_progress"])
def test_an_ended_offer_returns_the_interview_to_the_state_it_was_made_from(
    made_from: str, ending: str
) -> None:
    interview = interview_in(made_from)
    extend(interview)
    assert interview.status == "offer_extended"
    end, event_class = OFFER_ENDINGS[ending]

    end(interview)

    events = interview.collect_events()
    assert [type(e) for e in events] == [Interview.OfferExtended, event_class]
    assert events[-1].status == made_from
    assert interview.status == made_from
    assert interview.offer is None
    assert interview.offer_expires_at is None
    assert interview.open_deadline is None


def test_an_offer_declined_before_the_start_leaves_the_interview_ready_to_start() -> None:
    interview = interview_in("accepted")
    extend(interview)
    interview.decline_offer(ctx(FREELANCER), "not yet")

    interview.start(ctx(CLIENT), scheduled_at=MEETING)

    assert interview.status == "in_progress"
    assert interview.started_at == SOON
    assert interview.scheduled_at == MEETING


def test_a_withdrawal_records_the_reason_and_the_client() -> None:
    interview = interview_in("offer_extended")

    interview.withdraw_offer(ctx(CLIENT), "position re-scoped")

    [event] = interview.collect_events()
    assert isinstance(event, Interview.OfferWithdrawn)
    assert event.data() == {"reason": "position re-scoped", "status": "in_progress"}
    assert (event.actor_id, event.actor_role) == (CLIENT.id, "client")


ANSWERS = {
    "accept_offer": (lambda i: i.accept_offer(ctx(FREELANCER)), "accept an offer on"),
    "decline_offer": (lambda i: i.decline_offer(ctx(FREELANCER)), "decline an offer on"),
}


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("made_from", ["accepted", "in_progress"])
def test_answering_a_withdrawn_offer_is_refused_naming_the_state(
    made_from: str, answer: str
) -> None:
    interview = interview_in(made_from)
    extend(interview)
    interview.withdraw_offer(ctx(CLIENT))
    interview.collect_events()
    run, action = ANSWERS[answer]

    with pytest.raises(TransitionNotAllowedError) as refused:
        run(interview)

    assert refused.value.code == "transition_not_allowed"
    assert refused.value.state == made_from
    assert refused.value.action == action
    assert made_from.replace("_", " ") in refused.value.detail
    assert "withdrew the offer" in refused.value.detail
    assert interview.collect_events() == []
    assert interview.status == made_from


def test_answering_a_withdrawn_offer_of_a_cancelled_interview_names_only_the_state() -> None:
    interview = interview_in("offer_extended")
    interview.withdraw_offer(ctx(CLIENT))
    interview.cancel(ctx(FREELANCER), "found another job")

    with pytest.raises(TransitionNotAllowedError) as refused:
        interview.accept_offer(ctx(FREELANCER))

    assert refused.value.detail == "cannot accept an offer on an interview that is cancelled"


def test_a_new_offer_after_a_withdrawal_can_be_accepted() -> None:
    interview = interview_in("offer_extended")
    interview.withdraw_offer(ctx(CLIENT))
    extend(interview)

    interview.accept_offer(ctx(FREELANCER))

    assert interview.status == "hired"
    assert interview.offers_extended == 2


def test_withdrawing_twice_is_refused() -> None:
    interview = interview_in("offer_extended")
    interview.withdraw_offer(ctx(CLIENT))

    with pytest.raises(TransitionNotAllowedError) as refused:
        interview.withdraw_offer(ctx(CLIENT))

    assert refused.value.state == "in_progress"


def test_an_offer_from_a_snapshot_older_than_the_remembered_state_returns_by_its_start() -> None:
    """A snapshot taken before the aggregate kept ``status_before_offer`` lacks it:
    an offer made before the start was made from ``accepted``."""
    for made_from in ("accepted", "in_progress"):
        interview = interview_in(made_from)
        extend(interview)
        del interview.__dict__["status_before_offer"]  # as restored from such a snapshot

        interview.decline_offer(ctx(FREELANCER))

        assert interview.status == made_from


# ------------------------------------------------- stuck in progress (old histories)


def stuck_in_progress() -> Interview:
    """accepted -> offer -> declined as recorded before declines returned to the
    state before the offer: in progress, never started."""
    interview = interview_in("accepted")
    extend(interview)
    interview._record(ctx(FREELANCER), Interview.OfferDeclined, reason=None, status="in_progress")
    interview.collect_events()
    assert (interview.status, interview.started_at) == ("in_progress", None)
    return interview


def test_an_interview_stuck_in_progress_without_a_start_can_be_started() -> None:
    interview = stuck_in_progress()

    interview.start(ctx(FREELANCER), scheduled_at=MEETING, duration_minutes=60)

    [event] = interview.collect_events()
    assert isinstance(event, Interview.InterviewStarted)
    assert (interview.status, interview.started_at) == ("in_progress", SOON)
    assert (interview.scheduled_at, interview.duration_minutes) == (MEETING, 60)


def test_a_started_interview_cannot_be_started_again() -> None:
    interview = stuck_in_progress()
    interview.start(ctx(CLIENT))

    with pytest.raises(TransitionNotAllowedError) as refused:
        interview.start(ctx(CLIENT))

    assert refused.value.state == "in_progress"


# ----------------------------------------------------------------- durations


# command -> (the state it runs in, how it runs with a duration)
WITH_DURATION: dict[str, tuple[str, Callable[[Interview, int], None]]] = {
    "start": (
        "accepted",
        lambda i, m: i.start(ctx(CLIENT), scheduled_at=MEETING, duration_minutes=m),
    ),
    "reschedule": ("in_progress", lambda i, m: i.reschedule(ctx(CLIENT), MOVED, m)),
}


@pytest.mark.parametrize("command", WITH_DURATION)
@pytest.mark.parametrize(
    ("minutes", "allowed"),
    [(14, False), (15, True), (30, True), (240, True), (241, False), (0, False), (-30, False)],
)
def test_start_and_reschedule_take_a_duration_from_15_to_240_minutes(
    command: str, minutes: int, allowed: bool
) -> None:
    state, run = WITH_DURATION[command]
    interview = interview_in(state)
    version = interview.version

    if not allowed:
        with pytest.raises(InvalidCommandError, match="15 to 240"):
            run(interview, minutes)
        assert (interview.version, interview.collect_events()) == (version, [])
        return
    run(interview, minutes)

    [event] = interview.collect_events()
    assert event.duration_minutes == minutes
    assert interview.duration_minutes == minutes


def test_a_start_without_duration_means_30_minutes() -> None:
    interview = interview_in("accepted")

    interview.start(ctx(CLIENT), scheduled_at=MEETING)

    [event] = interview.collect_events()
    assert event.data() == {"scheduled_at": MEETING, "duration_minutes": 30}
    assert interview.meeting_minutes == 30


def test_the_meeting_has_no_length_before_the_start() -> None:
    assert interview_in("accepted").meeting_minutes is None


# ---------------------------------------------------------------- reschedule


def started(at: datetime | None = MEETING, minutes: int = 45) -> Interview:
    interview = interview_in("accepted")
    interview.start(ctx(CLIENT), scheduled_at=at, duration_minutes=minutes)
    interview.collect_events()
    return interview


@pytest.mark.parametrize("who", [CLIENT, FREELANCER], ids=lambda a: a.role)
def test_a_reschedule_records_the_new_and_the_previous_time(who: Any) -> None:
    interview = started()

    interview.reschedule(ctx(who), MOVED, 60, "a clash")

    [event] = interview.collect_events()
    assert isinstance(event, Interview.Rescheduled)
    assert event.data() == {
        "scheduled_at": MOVED,
        "duration_minutes": 60,
        "previous_scheduled_at": MEETING,
        "reason": "a clash",
    }
    assert (event.actor_id, event.actor_role) == (who.id, who.role)
    assert (interview.status, interview.scheduled_at, interview.duration_minutes) == (
        "in_progress",
        MOVED,
        60,
    )


def test_a_reschedule_without_duration_keeps_the_meetings_length() -> None:
    interview = started(minutes=90)

    interview.reschedule(ctx(FREELANCER), MOVED)

    [event] = interview.collect_events()
    assert event.duration_minutes == 90


def test_a_first_time_set_by_reschedule_has_no_previous_time() -> None:
    interview = started(at=None)

    interview.reschedule(ctx(CLIENT), MOVED)

    [event] = interview.collect_events()
    assert event.previous_scheduled_at is None
    assert interview.scheduled_at == MOVED


def test_a_reschedule_while_an_offer_is_open_keeps_the_offer_and_its_deadline() -> None:
    interview = interview_in("offer_extended")
    deadline = interview.offer_expires_at

    interview.reschedule(ctx(CLIENT), MOVED)

    assert interview.status == "offer_extended"
    assert interview.offer == TERMS
    assert interview.open_deadline == ("offer", deadline)
    [event] = interview.collect_events()
    assert change_for(event) is None, "the scheduler must not forget the offer's deadline"


def test_a_reschedule_to_the_same_time_and_length_is_refused() -> None:
    interview = started(minutes=45)

    with pytest.raises(AlreadyScheduledError, match="already scheduled"):
        interview.reschedule(ctx(CLIENT), MEETING, 45)

    assert interview.collect_events() == []


def test_an_interview_never_started_cannot_be_rescheduled() -> None:
    for interview in (stuck_in_progress(), interview_in("accepted")):
        if interview.status == "accepted":
            extend(interview)  # an offer made before the start
        state = interview.status

        with pytest.raises(TransitionNotAllowedError, match="never started") as refused:
            interview.reschedule(ctx(CLIENT), MOVED)

        assert refused.value.state == state


@pytest.mark.parametrize("who", [CLIENT, FREELANCER], ids=lambda a: a.role)
def test_an_impostor_cannot_reschedule(who: Any) -> None:
    interview = started()
    impostor = type(who)(who.id, "freelancer" if who.role == "client" else "client")

    with pytest.raises(NotAllowedError):
        interview.reschedule(ctx(impostor), MOVED)


def test_the_schedule_sequence_counts_reschedules_and_the_cancellation() -> None:
    interview = started()
    assert interview.schedule_sequence == 0

    interview.reschedule(ctx(CLIENT), MOVED)
    interview.reschedule(ctx(FREELANCER), MOVED + timedelta(hours=1))
    assert interview.schedule_sequence == 2
    assert interview.schedule_changed_at == SOON

    interview.cancel(ctx(CLIENT), "hired someone else")
    assert interview.schedule_sequence == 3


# -------------------------------------------------------- old shapes, the chain


def test_an_interview_started_event_of_version_1_reads_as_30_minutes() -> None:
    state: dict[str, Any] = {"scheduled_at": None}

    Interview.InterviewStarted.upcast_v1_v2(state)

    assert state == {"scheduled_at": None, "duration_minutes": 30}
    assert Interview.InterviewStarted.class_version == 2


def test_an_offer_declined_event_of_version_1_returned_to_in_progress() -> None:
    state: dict[str, Any] = {"reason": "too low"}

    Interview.OfferDeclined.upcast_v1_v2(state)

    assert state == {"reason": "too low", "status": "in_progress"}
    assert Interview.OfferDeclined.class_version == 2


def test_the_new_events_ride_the_hash_chain() -> None:
    interview = invite()
    interview.accept(ctx(FREELANCER))
    extend(interview)
    interview.withdraw_offer(ctx(CLIENT), "rethinking")
    interview.start(ctx(FREELANCER), scheduled_at=MEETING, duration_minutes=20)
    interview.reschedule(ctx(CLIENT), MOVED, 25, "moved")
    extend(interview)
    interview.decline_offer(ctx(FREELANCER))
    events = interview.collect_events()
    assert first_break(events) is None

    forged = events[5]
    object.__setattr__(forged, "previous_scheduled_at", None)

    assert first_break(events) == (6, "hash does not match the event's content")
