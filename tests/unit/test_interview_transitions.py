"""The Interview aggregate against DESIGN's table: every (state, command) pair,
who may do what, deadlines, expiry, the hash chain, and the Job's rules."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from services.interviews.domain import (
    ALL_STATES,
    FINAL_STATES,
    SYSTEM,
    Actor,
    AlreadyHiredError,
    DeadlinePassedError,
    DuplicateOpenInterviewError,
    ExclusiveWindowError,
    Interview,
    InvalidCommandError,
    Job,
    JobClosedError,
    JobNotFoundError,
    JobOwnerConflictError,
    NotAllowedError,
    NotYetDueError,
    OfferTerms,
    TransitionNotAllowedError,
)
from services.interviews.domain.hashing import chain_hash
from tests.support.interview_domain import (
    ADMIN,
    AUDITOR,
    CLIENT,
    FREELANCER,
    INVITATION_EXPIRES,
    LATER,
    OFFER_EXPIRES,
    OTHER_CLIENT,
    OTHER_FREELANCER,
    SOON,
    T0,
    TERMS,
    ctx,
    extend,
    first_break,
    interview_in,
    invite,
)

# DESIGN's table, written out independently of the domain's constants.
DESIGN_STATES = {
    "invited",
    "accepted",
    "declined",
    "in_progress",
    "offer_extended",
    "hired",
    "cancelled",
    "expired",
}
DESIGN_FINAL = {"declined", "hired", "cancelled", "expired"}
OPEN_STATES = sorted(DESIGN_STATES - DESIGN_FINAL)


# command name -> (how to run it, the event it records, the words its refusal's action uses)
COMMANDS: dict[str, tuple[Callable[[Interview], None], type[Interview.Event], str]] = {
    "accept": (lambda i: i.accept(ctx(FREELANCER)), Interview.Accepted, "accept"),
    "decline": (lambda i: i.decline(ctx(FREELANCER), "no time"), Interview.Declined, "decline"),
    "start": (
        lambda i: i.start(ctx(CLIENT), scheduled_at=T0 + timedelta(hours=3)),
        Interview.InterviewStarted,
        "start",
    ),
    "extend_offer": (extend, Interview.OfferExtended, "extend offer"),
    "accept_offer": (
        lambda i: i.accept_offer(ctx(FREELANCER)),
        Interview.OfferAccepted,
        "accept offer",
    ),
    "decline_offer": (
        lambda i: i.decline_offer(ctx(FREELANCER), "too low"),
        Interview.OfferDeclined,
        "decline offer",
    ),
    "cancel": (
        lambda i: i.cancel(ctx(FREELANCER), "found another job"),
        Interview.Cancelled,
        "cancel",
    ),
    "expire": (lambda i: i.expire(ctx(SYSTEM, LATER)), Interview.Expired, "expire"),
    "reschedule": (
        lambda i: i.reschedule(ctx(FREELANCER), T0 + timedelta(days=2), 45, "clash"),
        Interview.Rescheduled,
        "reschedule",
    ),
    "withdraw_offer": (
        lambda i: i.withdraw_offer(ctx(CLIENT), "budget moved"),
        Interview.OfferWithdrawn,
        "withdraw offer",
    ),
}

ALLOWED: dict[tuple[str, str], str] = {
    ("invited", "accept"): "accepted",
    ("invited", "decline"): "declined",
    ("accepted", "start"): "in_progress",
    ("accepted", "extend_offer"): "offer_extended",
    ("in_progress", "extend_offer"): "offer_extended",
    ("offer_extended", "accept_offer"): "hired",
    ("offer_extended", "decline_offer"): "in_progress",
    **{(state, "cancel"): "cancelled" for state in OPEN_STATES},
    ("invited", "expire"): "expired",
    ("offer_extended", "expire"): "expired",
    ("in_progress", "reschedule"): "in_progress",
    ("offer_extended", "reschedule"): "offer_extended",
    # PATHS makes the offer after the start: withdrawing returns to in_progress.
    ("offer_extended", "withdraw_offer"): "in_progress",
}

PAIRS = list(itertools.product(sorted(DESIGN_STATES), COMMANDS))


def test_the_domain_knows_exactly_designs_states() -> None:
    assert set(ALL_STATES) == DESIGN_STATES
    assert set(FINAL_STATES) == DESIGN_FINAL


@pytest.mark.parametrize(
    ("state", "command"),
    [p for p in PAIRS if p in ALLOWED],
    ids=[f"{s}-{c}" for s, c in PAIRS if (s, c) in ALLOWED],
)
def test_allowed_transition_records_its_event(state: str, command: str) -> None:
    interview = interview_in(state)
    version = interview.version
    run, event_class, _ = COMMANDS[command]

    run(interview)

    events = interview.collect_events()
    assert [type(e) for e in events] == [event_class]
    assert interview.status == ALLOWED[(state, command)]
    assert interview.version == version + 1
    assert events[0].originator_version == version + 1
    assert events[0].correlation_id == "corr-1"
    assert events[0].causation_id == "req-1"


@pytest.mark.parametrize(
    ("state", "command"),
    [p for p in PAIRS if p not in ALLOWED],
    ids=[f"{s}-{c}" for s, c in PAIRS if (s, c) not in ALLOWED],
)
def test_refused_transition_names_state_and_action(state: str, command: str) -> None:
    interview = interview_in(state)
    version = interview.version
    run, _, words = COMMANDS[command]

    with pytest.raises(TransitionNotAllowedError) as refused:
        run(interview)

    error = refused.value
    # An answer that comes after an expiry may say what expired and when.
    expected = (TransitionNotAllowedError, DeadlinePassedError)
    assert type(error) in (expected if state == "expired" else expected[:1])
    assert error.state == state
    assert all(word in error.action.split() for word in words.split()), error.action
    assert f"cannot {error.action}" in error.detail
    assert state.replace("_", " ") in error.detail
    assert interview.collect_events() == []
    assert interview.status == state
    assert interview.version == version


def test_every_pair_of_the_table_is_covered() -> None:
    assert len(PAIRS) == len(DESIGN_STATES) * 10
    assert set(ALLOWED) <= set(PAIRS)


# ------------------------------------------------------------------- events


def test_invitation_records_who_what_and_when() -> None:
    interview = invite()
    [event] = interview.collect_events()

    assert isinstance(event, Interview.Invited)
    assert (event.job_id, event.client_id, event.freelancer_id) == (
        "job-1",
        CLIENT.id,
        FREELANCER.id,
    )
    assert (event.actor_id, event.actor_role) == (CLIENT.id, "client")
    assert event.timestamp == T0
    assert interview.invitation_expires_at == INVITATION_EXPIRES
    assert interview.version == 1


def test_cancel_records_reason_and_the_cancelling_party() -> None:
    interview = interview_in("accepted")

    interview.cancel(ctx(CLIENT), "budget cut")

    [event] = interview.collect_events()
    assert (event.reason, event.cancelled_by) == ("budget cut", "client")
    assert (interview.closed_reason, interview.cancelled_by) == ("budget cut", "client")


def test_offer_terms_are_kept_and_a_declined_offer_can_be_revised() -> None:
    interview = interview_in("offer_extended")
    assert interview.offer == TERMS
    assert interview.offer_expires_at == OFFER_EXPIRES

    interview.decline_offer(ctx(FREELANCER), "too low")
    assert interview.offer is None
    assert interview.status == "in_progress"

    revised = OfferTerms(Decimal("45.50"), "USD", "hourly")
    interview.extend_offer(ctx(CLIENT), revised)
    interview.accept_offer(ctx(FREELANCER))

    assert interview.status == "hired"
    assert interview.offer == revised
    assert interview.offers_extended == 2


def test_start_keeps_the_scheduled_date() -> None:
    interview = interview_in("accepted")
    when = T0 + timedelta(days=3, hours=2)

    interview.start(ctx(FREELANCER), scheduled_at=when)

    assert interview.scheduled_at == when
    [event] = interview.collect_events()
    assert event.scheduled_at == when


# --------------------------------------------------------------------- roles

FREELANCER_ONLY = {
    "accept": ("invited", lambda i, a: i.accept(ctx(a))),
    "decline": ("invited", lambda i, a: i.decline(ctx(a))),
    "accept_offer": ("offer_extended", lambda i, a: i.accept_offer(ctx(a))),
    "decline_offer": ("offer_extended", lambda i, a: i.decline_offer(ctx(a))),
}
CLIENT_ONLY = {
    "extend_offer": ("accepted", lambda i, a: i.extend_offer(ctx(a), TERMS)),
    "withdraw_offer": ("offer_extended", lambda i, a: i.withdraw_offer(ctx(a))),
}
EITHER_PARTY = {
    "start": ("accepted", lambda i, a: i.start(ctx(a))),
    "cancel": ("invited", lambda i, a: i.cancel(ctx(a), "changed my mind")),
    "reschedule": ("in_progress", lambda i, a: i.reschedule(ctx(a), T0 + timedelta(days=1))),
}
# Someone whose id is a party's but who acts in another role is not that party.
IMPOSTOR_CLIENT = Actor(FREELANCER.id, "client")
IMPOSTOR_FREELANCER = Actor(CLIENT.id, "freelancer")
OUTSIDERS = [OTHER_CLIENT, OTHER_FREELANCER, AUDITOR, ADMIN, SYSTEM]


@pytest.mark.parametrize("command", FREELANCER_ONLY)
@pytest.mark.parametrize(
    "actor",
    [CLIENT, IMPOSTOR_FREELANCER, *OUTSIDERS],
    ids=lambda a: f"{a.role}:{a.id}",
)
def test_only_the_invited_freelancer_answers(command: str, actor: Actor) -> None:
    state, run = FREELANCER_ONLY[command]
    interview = interview_in(state)

    with pytest.raises(NotAllowedError):
        run(interview, actor)

    assert interview.collect_events() == []


@pytest.mark.parametrize("command", FREELANCER_ONLY)
def test_the_invited_freelancer_may_answer(command: str) -> None:
    state, run = FREELANCER_ONLY[command]
    interview = interview_in(state)

    run(interview, FREELANCER)

    assert len(interview.collect_events()) == 1


@pytest.mark.parametrize("command", CLIENT_ONLY)
@pytest.mark.parametrize(
    "actor", [FREELANCER, IMPOSTOR_CLIENT, *OUTSIDERS], ids=lambda a: f"{a.role}:{a.id}"
)
def test_only_the_interviews_client_extends_or_withdraws_an_offer(
    command: str, actor: Actor
) -> None:
    state, run = CLIENT_ONLY[command]
    interview = interview_in(state)

    with pytest.raises(NotAllowedError):
        run(interview, actor)

    assert interview.collect_events() == []
    assert interview.status == state


@pytest.mark.parametrize("command", EITHER_PARTY)
@pytest.mark.parametrize("actor", [CLIENT, FREELANCER], ids=["client", "freelancer"])
def test_either_party_starts_cancels_or_reschedules(command: str, actor: Actor) -> None:
    state, run = EITHER_PARTY[command]
    interview = interview_in(state)

    run(interview, actor)

    [event] = interview.collect_events()
    assert (event.actor_id, event.actor_role) == (actor.id, actor.role)


@pytest.mark.parametrize("command", EITHER_PARTY)
@pytest.mark.parametrize(
    "actor",
    [IMPOSTOR_CLIENT, IMPOSTOR_FREELANCER, *OUTSIDERS],
    ids=lambda a: f"{a.role}:{a.id}",
)
def test_nobody_else_starts_cancels_or_reschedules(command: str, actor: Actor) -> None:
    state, run = EITHER_PARTY[command]
    interview = interview_in(state)

    with pytest.raises(NotAllowedError):
        run(interview, actor)


def test_a_stranger_is_refused_before_learning_the_state() -> None:
    interview = interview_in("cancelled")

    with pytest.raises(NotAllowedError):
        interview.accept(ctx(OTHER_FREELANCER))


@pytest.mark.parametrize("actor", [FREELANCER, AUDITOR, ADMIN, SYSTEM], ids=lambda a: a.role)
def test_only_a_client_invites(actor: Actor) -> None:
    with pytest.raises(NotAllowedError):
        Interview.invite(
            ctx(actor), interview_id=uuid4(), job_id="job-1", freelancer_id="freelancer-9"
        )


def test_a_client_cannot_invite_themselves() -> None:
    with pytest.raises(InvalidCommandError):
        Interview.invite(ctx(CLIENT), interview_id=uuid4(), job_id="job-1", freelancer_id=CLIENT.id)


def test_an_invitation_cannot_expire_in_the_past() -> None:
    with pytest.raises(InvalidCommandError):
        invite(expires_at=T0 - timedelta(seconds=1))


@pytest.mark.parametrize("amount", ["0", "-1", "-0.01"])
def test_an_offer_needs_a_positive_amount(amount: str) -> None:
    interview = interview_in("accepted")

    with pytest.raises(InvalidCommandError):
        interview.extend_offer(ctx(CLIENT), OfferTerms(Decimal(amount), "EUR", "fixed"))


def test_an_offer_cannot_expire_in_the_past() -> None:
    interview = interview_in("accepted")

    with pytest.raises(InvalidCommandError):
        interview.extend_offer(ctx(CLIENT), TERMS, expires_at=SOON - timedelta(seconds=1))


# ----------------------------------------------------------------- deadlines

INVITATION_ANSWERS = {
    "accept": lambda i, at: i.accept(ctx(FREELANCER, at)),
    "decline": lambda i, at: i.decline(ctx(FREELANCER, at)),
}
OFFER_ANSWERS = {
    "accept_offer": lambda i, at: i.accept_offer(ctx(FREELANCER, at)),
    "decline_offer": lambda i, at: i.decline_offer(ctx(FREELANCER, at)),
}


@pytest.mark.parametrize("command", INVITATION_ANSWERS)
@pytest.mark.parametrize(
    "at", [INVITATION_EXPIRES, INVITATION_EXPIRES + timedelta(seconds=1), LATER]
)
def test_cannot_answer_an_invitation_after_it_expires(command: str, at: datetime) -> None:
    interview = interview_in("invited")

    with pytest.raises(DeadlinePassedError) as refused:
        INVITATION_ANSWERS[command](interview, at)

    assert refused.value.code == "expired"
    assert refused.value.what == "invitation"
    assert "invitation expired" in refused.value.detail
    assert interview.collect_events() == []


@pytest.mark.parametrize("command", OFFER_ANSWERS)
def test_cannot_answer_an_offer_after_it_expires(command: str) -> None:
    interview = interview_in("offer_extended")

    with pytest.raises(DeadlinePassedError) as refused:
        OFFER_ANSWERS[command](interview, OFFER_EXPIRES)

    assert refused.value.what == "offer"
    assert interview.status == "offer_extended"


@pytest.mark.parametrize("command", OFFER_ANSWERS)
def test_an_offer_can_be_answered_just_before_it_expires(command: str) -> None:
    interview = interview_in("offer_extended")

    OFFER_ANSWERS[command](interview, OFFER_EXPIRES - timedelta(microseconds=1))

    assert len(interview.collect_events()) == 1


def test_an_invitation_without_deadline_can_be_answered_any_time() -> None:
    interview = invite(expires_at=None)

    interview.accept(ctx(FREELANCER, LATER + timedelta(days=365)))

    assert interview.status == "accepted"


# -------------------------------------------------------------------- expiry


def test_an_unanswered_invitation_expires() -> None:
    interview = interview_in("invited")

    interview.expire(ctx(SYSTEM, INVITATION_EXPIRES))

    [event] = interview.collect_events()
    assert isinstance(event, Interview.Expired)
    assert event.what == "invitation"
    assert (event.actor_id, event.actor_role) == ("system", "system")
    assert interview.closed_reason == "invitation expired"


def test_an_unanswered_offer_expires() -> None:
    interview = interview_in("offer_extended")

    interview.expire(ctx(SYSTEM, OFFER_EXPIRES))

    [event] = interview.collect_events()
    assert event.what == "offer"
    assert interview.status == "expired"


@pytest.mark.parametrize("state", ["invited", "offer_extended"])
def test_nothing_expires_before_its_deadline(state: str) -> None:
    interview = interview_in(state)

    with pytest.raises(NotYetDueError):
        interview.expire(ctx(SYSTEM, SOON))

    assert interview.status == state


@pytest.mark.parametrize("actor", [CLIENT, FREELANCER, ADMIN], ids=lambda a: a.role)
def test_only_the_system_expires(actor: Actor) -> None:
    interview = interview_in("invited")

    with pytest.raises(NotAllowedError):
        interview.expire(ctx(actor, LATER))


def test_an_invitation_without_deadline_never_expires() -> None:
    interview = invite(expires_at=None)

    with pytest.raises(TransitionNotAllowedError):
        interview.expire(ctx(SYSTEM, LATER))


def test_a_declined_offer_has_no_deadline_left() -> None:
    interview = interview_in("offer_extended")
    interview.decline_offer(ctx(FREELANCER), "no")

    assert interview.open_deadline is None
    with pytest.raises(TransitionNotAllowedError):
        interview.expire(ctx(SYSTEM, LATER))


def test_cannot_accept_an_expired_invitation() -> None:
    interview = interview_in("expired")

    with pytest.raises(TransitionNotAllowedError) as refused:
        interview.accept(ctx(FREELANCER, LATER))

    assert "expired" in refused.value.detail


# ---------------------------------------------------------------- hash chain


def full_history() -> list[Interview.Event]:
    interview = invite()
    interview.accept(ctx(FREELANCER))
    interview.start(ctx(FREELANCER), scheduled_at=T0 + timedelta(days=1))
    extend(interview)
    interview.decline_offer(ctx(FREELANCER), "too low")
    interview.extend_offer(ctx(CLIENT), OfferTerms(Decimal("2000"), "EUR", "fixed"))
    interview.accept_offer(ctx(FREELANCER))
    events = interview.collect_events()
    assert interview.last_hash == events[-1].hash
    return events


def test_each_event_links_to_the_one_before() -> None:
    events = full_history()

    assert events[0].prev_hash == ""
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert len({e.hash for e in events}) == len(events)
    assert first_break(events) is None


def test_the_chain_survives_reconstruction_from_events() -> None:
    events = full_history()

    rebuilt = None
    for event in events:
        rebuilt = event.mutate(rebuilt)

    assert isinstance(rebuilt, Interview)
    assert rebuilt.last_hash == events[-1].hash
    assert rebuilt.status == "hired"


@pytest.mark.parametrize(
    ("index", "field", "value"),
    [
        (0, "freelancer_id", "freelancer-666"),
        (0, "timestamp", T0 + timedelta(seconds=1)),
        (1, "actor_id", "someone-else"),
        (3, "amount", Decimal("1.00")),
        (4, "reason", "edited"),
        (6, "correlation_id", "forged"),
    ],
)
def test_tampering_with_a_field_is_detected(index: int, field: str, value: object) -> None:
    events = full_history()
    forged = copy.copy(events[index])
    object.__setattr__(forged, field, value)
    events[index] = forged

    assert first_break(events) == (index + 1, "hash does not match the event's content")


def test_deleting_or_swapping_events_is_detected() -> None:
    events = full_history()

    assert first_break(events[:2] + events[3:]) == (
        4,
        "prev_hash does not match the previous event's hash",
    )
    swapped = [events[0], events[2], events[1], *events[3:]]
    assert first_break(swapped) is not None


def test_a_rehashed_forgery_breaks_the_next_link() -> None:
    events = full_history()
    forged = copy.copy(events[2])
    object.__setattr__(forged, "scheduled_at", None)

    object.__setattr__(forged, "hash", chain_hash(forged.prev_hash, forged.chained_fields()))
    events[2] = forged

    assert first_break(events) == (4, "prev_hash does not match the previous event's hash")


# ----------------------------------------------------------------------- Job


def new_job(hours: int | None = None) -> Job:
    job = Job.create("job-1", CLIENT, T0, "Backend engineer", exclusive_hours=hours)
    job.collect_events()
    return job


def test_a_client_creates_a_job_of_their_own() -> None:
    job = Job.create("job-1", CLIENT, T0, "Backend engineer")

    assert (job.client_id, job.title, job.status) == (CLIENT.id, "Backend engineer", "open")
    assert job.id == Job.id_for("job-1")
    assert Job.id_for("job-1") != Job.id_for("job-2")
    job.check_owner(CLIENT)


@pytest.mark.parametrize(
    "actor", [FREELANCER, AUDITOR, ADMIN, Actor("svc", "service")], ids=lambda a: a.role
)
def test_only_a_client_creates_a_job(actor: Actor) -> None:
    with pytest.raises(NotAllowedError):
        Job.create("job-1", actor, T0, "Backend engineer")


@pytest.mark.parametrize("actor", [Actor("svc", "service"), ADMIN], ids=lambda a: a.role)
def test_the_job_service_registers_a_job_for_its_client(actor: Actor) -> None:
    job = Job.register("ext-42", CLIENT.id, actor, T0, "Designer")

    [event] = job.collect_events()
    assert isinstance(event, Job.Registered)
    assert (event.job_id, event.client_id, event.title) == ("ext-42", CLIENT.id, "Designer")
    job.check_owner(CLIENT)
    job.check_registered_to(CLIENT.id)
    with pytest.raises(JobOwnerConflictError):
        job.check_registered_to(OTHER_CLIENT.id)


@pytest.mark.parametrize("actor", [CLIENT, FREELANCER, AUDITOR], ids=lambda a: a.role)
def test_nobody_else_registers_a_job(actor: Actor) -> None:
    with pytest.raises(NotAllowedError):
        Job.register("ext-42", actor.id, actor, T0)


def test_to_another_client_a_job_does_not_exist() -> None:
    job = new_job()

    with pytest.raises(JobNotFoundError):
        job.check_owner(OTHER_CLIENT)
    with pytest.raises(JobNotFoundError):
        job.set_policy(OTHER_CLIENT, T0, 24)
    with pytest.raises(JobNotFoundError):
        job.close(ctx(OTHER_CLIENT), [])
    assert job.collect_events() == []


@pytest.mark.parametrize(
    "actor", [Actor(CLIENT.id, "freelancer"), ADMIN, Actor(CLIENT.id, "service")], ids=str
)
def test_only_the_client_acts_on_a_job(actor: Actor) -> None:
    job = new_job()

    with pytest.raises(NotAllowedError):
        job.check_owner(actor)
    with pytest.raises(NotAllowedError):
        job.set_policy(actor, T0, 24)
    with pytest.raises(NotAllowedError):
        job.close(ctx(actor), [])


@pytest.mark.parametrize("hours", [-1, 24 * 90 + 1])
def test_exclusive_hours_are_bounded(hours: int) -> None:
    with pytest.raises(InvalidCommandError):
        Job.create("job-1", CLIENT, T0, "Backend engineer", exclusive_hours=hours)
    with pytest.raises(InvalidCommandError):
        new_job().set_policy(CLIENT, T0, hours)


def test_setting_the_same_policy_records_nothing() -> None:
    job = new_job(hours=24)

    job.set_policy(CLIENT, T0, 24)
    assert job.collect_events() == []

    job.set_policy(CLIENT, T0, 48)
    [event] = job.collect_events()
    assert isinstance(event, Job.PolicyChanged)
    assert job.exclusive_hours == 48


def test_a_started_interview_opens_the_exclusive_window() -> None:
    job = new_job(hours=24)
    interview_id = uuid4()

    job.open_exclusive_window(interview_id, T0)

    assert job.exclusive_interview == interview_id
    with pytest.raises(ExclusiveWindowError) as refused:
        job.check_can_invite(T0 + timedelta(hours=23, minutes=59))
    assert refused.value.ends_at == T0 + timedelta(hours=24)
    assert refused.value.code == "exclusive_window"
    job.check_can_invite(T0 + timedelta(hours=24))


@pytest.mark.parametrize("hours", [None, 0])
def test_without_a_window_policy_invitations_stay_open(hours: int | None) -> None:
    job = new_job(hours=hours)

    job.open_exclusive_window(uuid4(), T0)

    assert job.collect_events() == []
    job.check_can_invite(T0 + timedelta(minutes=1))


def test_the_job_remembers_each_candidates_last_interview() -> None:
    job = new_job()
    first, second = uuid4(), uuid4()

    job.record_invitation(FREELANCER.id, first, T0)
    assert job.last_interview_with(FREELANCER.id) == first
    job.record_invitation(FREELANCER.id, second, SOON)

    assert job.last_interview_with(FREELANCER.id) == second
    assert job.last_interview_with(OTHER_FREELANCER.id) is None
    assert job.version == 3


# ------------------------------------------------------- jobs that close


def in_state(status: str, freelancer: Actor = FREELANCER) -> Interview:
    """An interview of job-1 walked to ``status`` through the commands."""
    interview = invite(freelancer_id=freelancer.id)
    client, fl = ctx(CLIENT), ctx(freelancer)
    steps: dict[str, list[Callable[[Interview], None]]] = {
        "invited": [],
        "accepted": [lambda i: i.accept(fl)],
        "in_progress": [lambda i: i.accept(fl), lambda i: i.start(client)],
        "offer_extended": [lambda i: i.accept(fl), lambda i: i.extend_offer(client, TERMS)],
        "hired": [
            lambda i: i.accept(fl),
            lambda i: i.extend_offer(client, TERMS),
            lambda i: i.accept_offer(fl),
        ],
        "declined": [lambda i: i.decline(fl)],
    }
    for step in steps[status]:
        step(interview)
    assert interview.status == status
    interview.collect_events()
    return interview


def test_closing_a_job_cancels_every_open_interview_and_closes_it() -> None:
    job = new_job()
    open_ones = [
        in_state(status, Actor(f"f-{status}", "freelancer"))
        for status in ("invited", "accepted", "in_progress", "offer_extended")
    ]
    finished = [
        in_state(status, Actor(f"f-{status}", "freelancer")) for status in ("hired", "declined")
    ]

    cancelled = job.close(ctx(CLIENT, LATER), [*open_ones, *finished], reason="filled")

    assert cancelled == open_ones
    for interview in open_ones:
        [event] = interview.collect_events()
        assert isinstance(event, Interview.Cancelled)
        assert (event.reason, event.cancelled_by, event.job_closed) == (
            "job closed",
            "client",
            True,
        )
        assert (interview.status, interview.closed_reason) == ("cancelled", "job closed")
    for interview in finished:
        assert interview.collect_events() == []
    [closed] = job.collect_events()
    assert isinstance(closed, Job.Closed)
    assert (closed.reason, closed.closed_by) == ("filled", CLIENT.id)
    assert (job.status, job.closed_reason, job.closed_at) == ("closed", "filled", LATER)


def test_closing_a_closed_job_changes_nothing() -> None:
    job = new_job()
    job.close(ctx(CLIENT), [])
    job.collect_events()
    late = in_state("invited")

    assert job.close(ctx(CLIENT), [late]) == []

    assert job.collect_events() == [] and late.collect_events() == []
    assert late.status == "invited"


def test_a_closed_job_takes_no_invitations() -> None:
    job = new_job()
    job.close(ctx(CLIENT), [])

    with pytest.raises(JobClosedError) as refused:
        job.check_can_invite(SOON)
    assert refused.value.code == "job_closed"


def test_a_freelancer_hired_for_the_job_is_not_invited_again() -> None:
    job = new_job()

    with pytest.raises(AlreadyHiredError) as refused:
        job.check_can_invite(SOON, in_state("hired"))
    assert refused.value.code == "already_hired"
    job.check_can_invite(SOON, in_state("declined"))
    with pytest.raises(DuplicateOpenInterviewError):
        job.check_can_invite(SOON, in_state("accepted"))


def test_a_cancellation_is_not_a_job_closing_unless_said() -> None:
    interview = in_state("accepted")

    interview.cancel(ctx(FREELANCER), "found another job")

    [event] = interview.collect_events()
    assert isinstance(event, Interview.Cancelled) and event.job_closed is False


def test_a_cancellation_recorded_before_job_closed_existed_reads_as_not_closed() -> None:
    state = {"reason": "gone", "cancelled_by": "client"}

    Interview.Cancelled.upcast_v2_v3(state)

    assert state["job_closed"] is False
    assert Interview.Cancelled.class_version == 3


def test_a_job_registered_before_titles_existed_reads_with_no_title() -> None:
    state = {"job_id": "job-1", "client_id": CLIENT.id, "exclusive_hours": None}

    Job.Registered.upcast_v1_v2(state)

    assert state["title"] is None
