"""The Interview aggregate's test vocabulary: the people, the moments, a
command context, an invitation and an offer (the unit tests of the domain share it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from services.interviews.domain import SYSTEM, Actor, CommandContext, Interview, OfferTerms

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SOON = T0 + timedelta(minutes=5)  # any command before a deadline
INVITATION_EXPIRES = T0 + timedelta(days=1)
OFFER_EXPIRES = T0 + timedelta(days=2)
LATER = T0 + timedelta(days=10)  # after every deadline

CLIENT = Actor("client-1", "client")
FREELANCER = Actor("freelancer-1", "freelancer")
OTHER_CLIENT = Actor("client-2", "client")
OTHER_FREELANCER = Actor("freelancer-2", "freelancer")
AUDITOR = Actor("auditor-1", "auditor")
ADMIN = Actor("admin-1", "admin")
TERMS = OfferTerms(Decimal("1500.00"), "EUR", "fixed", message="welcome aboard")


def ctx(actor: Actor, at: datetime = SOON) -> CommandContext:
    return CommandContext(actor=actor, at=at, correlation_id="corr-1", causation_id="req-1")


def invite(**overrides: object) -> Interview:
    kwargs: dict[str, object] = dict(
        interview_id=uuid4(),
        job_id="job-1",
        freelancer_id=FREELANCER.id,
        message="let's talk",
        expires_at=INVITATION_EXPIRES,
    )
    kwargs.update(overrides)
    return Interview.invite(ctx(CLIENT, T0), **kwargs)  # type: ignore[arg-type]


def extend(interview: Interview) -> None:
    interview.extend_offer(ctx(CLIENT), TERMS, expires_at=OFFER_EXPIRES)


PATHS: dict[str, list[Callable[[Interview], None]]] = {
    "invited": [],
    "accepted": [lambda i: i.accept(ctx(FREELANCER))],
    "declined": [lambda i: i.decline(ctx(FREELANCER), "busy")],
    "in_progress": [lambda i: i.accept(ctx(FREELANCER)), lambda i: i.start(ctx(CLIENT))],
    "offer_extended": [
        lambda i: i.accept(ctx(FREELANCER)),
        lambda i: i.start(ctx(CLIENT)),
        extend,
    ],
    "hired": [
        lambda i: i.accept(ctx(FREELANCER)),
        lambda i: i.start(ctx(CLIENT)),
        extend,
        lambda i: i.accept_offer(ctx(FREELANCER)),
    ],
    "cancelled": [lambda i: i.cancel(ctx(CLIENT), "position filled")],
    "expired": [lambda i: i.expire(ctx(SYSTEM, LATER))],
}


def interview_in(state: str) -> Interview:
    """A fresh interview brought to ``state`` through the commands, events collected."""
    interview = invite()
    for step in PATHS[state]:
        step(interview)
    interview.collect_events()
    assert interview.status == state
    return interview


def first_break(events: list[Interview.Event]) -> tuple[int, str] | None:
    prev = ""
    for event in events:
        reason = event.verify_link(prev)
        if reason is not None:
            return event.originator_version, reason
        prev = event.hash
    return None
