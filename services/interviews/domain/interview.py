"""The Interview aggregate: one freelancer's interview for one job.

Every transition of DESIGN's table is a command method here that checks its
rules (``_check_*`` guards raising ``...Error``, and the input bounds of
:mod:`.bounds`, whatever the API already checked) and then records one
past-tense event. Events carry who did it (``actor_id``, ``actor_role``), the
correlation and causation ids of the request that caused them, and a link in
the interview's hash chain (see :mod:`.hashing`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal, cast
from uuid import UUID

from eventsourcing.domain import Aggregate

from . import bounds
from .errors import (
    AlreadyScheduledError,
    DeadlinePassedError,
    InvalidCommandError,
    NotAllowedError,
    NotYetDueError,
    TransitionNotAllowedError,
)
from .hashing import GENESIS, chain_hash

Role = Literal["client", "freelancer", "auditor", "admin", "service", "system"]
RateType = Literal["fixed", "hourly"]
# Free text a person wrote, as recorded: sealed with the author's key (a dict in
# services/common/privacy.py's format), or a plain string in events recorded
# before sealing existed.
PersonalText = str | dict[str, str]
Sealer = Callable[[str], dict[str, str]]

INVITED = "invited"
ACCEPTED = "accepted"
DECLINED = "declined"
IN_PROGRESS = "in_progress"
OFFER_EXTENDED = "offer_extended"
HIRED = "hired"
CANCELLED = "cancelled"
EXPIRED = "expired"

FINAL_STATES = frozenset({DECLINED, HIRED, CANCELLED, EXPIRED})
# The states an offer may be extended from, and so the ones its decline or
# withdrawal returns the interview to.
OFFER_FROM_STATES = (ACCEPTED, IN_PROGRESS)
ALL_STATES = (
    INVITED,
    ACCEPTED,
    DECLINED,
    IN_PROGRESS,
    OFFER_EXTENDED,
    HIRED,
    CANCELLED,
    EXPIRED,
)


@dataclass(frozen=True)
class Actor:
    id: str
    role: Role

    @property
    def is_party_role(self) -> bool:
        return self.role in ("client", "freelancer")


SYSTEM = Actor(id="system", role="system")


@dataclass(frozen=True)
class CommandContext:
    """Who is acting, when, and which request caused it."""

    actor: Actor
    at: datetime
    correlation_id: str
    causation_id: str
    # Seals the actor's free text before it is recorded (the application gives
    # one keyed to the actor; none: the text is recorded as written).
    sealer: Sealer | None = field(default=None, compare=False, repr=False)

    def with_sealer(self, sealer: Sealer) -> CommandContext:
        """This context, sealing with ``sealer`` (``dataclasses.replace`` does the
        same at twice the cost, on every command that carries text)."""
        return CommandContext(self.actor, self.at, self.correlation_id, self.causation_id, sealer)

    def seal(self, text: str | None) -> PersonalText | None:
        """``text`` as it is recorded: sealed with the actor's key when a sealer is set.
        Call it only after the text passed its bounds."""
        if text is None or self.sealer is None:
            return text
        return self.sealer(text)


@dataclass(frozen=True)
class OfferTerms:
    amount: Decimal
    currency: str
    rate_type: RateType
    start_date: date | None = None
    message: PersonalText | None = None


DEFAULT_DURATION_MINUTES = 30
MIN_DURATION_MINUTES = 15
MAX_DURATION_MINUTES = 240


# Field names every interview event carries besides its own data.
META_FIELDS = ("actor_id", "actor_role", "correlation_id", "causation_id", "prev_hash", "hash")
BASE_FIELDS = ("originator_id", "originator_version", "timestamp", "originator_topic")
# The key under which a stored event keeps the traceparent of the command that
# recorded it (adapters/group_commit.py). Not a field of the event: the hash chain
# never covers it.
TRACE_CONTEXT = "trace_context"
# The hash covers every field but itself and the class path (which may be refactored).


class Interview(Aggregate):
    """An interview between the client who owns a job and one freelancer."""

    class Event(Aggregate.Event):
        actor_id: str
        actor_role: str
        correlation_id: str
        causation_id: str
        prev_hash: str
        hash: str

        def apply(self, aggregate: Interview) -> None:
            aggregate.last_hash = self.hash
            aggregate.updated_at = self.timestamp
            self.apply_to(aggregate)

        def apply_to(self, aggregate: Interview) -> None:
            """Event-specific state change."""

        def data(self) -> dict[str, Any]:
            """The event's own fields: what the integration event calls ``data``."""
            return {
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name not in META_FIELDS and f.name not in BASE_FIELDS
            }

        def chained_fields(self) -> dict[str, Any]:
            """Everything the hash covers (all fields but the hash itself)."""
            fields = {
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name not in ("hash", "originator_topic")
            }
            fields["type"] = type(self).__name__
            return fields

        def verify_link(self, prev_hash: str) -> str | None:
            """Why this event does not follow ``prev_hash``, or None if it does."""
            if self.prev_hash != prev_hash:
                return "prev_hash does not match the previous event's hash"
            if chain_hash(prev_hash, self.chained_fields()) != self.hash:
                return "hash does not match the event's content"
            return None

    class Invited(Event, Aggregate.Created):
        job_id: str
        client_id: str
        freelancer_id: str
        message: PersonalText | None
        expires_at: datetime | None

        def apply_to(self, aggregate: Interview) -> None:
            aggregate.job_id = self.job_id
            aggregate.client_id = self.client_id
            aggregate.freelancer_id = self.freelancer_id
            aggregate.message = self.message
            aggregate.invited_at = self.timestamp
            aggregate.invitation_expires_at = self.expires_at
            aggregate.status = INVITED

    class Accepted(Event):
        def apply_to(self, aggregate: Interview) -> None:
            aggregate.status = ACCEPTED
            aggregate.accepted_at = self.timestamp

    class Declined(Event):
        reason: PersonalText | None

        def apply_to(self, aggregate: Interview) -> None:
            aggregate.status = DECLINED
            aggregate.closed_reason = self.reason

    class InterviewStarted(Event):
        """Version 2 added ``duration_minutes`` (version 1 meetings were 30 minutes)."""

        class_version: ClassVar[int] = 2

        scheduled_at: datetime | None
        duration_minutes: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["duration_minutes"] = DEFAULT_DURATION_MINUTES

        def apply_to(self, aggregate: Interview) -> None:
            aggregate.status = IN_PROGRESS
            aggregate.started_at = self.timestamp
            aggregate.scheduled_at = self.scheduled_at
            aggregate.duration_minutes = self.duration_minutes
            if self.scheduled_at is not None:
                aggregate.schedule_changed_at = self.timestamp

    class Rescheduled(Event):
        """The meeting moved; ``previous_scheduled_at`` is where it was (None if
        it had no time yet)."""

        scheduled_at: datetime
        duration_minutes: int
        previous_scheduled_at: datetime | None
        reason: PersonalText | None

        def apply_to(self, aggregate: Interview) -> None:
            aggregate.scheduled_at = self.scheduled_at
            aggregate.duration_minutes = self.duration_minutes
            aggregate.reschedules += 1
            aggregate.schedule_changed_at = self.timestamp

    class OfferExtended(Event):
        amount: Decimal
        currency: str
        rate_type: str
        start_date: date | None
        message: PersonalText | None
        expires_at: datetime | None

        def apply_to(self, aggregate: Interview) -> None:
            aggregate.status_before_offer = aggregate.status
            aggregate.status = OFFER_EXTENDED
            aggregate.offer_withdrawn = False
            aggregate.offers_extended += 1
            aggregate.offer = OfferTerms(
                amount=self.amount,
                currency=self.currency,
                # Recorded from OfferTerms, so one of RateType (the event keeps a str).
                rate_type=cast(RateType, self.rate_type),
                start_date=self.start_date,
                message=self.message,
            )
            aggregate.offer_expires_at = self.expires_at

    class OfferAccepted(Event):
        def apply_to(self, aggregate: Interview) -> None:
            aggregate.status = HIRED
            aggregate.hired_at = self.timestamp
            aggregate.offer_expires_at = None

    class OfferDeclined(Event):
        """Version 2 added ``status``, the state the interview returns to (the one
        before the offer); version 1 always returned it to ``in_progress``."""

        class_version: ClassVar[int] = 2

        reason: PersonalText | None
        status: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["status"] = IN_PROGRESS

        def apply_to(self, aggregate: Interview) -> None:
            aggregate.status = self.status
            aggregate.status_before_offer = None
            aggregate.offer = None
            aggregate.offer_expires_at = None
            aggregate.last_offer_declined_reason = self.reason

    class OfferWithdrawn(Event):
        """The client took the offer back before it was answered; ``status`` is
        the state the interview returns to (the one before the offer)."""

        reason: PersonalText | None
        status: str

        def apply_to(self, aggregate: Interview) -> None:
            aggregate.status = self.status
            aggregate.status_before_offer = None
            aggregate.offer = None
            aggregate.offer_expires_at = None
            aggregate.offer_withdrawn = True

    class Cancelled(Event):
        """Version 2 added ``cancelled_by`` (the cancelling party's role), version 3
        ``job_closed`` (the client closed the job, which cancelled this interview)."""

        class_version: ClassVar[int] = 3

        reason: PersonalText
        cancelled_by: str
        job_closed: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["cancelled_by"] = state.get("actor_role", "unknown")

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["job_closed"] = False

        def apply_to(self, aggregate: Interview) -> None:
            aggregate.status = CANCELLED
            aggregate.closed_reason = self.reason
            aggregate.cancelled_by = self.cancelled_by

    class Expired(Event):
        what: str  # "invitation" or "offer"

        def apply_to(self, aggregate: Interview) -> None:
            aggregate.status = EXPIRED
            aggregate.closed_reason = f"{self.what} expired"
            aggregate.expired_what = self.what

    def __init__(self) -> None:
        self.status = INVITED
        self.last_hash = GENESIS
        self.job_id = ""
        self.client_id = ""
        self.freelancer_id = ""
        self.message: PersonalText | None = None
        self.invited_at: datetime | None = None
        self.invitation_expires_at: datetime | None = None
        self.accepted_at: datetime | None = None
        self.started_at: datetime | None = None
        self.scheduled_at: datetime | None = None
        self.offer: OfferTerms | None = None
        self.offer_expires_at: datetime | None = None
        self.offers_extended = 0
        self.hired_at: datetime | None = None
        self.closed_reason: PersonalText | None = None
        self.cancelled_by: str | None = None
        self.last_offer_declined_reason: PersonalText | None = None
        self.updated_at: datetime | None = None

    # Class defaults: snapshots taken before these existed lack them (and then no
    # interview had been rescheduled, or had an offer withdrawn).
    expired_what: str | None = None
    duration_minutes: int = DEFAULT_DURATION_MINUTES
    reschedules = 0  # schedule changes after the start: the calendar's SEQUENCE
    schedule_changed_at: datetime | None = None
    # The state an open offer was extended from (None: no open offer, or a
    # snapshot taken before it was kept).
    status_before_offer: str | None = None
    offer_withdrawn = False  # the last offer was withdrawn (and no new one made)

    # ----------------------------------------------------------------- commands

    @classmethod
    def invite(
        cls,
        ctx: CommandContext,
        *,
        interview_id: UUID,
        job_id: str,
        freelancer_id: str,
        message: str | None = None,
        expires_at: datetime | None = None,
    ) -> Interview:
        """A client invites a freelancer to interview for one of their jobs."""
        if ctx.actor.role != "client":
            raise NotAllowedError("only a client can invite a freelancer")
        if freelancer_id == ctx.actor.id:
            raise InvalidCommandError("a client cannot invite themselves")
        bounds.check_text(message, "message", bounds.MESSAGE_MAX_LENGTH)
        if expires_at is not None:
            expires_at = bounds.check_expires_at(expires_at, ctx.at)
        fields = dict(
            job_id=job_id,
            client_id=ctx.actor.id,
            freelancer_id=freelancer_id,
            message=ctx.seal(message),
            expires_at=expires_at,
        )
        meta = _meta(ctx)
        created_fields = {
            "originator_id": interview_id,
            "originator_version": cls.INITIAL_VERSION,
            "timestamp": ctx.at,
            **meta,
            **fields,
        }
        created_fields["type"] = cls.Invited.__name__
        digest = chain_hash(GENESIS, created_fields)
        return cls._create(
            cls.Invited,
            id=interview_id,
            timestamp=ctx.at,
            prev_hash=GENESIS,
            hash=digest,
            **meta,
            **fields,
        )

    def accept(self, ctx: CommandContext) -> None:
        """The invited freelancer accepts the invitation."""
        self._check_is_freelancer(ctx, "accept the invitation")
        self._check_not_expired("accept")
        self._check_state(ctx, "accept", INVITED)
        self._check_deadline(ctx, "accept", "invitation", self.invitation_expires_at)
        self._record(ctx, self.Accepted)

    def decline(self, ctx: CommandContext, reason: str | None = None) -> None:
        """The invited freelancer declines the invitation."""
        self._check_is_freelancer(ctx, "decline the invitation")
        bounds.check_text(reason, "reason", bounds.REASON_MAX_LENGTH)
        self._check_not_expired("decline")
        self._check_state(ctx, "decline", INVITED)
        self._check_deadline(ctx, "decline", "invitation", self.invitation_expires_at)
        self._record(ctx, self.Declined, reason=ctx.seal(reason))

    def start(
        self,
        ctx: CommandContext,
        scheduled_at: datetime | None = None,
        duration_minutes: int = DEFAULT_DURATION_MINUTES,
    ) -> None:
        """Either party marks the interview as started, optionally with a date.

        An interview left ``in_progress`` without ever being started (an offer
        made before the start and declined, recorded before declines returned
        it to ``accepted``) can be started too.
        """
        self._check_is_party(ctx, "start the interview")
        if scheduled_at is not None:
            scheduled_at = bounds.check_scheduled_at(scheduled_at, ctx.at)
        if not (self.status == IN_PROGRESS and self.started_at is None):
            self._check_state(ctx, "start", ACCEPTED)
        _check_duration(duration_minutes)
        self._record(
            ctx,
            self.InterviewStarted,
            scheduled_at=scheduled_at,
            duration_minutes=duration_minutes,
        )

    def reschedule(
        self,
        ctx: CommandContext,
        scheduled_at: datetime,
        duration_minutes: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Either party moves the meeting of a started interview (also while an
        offer is open); the previous time is kept on the event. Without a
        duration the meeting keeps its length."""
        self._check_is_party(ctx, "reschedule the interview")
        scheduled_at = bounds.check_scheduled_at(scheduled_at, ctx.at)
        bounds.check_text(reason, "reason", bounds.REASON_MAX_LENGTH)
        self._check_state(ctx, "reschedule", IN_PROGRESS, OFFER_EXTENDED)
        if self.started_at is None:
            raise TransitionNotAllowedError(
                "reschedule",
                self.status,
                f"cannot reschedule an interview that is {_words(self.status)} but was "
                "never started: start it with a scheduled_at instead",
            )
        if duration_minutes is None:
            duration_minutes = self.duration_minutes
        _check_duration(duration_minutes)
        if scheduled_at == self.scheduled_at and duration_minutes == self.duration_minutes:
            raise AlreadyScheduledError(
                f"the interview is already scheduled at {scheduled_at.isoformat()} "
                f"for {duration_minutes} minutes"
            )
        self._record(
            ctx,
            self.Rescheduled,
            scheduled_at=scheduled_at,
            duration_minutes=duration_minutes,
            previous_scheduled_at=self.scheduled_at,
            reason=ctx.seal(reason),
        )

    def extend_offer(
        self, ctx: CommandContext, terms: OfferTerms, expires_at: datetime | None = None
    ) -> None:
        """The client offers the freelancer the job (again, after a decline)."""
        self._check_is_client(ctx, "extend an offer")
        bounds.check_amount(terms.amount)
        bounds.check_currency_code(terms.currency)
        if terms.start_date is not None:
            bounds.check_start_date(terms.start_date, bounds.today_of(ctx.at))
        if terms.message is not None and not isinstance(terms.message, str):
            raise InvalidCommandError("an offer's message is given as text")
        bounds.check_text(terms.message, "message", bounds.MESSAGE_MAX_LENGTH)
        if expires_at is not None:
            expires_at = bounds.check_expires_at(expires_at, ctx.at)
        self._check_state(ctx, "extend an offer on", *OFFER_FROM_STATES)
        self._record(
            ctx,
            self.OfferExtended,
            amount=terms.amount,
            currency=terms.currency,
            rate_type=terms.rate_type,
            start_date=terms.start_date,
            message=ctx.seal(terms.message),
            expires_at=expires_at,
        )

    def accept_offer(self, ctx: CommandContext) -> None:
        """The freelancer accepts the offer: hired."""
        self._check_is_freelancer(ctx, "accept the offer")
        self._check_not_expired("accept the offer")
        self._check_offer_open("accept an offer on")
        self._check_deadline(ctx, "accept the offer", "offer", self.offer_expires_at)
        self._record(ctx, self.OfferAccepted)

    def decline_offer(self, ctx: CommandContext, reason: str | None = None) -> None:
        """The freelancer declines the offer; the client may make another."""
        self._check_is_freelancer(ctx, "decline the offer")
        bounds.check_text(reason, "reason", bounds.REASON_MAX_LENGTH)
        self._check_not_expired("decline the offer")
        self._check_offer_open("decline an offer on")
        self._check_deadline(ctx, "decline the offer", "offer", self.offer_expires_at)
        self._record(
            ctx, self.OfferDeclined, reason=ctx.seal(reason), status=self._state_after_offer
        )

    def withdraw_offer(self, ctx: CommandContext, reason: str | None = None) -> None:
        """The client takes back an offer nobody has answered yet; the interview
        returns to the state it was in before the offer."""
        self._check_is_client(ctx, "withdraw the offer")
        bounds.check_text(reason, "reason", bounds.REASON_MAX_LENGTH)
        self._check_not_expired("withdraw the offer")
        self._check_state(ctx, "withdraw an offer on", OFFER_EXTENDED)
        self._record(
            ctx, self.OfferWithdrawn, reason=ctx.seal(reason), status=self._state_after_offer
        )

    def cancel(self, ctx: CommandContext, reason: str, *, job_closed: bool = False) -> None:
        """Either party cancels an open interview, with a reason; ``job_closed``
        when the client cancels it by closing the job."""
        self._check_is_party(ctx, "cancel the interview")
        bounds.check_text(reason, "reason", bounds.REASON_MAX_LENGTH, required=True)
        if self.is_final:
            raise TransitionNotAllowedError("cancel", self.status)
        self._record(
            ctx,
            self.Cancelled,
            reason=ctx.seal(reason),
            cancelled_by=ctx.actor.role,
            job_closed=job_closed,
        )

    def expire(self, ctx: CommandContext) -> None:
        """The system closes an invitation or offer nobody answered in time."""
        if ctx.actor.role != "system":
            raise NotAllowedError("only the system expires interviews")
        what, deadline = self.open_deadline or (None, None)
        if what is None or deadline is None:
            raise TransitionNotAllowedError("expire", self.status)
        if ctx.at < deadline:
            raise NotYetDueError(f"the {what} is open until {deadline.isoformat()}")
        self._record(ctx, self.Expired, what=what)

    # ------------------------------------------------------------------ queries

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    @property
    def open_deadline(self) -> tuple[str, datetime | None] | None:
        """What is waiting for an answer and until when, if anything."""
        if self.status == INVITED:
            return ("invitation", self.invitation_expires_at)
        if self.status == OFFER_EXTENDED:
            return ("offer", self.offer_expires_at)
        return None

    @property
    def _state_after_offer(self) -> str:
        """Where a declined or withdrawn offer leaves the interview: the state
        before the offer (an older snapshot does not hold it, but an offer made
        before the start was made from ``accepted``)."""
        if self.status_before_offer is not None:
            return self.status_before_offer
        return ACCEPTED if self.started_at is None else IN_PROGRESS

    @property
    def meeting_minutes(self) -> int | None:
        """The meeting's length once the interview was started, else None."""
        return self.duration_minutes if self.started_at is not None else None

    @property
    def schedule_sequence(self) -> int:
        """How often the scheduled meeting changed since the start: one per
        reschedule, one more once it is cancelled (a calendar's SEQUENCE)."""
        return self.reschedules + (1 if self.status == CANCELLED else 0)

    def party_role_of(self, user_id: str) -> str | None:
        if user_id == self.client_id:
            return "client"
        if user_id == self.freelancer_id:
            return "freelancer"
        return None

    # ------------------------------------------------------------------- guards

    def _check_state(self, ctx: CommandContext, action: str, *allowed: str) -> None:
        if self.status not in allowed:
            raise TransitionNotAllowedError(action, self.status)

    def _check_offer_open(self, action: str) -> None:
        """An answer to an offer the client withdrew is told so, with the state."""
        if self.status in OFFER_FROM_STATES and self.offer_withdrawn:
            raise TransitionNotAllowedError(
                action,
                self.status,
                f"cannot {action} an interview that is {_words(self.status)}: "
                "the client withdrew the offer",
            )
        if self.status != OFFER_EXTENDED:
            raise TransitionNotAllowedError(action, self.status)

    def _check_not_expired(self, action: str) -> None:
        """A late answer is told what expired and when, not just the state."""
        if self.status != EXPIRED:
            return
        what = self.expired_what or "invitation"
        deadline = self.offer_expires_at if what == "offer" else self.invitation_expires_at
        deadline = deadline or self.updated_at
        assert deadline is not None
        raise DeadlinePassedError(action, self.status, what, deadline)

    def _check_deadline(
        self, ctx: CommandContext, action: str, what: str, deadline: datetime | None
    ) -> None:
        if deadline is not None and ctx.at >= deadline:
            raise DeadlinePassedError(action, self.status, what, deadline)

    def _check_is_freelancer(self, ctx: CommandContext, action: str) -> None:
        if ctx.actor.role != "freelancer" or ctx.actor.id != self.freelancer_id:
            raise NotAllowedError(f"only the invited freelancer can {action}")

    def _check_is_client(self, ctx: CommandContext, action: str) -> None:
        if ctx.actor.role != "client" or ctx.actor.id != self.client_id:
            raise NotAllowedError(f"only the interview's client can {action}")

    def _check_is_party(self, ctx: CommandContext, action: str) -> None:
        if self.party_role_of(ctx.actor.id) != ctx.actor.role:
            raise NotAllowedError(f"only the client or the freelancer can {action}")

    # ----------------------------------------------------------------- recording

    def _record(self, ctx: CommandContext, event_class: type[Event], **data: Any) -> None:
        meta = _meta(ctx)
        fields = {
            "originator_id": self.id,
            "originator_version": self.version + 1,
            "timestamp": ctx.at,
            **meta,
            **data,
            "prev_hash": self.last_hash,
            "type": event_class.__name__,
        }
        digest = chain_hash(self.last_hash, fields)
        self.trigger_event(
            event_class,
            timestamp=ctx.at,
            **{**meta, "prev_hash": self.last_hash},
            hash=digest,
            **data,
        )


# Every interview event, with its type in the published contract (DESIGN's envelope):
# the one list the application, the envelope adapter and the audit log read.
EVENT_TYPES: dict[type[Interview.Event], str] = {
    Interview.Invited: "interview.invited",
    Interview.Accepted: "interview.accepted",
    Interview.Declined: "interview.declined",
    Interview.InterviewStarted: "interview.started",
    Interview.OfferExtended: "interview.offer_extended",
    Interview.OfferAccepted: "interview.offer_accepted",
    Interview.OfferDeclined: "interview.offer_declined",
    Interview.Cancelled: "interview.cancelled",
    Interview.Expired: "interview.expired",
    Interview.Rescheduled: "interview.rescheduled",
    Interview.OfferWithdrawn: "interview.offer_withdrawn",
}


def _words(state: str) -> str:
    return state.replace("_", " ")


def _check_duration(minutes: int) -> None:
    if type(minutes) is not int or not MIN_DURATION_MINUTES <= minutes <= MAX_DURATION_MINUTES:
        raise InvalidCommandError(
            f"duration_minutes must be a whole number from {MIN_DURATION_MINUTES} "
            f"to {MAX_DURATION_MINUTES}"
        )


def _meta(ctx: CommandContext) -> dict[str, Any]:
    return {
        "actor_id": ctx.actor.id,
        "actor_role": ctx.actor.role,
        "correlation_id": ctx.correlation_id,
        "causation_id": ctx.causation_id,
    }
