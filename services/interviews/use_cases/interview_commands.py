"""The interview commands: invite, answer, start, reschedule, offer, cancel, expire.

A command on an existing interview runs through ``_transition``: the caller must
be a party (a stranger learns nothing, not even that the interview exists), an
``If-Match`` version must be the current one, and with an ``Idempotency-Key`` a
retry answers what the first attempt answered (``_execute``, in ``execution.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ...common.randomness import random_uuid
from ..domain import (
    DEFAULT_DURATION_MINUTES,
    SYSTEM,
    CommandContext,
    Interview,
    JobNotFoundError,
    NotAllowedError,
    OfferTerms,
)
from ..domain.interview import RateType
from ..personal_data import sealing
from .errors import (
    InterviewNotFoundError,
    VersionMismatchError,
)
from .execution import CommandExecution, CommandResult

log = logging.getLogger(__name__)


class InterviewCommands(CommandExecution):
    """The commands on one interview (``invite`` creates it)."""

    def invite(
        self,
        ctx: CommandContext,
        *,
        job_id: str,
        freelancer_id: str,
        message: str | None = None,
        expires_at: datetime | None = None,
        exclusive_hours: int | None = None,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        payload = {
            "job_id": job_id,
            "freelancer_id": freelancer_id,
            "message": message,
            "expires_at": expires_at,
            "exclusive_hours": exclusive_hours,
        }
        ctx = sealing(ctx, self.keys)

        def decide(trusted: list[Any] | None) -> tuple[list[Any], Interview]:
            if ctx.actor.role != "client":
                raise NotAllowedError("only a client can invite a freelancer")
            job = self._get_job(job_id, trusted)  # always written: it records the invitation
            if job is None:
                raise JobNotFoundError(f"job {job_id!r} not found")
            job.check_owner(ctx.actor)
            if exclusive_hours is not None:
                job.set_policy(ctx.actor, ctx.at, exclusive_hours)
            previous_id = job.last_interview_with(freelancer_id)
            previous = self._get_interview(previous_id) if previous_id is not None else None
            job.check_can_invite(ctx.at, previous)
            interview = Interview.invite(
                ctx,
                interview_id=random_uuid(),
                job_id=job_id,
                freelancer_id=freelancer_id,
                message=message,
                expires_at=expires_at or ctx.at + self.invitation_ttl,
            )
            job.record_invitation(freelancer_id, interview.id, ctx.at)
            return [job, interview], interview

        return self._execute(
            ctx, "invite", job_id, payload, idempotency_key, decide, job_lock=job_id
        )

    def accept(self, ctx: CommandContext, interview_id: UUID, **opts: Any) -> CommandResult:
        return self._transition(ctx, "accept", interview_id, {}, lambda i: i.accept(ctx), **opts)

    def decline(
        self, ctx: CommandContext, interview_id: UUID, reason: str | None = None, **opts: Any
    ) -> CommandResult:
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx,
            "decline",
            interview_id,
            {"reason": reason},
            lambda i: i.decline(ctx, reason),
            **opts,
        )

    def start(
        self,
        ctx: CommandContext,
        interview_id: UUID,
        scheduled_at: datetime | None = None,
        duration_minutes: int = DEFAULT_DURATION_MINUTES,
        **opts: Any,
    ) -> CommandResult:
        """Either party starts the interview, optionally at a scheduled time."""

        def act(interview: Interview) -> list[Any]:
            interview.start(ctx, scheduled_at, duration_minutes)
            job = self._get_job(interview.job_id)
            if job is not None and job.exclusive_hours:
                job.open_exclusive_window(interview.id, ctx.at)
                return [job]
            return []

        payload: dict[str, Any] = {"scheduled_at": scheduled_at}
        if duration_minutes != DEFAULT_DURATION_MINUTES:
            # The default leaves the fingerprint as it was before durations existed.
            payload["duration_minutes"] = duration_minutes
        # The job is read fresh (its exclusive hours decide what is written):
        # a query, so not tried on the event loop first.
        return self._transition(ctx, "start", interview_id, payload, act, queries=True, **opts)

    def reschedule(
        self,
        ctx: CommandContext,
        interview_id: UUID,
        *,
        scheduled_at: datetime,
        duration_minutes: int | None = None,
        reason: str | None = None,
        **opts: Any,
    ) -> CommandResult:
        """Either party moves the meeting of a started interview (without a
        duration it keeps its length)."""
        payload = {
            "scheduled_at": scheduled_at,
            "duration_minutes": duration_minutes,
            "reason": reason,
        }
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx,
            "reschedule",
            interview_id,
            payload,
            lambda i: i.reschedule(ctx, scheduled_at, duration_minutes, reason),
            **opts,
        )

    def extend_offer(
        self,
        ctx: CommandContext,
        interview_id: UUID,
        *,
        amount: Decimal,
        currency: str,
        rate_type: RateType,
        start_date: date | None = None,
        message: str | None = None,
        expires_at: datetime | None = None,
        **opts: Any,
    ) -> CommandResult:
        ctx = sealing(ctx, self.keys)
        terms = OfferTerms(amount, currency, rate_type, start_date, message)
        payload = {**terms.__dict__, "expires_at": expires_at}
        return self._transition(
            ctx,
            "offer",
            interview_id,
            payload,
            lambda i: i.extend_offer(ctx, terms, expires_at or ctx.at + self.offer_ttl),
            **opts,
        )

    def accept_offer(self, ctx: CommandContext, interview_id: UUID, **opts: Any) -> CommandResult:
        return self._transition(
            ctx, "offer/accept", interview_id, {}, lambda i: i.accept_offer(ctx), **opts
        )

    def decline_offer(
        self, ctx: CommandContext, interview_id: UUID, reason: str | None = None, **opts: Any
    ) -> CommandResult:
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx,
            "offer/decline",
            interview_id,
            {"reason": reason},
            lambda i: i.decline_offer(ctx, reason),
            **opts,
        )

    def withdraw_offer(
        self, ctx: CommandContext, interview_id: UUID, reason: str | None = None, **opts: Any
    ) -> CommandResult:
        """The client takes back an unanswered offer."""
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx,
            "offer/withdraw",
            interview_id,
            {"reason": reason},
            lambda i: i.withdraw_offer(ctx, reason),
            **opts,
        )

    def cancel(
        self, ctx: CommandContext, interview_id: UUID, reason: str, **opts: Any
    ) -> CommandResult:
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx, "cancel", interview_id, {"reason": reason}, lambda i: i.cancel(ctx, reason), **opts
        )

    def expire(self, interview_id: UUID, at: datetime | None = None) -> CommandResult:
        """Called by the scheduler when a deadline has passed."""
        ctx = CommandContext(
            actor=SYSTEM,
            at=at or self.clock(),
            correlation_id=f"expiry:{interview_id}",
            causation_id=f"deadline:{interview_id}",
        )
        return self._transition(ctx, "expire", interview_id, {}, lambda i: i.expire(ctx))

    def _transition(
        self,
        ctx: CommandContext,
        action: str,
        interview_id: UUID,
        payload: dict[str, Any],
        act: Callable[[Interview], Any],
        *,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
        queries: bool = False,
    ) -> CommandResult:
        def decide(trusted: list[Any] | None) -> tuple[list[Any], Interview]:
            interview = self._get_interview(interview_id, trusted=trusted)
            if interview.party_role_of(ctx.actor.id) is None and ctx.actor.role != "system":
                # Existence must not leak to strangers.
                raise InterviewNotFoundError(f"interview {interview_id} not found")
            if expected_version is not None and expected_version != interview.version:
                raise VersionMismatchError(expected_version, interview.version)
            extra = act(interview) or []
            return [interview, *extra], interview

        return self._execute(
            ctx, action, str(interview_id), payload, idempotency_key, decide, queries=queries
        )
