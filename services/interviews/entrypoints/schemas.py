"""Request and response bodies of the interview API (the public HTTP contract)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"),
]
Message = Annotated[str, StringConstraints(max_length=2000)]
Reason = Annotated[str, StringConstraints(max_length=500)]
RequiredReason = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InviteRequest(_Request):
    job_id: Identifier
    freelancer_id: Identifier
    message: Message | None = None
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the invitation expires (default: 7 days after it is sent)"
    )
    exclusive_hours: int | None = Field(
        default=None,
        ge=0,
        le=24 * 90,
        description="Sets the job's exclusive window (hours) with this first invitation",
    )


class DeclineRequest(_Request):
    reason: Reason | None = None


class StartRequest(_Request):
    scheduled_at: AwareDatetime | None = None


class OfferRequest(_Request):
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    rate_type: Literal["fixed", "hourly"]
    start_date: date | None = None
    message: Message | None = None
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the offer expires (default: 7 days after it is made)"
    )


class CancelRequest(_Request):
    reason: RequiredReason


class JobPolicyRequest(_Request):
    exclusive_hours: int | None = Field(default=None, ge=0, le=24 * 90)


class CommandResponse(BaseModel):
    """What every command answers: the interview's new status, version and the
    global position of its last event (use it as ``min_position`` on the views)."""

    id: str
    status: str
    version: int
    position: int


class OfferPublic(BaseModel):
    amount: Decimal
    currency: str
    rate_type: str
    start_date: date | None = None
    message: str | None = None
    expires_at: datetime | None = None


class InterviewPublic(BaseModel):
    id: str
    status: str
    version: int
    position: int | None
    job_id: str
    client_id: str
    freelancer_id: str
    message: str | None
    invited_at: datetime | None
    invitation_expires_at: datetime | None
    accepted_at: datetime | None
    started_at: datetime | None
    scheduled_at: datetime | None
    offer: OfferPublic | None
    offers_extended: int
    hired_at: datetime | None
    closed_reason: str | None
    cancelled_by: str | None
    updated_at: datetime | None


class JobPolicyPublic(BaseModel):
    job_id: str
    client_id: str
    exclusive_hours: int | None
    version: int


def interview_public(interview: Any, position: int | None) -> InterviewPublic:
    offer = None
    if interview.offer is not None:
        offer = OfferPublic(**interview.offer.__dict__, expires_at=interview.offer_expires_at)
    return InterviewPublic(
        id=str(interview.id),
        status=interview.status,
        version=interview.version,
        position=position,
        job_id=interview.job_id,
        client_id=interview.client_id,
        freelancer_id=interview.freelancer_id,
        message=interview.message,
        invited_at=interview.invited_at,
        invitation_expires_at=interview.invitation_expires_at,
        accepted_at=interview.accepted_at,
        started_at=interview.started_at,
        scheduled_at=interview.scheduled_at,
        offer=offer,
        offers_extended=interview.offers_extended,
        hired_at=interview.hired_at,
        closed_reason=interview.closed_reason,
        cancelled_by=interview.cancelled_by,
        updated_at=interview.updated_at,
    )
