"""Request and response bodies of the interview API (the public HTTP contract)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import iso4217
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from ..domain import InputOutOfBoundsError, bounds
from ..domain.interview import (
    DEFAULT_DURATION_MINUTES,
    MAX_DURATION_MINUTES,
    MIN_DURATION_MINUTES,
)
from ..personal_data import Keys, reveal_interview

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"),
]

# ------------------------------------------------------------------ free text
# The rules live in the domain (bounds.text_problem); the pattern says the same
# in the OpenAPI document, so a generated client knows them (``\s`` as in Python).
# (Lone surrogates, which JSON can carry as "\ud800", are refused too but not
# written here: generators of test data cannot read a surrogate range.)
_TEXT_CHAR = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
_VISIBLE_CHAR = (
    r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\ufeff]"
)
TEXT_PATTERN = rf"^{_TEXT_CHAR}*{_VISIBLE_CHAR}{_TEXT_CHAR}*$"


def _text_validator(max_length: int) -> Callable[[str], str]:
    def validate(value: str) -> str:
        problem = bounds.text_problem(value, max_length)
        if problem:
            raise PydanticCustomError("text_out_of_bounds", problem)
        return value

    return validate


def _text_schema(max_length: int) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": TEXT_PATTERN,
        "description": f"Not blank, at most {max_length} characters, no control characters "
        "but tab and line breaks, no bidirectional controls",
    }


Message = Annotated[
    str,
    AfterValidator(_text_validator(bounds.MESSAGE_MAX_LENGTH)),
    WithJsonSchema(_text_schema(bounds.MESSAGE_MAX_LENGTH)),
]
Reason = Annotated[
    str,
    AfterValidator(_text_validator(bounds.REASON_MAX_LENGTH)),
    WithJsonSchema(_text_schema(bounds.REASON_MAX_LENGTH)),
]
TITLE_MAX_LENGTH = 200
# A job's title: the free-text rules, a little shorter than a reason; the
# white space around it is dropped.
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True),
    AfterValidator(_text_validator(TITLE_MAX_LENGTH)),
    WithJsonSchema(_text_schema(TITLE_MAX_LENGTH)),
]

# --------------------------------------------------------------------- money
# Money travels as a decimal string: a JSON number cannot promise two decimal
# places. The pattern is the domain's bound written out: greater than 0, at
# most 10,000,000, at most 2 decimals.
AMOUNT_PATTERN = r"^(10000000(\.00?)?|[1-9][0-9]{0,6}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$"
_DECIMAL_TEXT = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?$")


def _amount_from_number(value: Any) -> Any:
    """Clients may send a JSON number (``1200.5``); it is read as its decimal text."""
    if isinstance(value, bool):
        raise PydanticCustomError("amount_type", "must be a decimal string or a number")
    if isinstance(value, int | float):
        text = format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)
        return text[:-2] if text.endswith(".0") else text
    return value


def _amount_in_bounds(value: str) -> str:
    if not _DECIMAL_TEXT.match(value):
        raise PydanticCustomError("amount_format", "must be a plain decimal number such as 1200.50")
    problem = bounds.amount_problem(Decimal(value))
    if problem:
        raise PydanticCustomError("amount_out_of_bounds", problem)
    return value


Amount = Annotated[
    str,
    BeforeValidator(_amount_from_number),
    AfterValidator(_amount_in_bounds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["1200.50"]},
                {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": float(bounds.MAX_AMOUNT),
                    "multipleOf": 0.01,
                },
            ],
            "description": f"Greater than 0, at most {bounds.MAX_AMOUNT}, at most "
            f"{bounds.AMOUNT_DECIMALS} decimals: a decimal string (preferred: exact) or a "
            "JSON number",
        }
    ),
]

# Currencies with a minor unit: the list without gold, test and "no currency" codes (XXX).
CURRENCY_CODES: frozenset[str] = frozenset(
    c.code for c in iso4217.Currency if c.exponent is not None
)


def _iso4217(value: str) -> str:
    if value not in CURRENCY_CODES:
        raise PydanticCustomError(
            "currency_unknown", "must be an ISO 4217 currency code such as EUR"
        )
    return value


CurrencyCode = Annotated[
    str,
    AfterValidator(_iso4217),
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(CURRENCY_CODES),
            "description": "An ISO 4217 currency code (a currency, not a metal or XXX)",
        }
    ),
]

# ---------------------------------------------------------------- instants


def _utc_instant(value: datetime) -> datetime:
    """Every instant is stored in UTC: one a downstream store can hold whatever its
    zone rules (the windows themselves are checked against the service's clock)."""
    try:
        return bounds.as_utc(value, "instant")
    except InputOutOfBoundsError as error:
        raise PydanticCustomError("datetime_out_of_range", error.problem) from None


Instant = Annotated[AwareDatetime, AfterValidator(_utc_instant)]


def _json_integer(value: Any) -> Any:
    """A JSON integer (``5`` or ``5.0``, as JSON Schema's ``integer``), never ``true``
    or ``"5"`` read as a number."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a whole number (a JSON integer, not a string or a boolean)")
    return value


# (Field before the validator: the other way round pydantic drops the bounds from the schema.)
ExclusiveHours = Annotated[int, Field(ge=0, le=24 * 90), BeforeValidator(_json_integer)]


class _Request(BaseModel):
    """Every command body: an unknown field is refused, never ignored."""

    model_config = ConfigDict(extra="forbid")


class NoBody(_Request):
    """Commands that take no fields: no body, ``{}``, or nothing else."""


class InviteRequest(_Request):
    job_id: Identifier
    freelancer_id: Identifier
    message: Message | None = None
    expires_at: Instant | None = Field(
        default=None,
        description="When the invitation expires: in the future, at most 90 days ahead "
        "(default: 7 days after it is sent)",
    )
    exclusive_hours: ExclusiveHours | None = Field(
        default=None,
        description="Sets the job's exclusive window (hours), as PUT /jobs/{job_id}/policy does",
    )


class DeclineRequest(_Request):
    reason: Reason | None = None


DurationMinutes = Annotated[
    int,
    Field(
        ge=MIN_DURATION_MINUTES,
        le=MAX_DURATION_MINUTES,
        description=f"Length of the meeting in minutes ({MIN_DURATION_MINUTES} to "
        f"{MAX_DURATION_MINUTES}, default {DEFAULT_DURATION_MINUTES})",
    ),
    BeforeValidator(_json_integer),
]


class StartRequest(_Request):
    scheduled_at: Instant | None = Field(
        default=None, description="When the interview takes place: from 7 days ago to a year ahead"
    )
    duration_minutes: DurationMinutes = DEFAULT_DURATION_MINUTES


class RescheduleRequest(_Request):
    scheduled_at: Instant = Field(
        description="The meeting's new date and time: from 7 days ago to a year ahead"
    )
    duration_minutes: DurationMinutes | None = Field(
        default=None, description="The meeting's new length (absent or null: it keeps its length)"
    )
    reason: Reason | None = None


class WithdrawOfferRequest(_Request):
    reason: Reason | None = None


class OfferRequest(_Request):
    amount: Amount
    currency: CurrencyCode
    rate_type: Literal["fixed", "hourly"]
    start_date: date | None = Field(default=None, description="From yesterday to one year ahead")
    message: Message | None = None
    expires_at: Instant | None = Field(
        default=None,
        description="When the offer expires: in the future, at most 90 days ahead "
        "(default: 7 days after it is made)",
    )


class CancelRequest(_Request):
    reason: Reason


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
    duration_minutes: int | None = Field(
        description="Length of the meeting in minutes, once the interview was started"
    )
    reschedules: int = Field(description="How often the meeting was moved since the start")
    offer: OfferPublic | None
    offers_extended: int
    hired_at: datetime | None
    closed_reason: str | None
    cancelled_by: str | None
    updated_at: datetime | None
    erased_fields: list[str] = Field(
        default_factory=list,
        description="Free-text fields whose author was erased: they read null "
        "(message, offer.message, closed_reason)",
    )


class JobPolicyPublic(BaseModel):
    job_id: str
    client_id: str
    exclusive_hours: int | None
    version: int


def interview_public(interview: Any, position: int | None, keys: Keys) -> InterviewPublic:
    """The interview as shown, its free text revealed through ``keys``."""
    texts = reveal_interview(interview, keys)
    offer = None
    if interview.offer is not None:
        offer = OfferPublic(
            **{**interview.offer.__dict__, "message": texts.offer_message},
            expires_at=interview.offer_expires_at,
        )
    return InterviewPublic(
        id=str(interview.id),
        status=interview.status,
        version=interview.version,
        position=position,
        job_id=interview.job_id,
        client_id=interview.client_id,
        freelancer_id=interview.freelancer_id,
        message=texts.message,
        invited_at=interview.invited_at,
        invitation_expires_at=interview.invitation_expires_at,
        accepted_at=interview.accepted_at,
        started_at=interview.started_at,
        scheduled_at=interview.scheduled_at,
        duration_minutes=interview.meeting_minutes,
        reschedules=interview.reschedules,
        offer=offer,
        offers_extended=interview.offers_extended,
        hired_at=interview.hired_at,
        closed_reason=texts.closed_reason,
        cancelled_by=interview.cancelled_by,
        updated_at=interview.updated_at,
        erased_fields=texts.erased_fields,
    )
