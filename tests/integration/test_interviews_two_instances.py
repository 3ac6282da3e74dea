"""Two application instances on one PostgreSQL event store, as two uvicorn
workers run: each serves commands from its own cache of aggregates without
asking the store first, so each one's cache is stale whenever the other has
written. Every answer must still be the one fresh state gives: no wrong 409,
412 or 422, no lost update, nothing recorded twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from services.interviews.application import (
    CommandResult,
    IdempotencyKeyReusedError,
    InterviewsApplication,
    VersionMismatchError,
)
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import (
    Actor,
    CommandContext,
    JobOwnerConflictError,
    TransitionNotAllowedError,
)
from services.interviews.settings import InterviewsSettings
from tests.conftest import TEST_SECRET, FakeClock
from tests.integration.test_interviews_races import race
from tests.jobs import ensure_job

pytestmark = pytest.mark.integration

CLIENT = Actor("client-1", "client")
FREELANCER = Actor("freelancer-1", "freelancer")
OFFER: dict[str, Any] = {"amount": Decimal("900"), "currency": "EUR", "rate_type": "fixed"}
REVISED_OFFER: dict[str, Any] = {**OFFER, "amount": Decimal("1000")}


@pytest.fixture
def apps(
    postgres_url: str, tmp_path: Any, clock: FakeClock
) -> Iterator[tuple[InterviewsApplication, InterviewsApplication]]:
    """Two instances (two workers' worth) sharing one database."""
    containers = [
        InterviewsContainer(
            InterviewsSettings(
                database_url=postgres_url, data_dir=tmp_path / name, auth_secret=TEST_SECRET
            ),
            clock=clock,
        )
        for name in ("a", "b")
    ]
    try:
        first, second = (c.interviews() for c in containers)
        ensure_job(first, "job-1", CLIENT.id, at=clock())
        yield first, second
    finally:
        for container in containers:
            container.close()


def ctx(actor: Actor, clock: FakeClock, request: str = "req") -> CommandContext:
    return CommandContext(actor=actor, at=clock(), correlation_id=request, causation_id=request)


def invited(app: InterviewsApplication, clock: FakeClock, job_id: str = "job-1") -> UUID:
    """A new invitation, made on ``app`` (so in its cache)."""
    return app.invite(ctx(CLIENT, clock), job_id=job_id, freelancer_id=FREELANCER.id).id


def kinds(app: InterviewsApplication, interview_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.interview_events(interview_id)]


def test_a_command_refused_on_the_stale_cache_is_decided_again_and_goes_through(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    iid = invited(a, clock)  # a's cache: invited
    b.accept(ctx(FREELANCER, clock), iid)

    started = a.start(ctx(CLIENT, clock), iid)  # invited would refuse it; accepted allows it

    assert (started.status, started.version) == ("in_progress", 3)
    assert kinds(b, iid) == ["Invited", "Accepted", "InterviewStarted"]


def test_a_command_the_stale_cache_allows_is_refused_as_fresh_state_refuses_it(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    iid = invited(a, clock)
    b.cancel(ctx(CLIENT, clock), iid, reason="position filled")

    with pytest.raises(TransitionNotAllowedError) as refused:
        a.accept(ctx(FREELANCER, clock), iid)

    assert refused.value.state == "cancelled"
    assert kinds(a, iid) == ["Invited", "Cancelled"]
    assert a.get_interview(iid).status == "cancelled"


def test_a_decision_taken_on_the_stale_cache_is_taken_again_on_fresh_state(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    iid = invited(a, clock)
    a.accept(ctx(FREELANCER, clock), iid)  # a's cache: accepted, v2
    b.start(ctx(FREELANCER, clock), iid)

    offer = a.extend_offer(ctx(CLIENT, clock), iid, **OFFER)
    withdrawn = b.withdraw_offer(ctx(CLIENT, clock), iid)

    assert (offer.status, offer.version) == ("offer_extended", 4)
    # The offer remembered the started interview, not the accepted one a had cached.
    assert (withdrawn.status, withdrawn.version) == ("in_progress", 5)
    assert kinds(a, iid) == [
        "Invited",
        "Accepted",
        "InterviewStarted",
        "OfferExtended",
        "OfferWithdrawn",
    ]


def test_if_match_is_checked_against_the_store_not_against_a_stale_cache(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    iid = invited(a, clock)  # a's cache: v1
    b.accept(ctx(FREELANCER, clock), iid)

    with pytest.raises(VersionMismatchError) as refused:
        a.start(ctx(CLIENT, clock), iid, expected_version=1)
    started = a.start(ctx(CLIENT, clock), iid, expected_version=2)

    assert (refused.value.expected, refused.value.actual) == (1, 2)
    assert (started.status, started.version) == ("in_progress", 3)
    assert kinds(b, iid) == ["Invited", "Accepted", "InterviewStarted"]


def test_the_scheduler_never_expires_an_invitation_answered_on_the_other_instance(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    iid = invited(a, clock)  # a's cache: invited, its deadline in 7 days
    b.accept(ctx(FREELANCER, clock), iid)
    clock.advance(days=8)

    with pytest.raises(TransitionNotAllowedError) as refused:
        a.expire(iid)

    assert refused.value.state == "accepted"
    assert kinds(a, iid) == ["Invited", "Accepted"]


def test_an_idempotency_key_answers_the_same_on_both_instances(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    iid = invited(a, clock)
    a.accept(ctx(FREELANCER, clock), iid)
    a.start(ctx(CLIENT, clock), iid)
    at = clock() + timedelta(days=3)

    def reschedule(app: InterviewsApplication, **opts: Any) -> CommandResult:
        return app.reschedule(
            ctx(CLIENT, clock), iid, scheduled_at=at, idempotency_key="move-1", **opts
        )

    first = reschedule(a)
    # A second reschedule would be allowed: only the key makes it a repeat.
    on_the_other = reschedule(b)
    on_the_same = reschedule(a)
    with pytest.raises(IdempotencyKeyReusedError):
        reschedule(b, reason="another request under the same key")

    assert not first.replayed
    assert on_the_other.replayed and on_the_same.replayed
    assert {(r.version, r.position) for r in (first, on_the_other, on_the_same)} == {
        (first.version, first.position)
    }
    assert kinds(b, iid).count("Rescheduled") == 1


def test_commands_alternating_between_instances_make_one_contiguous_history(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    iid = invited(a, clock)
    steps = [
        lambda app: app.accept(ctx(FREELANCER, clock), iid),
        lambda app: app.start(ctx(CLIENT, clock), iid),
        lambda app: app.extend_offer(ctx(CLIENT, clock), iid, **OFFER),
        lambda app: app.decline_offer(ctx(FREELANCER, clock), iid, "too low"),
        lambda app: app.extend_offer(ctx(CLIENT, clock), iid, **REVISED_OFFER),
        lambda app: app.accept_offer(ctx(FREELANCER, clock), iid),
    ]

    answers = [step(b if n % 2 == 0 else a) for n, step in enumerate(steps)]

    assert [r.version for r in answers] == [2, 3, 4, 5, 6, 7]
    assert answers[-1].status == "hired"
    assert [e.originator_version for e in a.interview_events(iid)] == list(range(1, 8))
    assert a.get_interview(iid).status == b.get_interview(iid).status == "hired"


def test_a_stale_command_does_not_fail_the_commands_committed_with_it(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    for n in range(12):
        ensure_job(a, f"job-{n}", CLIENT.id, at=clock())
    interviews = [invited(a, clock, f"job-{n}") for n in range(12)]
    stale = interviews[0]
    b.accept(ctx(FREELANCER, clock), stale)  # a's cache of it: invited

    def accept_or_start(i: int) -> CommandResult:
        if i == 0:  # refused on a's cache, allowed on fresh state
            return a.start(ctx(CLIENT, clock, "stale"), stale)
        return a.accept(ctx(FREELANCER, clock, f"fresh-{i}"), interviews[i])

    results = race(len(interviews), accept_or_start)

    assert all(isinstance(r, CommandResult) for r in results), results
    assert [(r.status, r.version) for r in results if isinstance(r, CommandResult)] == [
        ("in_progress", 3),
        *[("accepted", 2)] * 11,
    ]


def test_a_command_on_a_cached_interview_reads_no_events(
    apps: tuple[InterviewsApplication, InterviewsApplication],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = apps
    iid = invited(a, clock)
    reads: list[UUID] = []
    get = a.events.get

    def counting_get(originator_id: UUID, **kwargs: Any) -> Any:
        reads.append(originator_id)
        return get(originator_id, **kwargs)

    monkeypatch.setattr(a.events, "get", counting_get)

    accepted = a.accept(ctx(FREELANCER, clock), iid)

    assert (accepted.status, accepted.version) == ("accepted", 2)
    assert reads == []


def test_a_job_registered_on_one_instance_is_known_to_the_other(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    ensure_job(a, "job-2", CLIENT.id, at=clock())
    service = Actor("job-service", "service")
    positions = a.max_position()

    again, created = b.register_job(ctx(service, clock), "job-2", CLIENT.id)
    with pytest.raises(JobOwnerConflictError):
        b.register_job(ctx(service, clock), "job-2", "client-2")

    assert (again.client_id, again.version, created) == (CLIENT.id, 1, False)
    assert b.max_position() == positions


def test_a_job_created_with_a_key_on_one_instance_is_answered_again_on_the_other(
    apps: tuple[InterviewsApplication, InterviewsApplication], clock: FakeClock
) -> None:
    a, b = apps
    first, first_created = a.create_job(ctx(CLIENT, clock), "Designer", idempotency_key="job-k")
    positions = a.max_position()

    again, again_created = b.create_job(ctx(CLIENT, clock), "Designer", idempotency_key="job-k")
    with pytest.raises(IdempotencyKeyReusedError):
        b.create_job(ctx(CLIENT, clock), "Another title", idempotency_key="job-k")

    assert (first_created, again_created) == (True, False)
    assert again == first
    assert b.max_position() == positions
