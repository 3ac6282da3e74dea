"""Request and response bodies of the interview API (the public HTTP contract)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"),
]
# Free text: no control characters but tab and line breaks (they poison the
# downstream databases: PostgreSQL text cannot hold NUL).
_TEXT = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*"
Message = Annotated[str, StringConstraints(max_length=2000, pattern=f"^{_TEXT}$")]
Reason = Annotated[str, StringConstraints(max_length=500, pattern=f"^{_TEXT}$")]
# And not only white space (it is stripped): the schema says so too.
RequiredReason = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=500,
        strip_whitespace=True,
        pattern=rf"^{_TEXT}[^\s\x00-\x1f\x7f]{_TEXT}$",
    ),
]
# A job's title: like a required reason, a little shorter.
Title = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=200,
        strip_whitespace=True,
        pattern=rf"^{_TEXT}[^\s\x00-\x1f\x7f]{_TEXT}$",
    ),
]
# Money travels as a decimal string: a JSON number cannot promise two decimal places.
AMOUNT_PATTERN = r"^([1-9][0-9]{0,11}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$"


def _amount_from_number(value: Any) -> Any:
    """Clients may send a JSON number (``1200.5``); it is read as its decimal text."""
    if isinstance(value, bool):
        raise ValueError("amount must be a decimal string or a number")
    if isinstance(value, int | float):
        text = format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)
        return text[:-2] if text.endswith(".0") else text
    return value


Amount = Annotated[
    str,
    BeforeValidator(_amount_from_number),
    StringConstraints(pattern=AMOUNT_PATTERN),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["1200.50"]},
                {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 999999999999.99,
                    "multipleOf": 0.01,
                },
            ],
            "description": "Greater than zero, at most 12 digits before the point and 2 "
            "after: a decimal string (preferred: exact) or a JSON number",
        }
    ),
]


def _json_integer(value: Any) -> Any:
    """A JSON integer (``5`` or ``5.0``), never ``true`` or ``"5"`` read as a number."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a whole number of hours")
    return value


# (Field before the validator: the other way round pydantic drops the bounds from the schema.)
ExclusiveHours = Annotated[int, Field(ge=0, le=24 * 90), BeforeValidator(_json_integer)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InviteRequest(_Request):
    job_id: Identifier
    freelancer_id: Identifier
    message: Message | None = None
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the invitation expires (default: 7 days after it is sent)"
    )
    exclusive_hours: ExclusiveHours | None = Field(
        default=None,
        description="Sets the job's exclusive window (hours), as PUT /jobs/{job_id}/policy does",
    )


class DeclineRequest(_Request):
    reason: Reason | None = None


class StartRequest(_Request):
    scheduled_at: AwareDatetime | None = None


class OfferRequest(_Request):
    amount: Amount
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
    exclusive_hours: ExclusiveHours | None = None


class JobCreateRequest(_Request):
    title: Title
    exclusive_hours: ExclusiveHours | None = Field(
        default=None,
        description="Hours after an interview starts in which nobody else is invited",
    )


class JobRegisterRequest(_Request):
    client_id: Identifier = Field(description="The client who owns the job")
    title: Title | None = None


class JobCloseRequest(_Request):
    reason: Reason | None = None


class JobPublic(BaseModel):
    job_id: str
    client_id: str
    title: str | None = Field(description="None for jobs registered by their first invitation")
    status: Literal["open", "closed"]
    exclusive_hours: int | None


class JobClosedPublic(JobPublic):
    """The closed job, the interviews closing it cancelled, and the global position
    of the last of their events (use it as ``min_position`` on the views; null
    when the job was already closed and nothing changed)."""

    cancelled: list[str]
    position: int | None


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
