"""Integration event envelope (Kafka value: JSON, UTF-8), versioned pydantic models.

The envelope is DESIGN's contract; ``data`` is validated per event type by the
models in ``DATA_MODELS``. ``schema_version`` is per event type: a consumer
refuses (dead-letters) a version newer than it knows.
"""

from __future__ import annotations

import functools
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

TOPIC = "interviews.events"
DLQ_TOPIC = "interviews.events.dlq"
# ``subject.erased`` announcements (key = the erased person's id), see asyncapi.yaml.
ERASURES_TOPIC = "privacy.erasures"
CONTENT_TYPE = "application/json"


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SealedText(BaseModel):
    """Personal free text sealed with its author's key (AES-256-GCM, the key id as
    associated data): see services/common/privacy.py. A consumer reveals it through
    the key service; once the author is erased it cannot be read by anyone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(min_length=1, max_length=64)
    alg: Literal["A256GCM"]
    nonce: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    ciphertext: str = Field(pattern=r"^[A-Za-z0-9_-]+$")


# A free-text field: sealed (current schema versions) or, in events recorded
# before sealing, the plain text.
PersonalText = str | SealedText
PERSONAL_TEXT = "sealed with the author's key (a plain string in events recorded before sealing)"


class InvitedData(_Data):
    message: PersonalText | None = Field(default=None, description=PERSONAL_TEXT)
    expires_at: datetime | None = None


class AcceptedData(_Data):
    pass


class DeclinedData(_Data):
    reason: PersonalText | None = Field(default=None, description=PERSONAL_TEXT)


DURATION_MINUTES = Field(
    default=30, ge=15, le=240, description="length of the meeting in minutes (15-240)"
)
# The states an interview returns to when its offer is declined or withdrawn.
ReturnedStatus = Literal["accepted", "in_progress"]


class StartedData(_Data):
    scheduled_at: datetime | None = None
    duration_minutes: int = DURATION_MINUTES


class RescheduledData(_Data):
    scheduled_at: datetime
    duration_minutes: int = DURATION_MINUTES
    previous_scheduled_at: datetime | None = None
    reason: PersonalText | None = Field(default=None, description=PERSONAL_TEXT)


class OfferExtendedData(_Data):
    amount: Decimal
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    rate_type: Literal["fixed", "hourly"]
    start_date: date | None = None
    message: PersonalText | None = Field(default=None, description=PERSONAL_TEXT)
    expires_at: datetime | None = None


class OfferAcceptedData(_Data):
    pass


class OfferDeclinedData(_Data):
    reason: PersonalText | None = Field(default=None, description=PERSONAL_TEXT)
    status: ReturnedStatus = Field(
        default="in_progress",
        description="the state the interview returns to: the one before the offer "
        "(schema_version 2; version 1 events were always in_progress)",
    )


class OfferWithdrawnData(_Data):
    reason: PersonalText | None = Field(default=None, description=PERSONAL_TEXT)
    status: ReturnedStatus = Field(
        description="the state the interview returns to: the one before the offer"
    )


class CancelledData(_Data):
    reason: PersonalText = Field(description=PERSONAL_TEXT)
    cancelled_by: str = Field(description="role of the party who cancelled (schema_version 2)")
    job_closed: bool = Field(
        default=False,
        description="the client closed the job, which cancelled every open interview of it "
        "(schema_version 3; both parties are told)",
    )


class ExpiredData(_Data):
    what: Literal["invitation", "offer"]


DATA_MODELS: dict[str, type[_Data]] = {
    "interview.invited": InvitedData,
    "interview.accepted": AcceptedData,
    "interview.declined": DeclinedData,
    "interview.started": StartedData,
    "interview.offer_extended": OfferExtendedData,
    "interview.offer_accepted": OfferAcceptedData,
    "interview.offer_declined": OfferDeclinedData,
    "interview.cancelled": CancelledData,
    "interview.expired": ExpiredData,
    "interview.rescheduled": RescheduledData,
    "interview.offer_withdrawn": OfferWithdrawnData,
}
EVENT_TYPES: tuple[str, ...] = tuple(DATA_MODELS)
# Sealed free text (#17) bumped every type with a personal field by one:
# invited, declined, rescheduled, offer_extended, offer_withdrawn 2,
# offer_declined 3, cancelled 4 (older versions carry plain strings).
SCHEMA_VERSIONS: dict[str, int] = {t: 1 for t in EVENT_TYPES} | {
    "interview.invited": 2,
    "interview.declined": 2,
    "interview.rescheduled": 2,
    "interview.offer_extended": 2,
    "interview.offer_withdrawn": 2,
    "interview.cancelled": 4,
    "interview.started": 2,
    "interview.offer_declined": 3,
}


class ActorRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    role: Literal["client", "freelancer", "auditor", "admin", "system"]


class EventEnvelope(BaseModel):
    """One interview event as published on ``interviews.events``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: UUID = Field(description="unique event id (stable across republishing)")
    type: Literal[
        "interview.invited",
        "interview.accepted",
        "interview.declined",
        "interview.started",
        "interview.offer_extended",
        "interview.offer_accepted",
        "interview.offer_declined",
        "interview.cancelled",
        "interview.expired",
        "interview.rescheduled",
        "interview.offer_withdrawn",
    ]
    schema_version: int = Field(ge=1)
    interview_id: UUID
    version: int = Field(ge=1, description="the interview's version after this event")
    position: int = Field(ge=1, description="the event store's global notification id")
    occurred_at: datetime
    actor: ActorRef
    job_id: str
    client_id: str
    freelancer_id: str
    correlation_id: str
    causation_id: str
    data: dict[str, Any]
    # The W3C traceparent of the command that recorded the event, where known. It
    # travels beside the envelope (a Kafka header, or in-process), never in its JSON.
    # A slot, not a pydantic private attribute: those are set up in Python for every
    # envelope validated, a third of the cost of decoding one. ``_typed``: the typed
    # ``data`` ``decode_envelope`` validated, with the dict it validated.
    __slots__ = ("_traceparent", "_typed")

    @property
    def traceparent(self) -> str | None:
        traceparent: str | None = getattr(self, "_traceparent", None)  # None: never traced
        return traceparent

    def traced(self, traceparent: str | None) -> EventEnvelope:
        """This envelope, carrying ``traceparent`` beside its fields."""
        object.__setattr__(self, "_traceparent", traceparent)
        return self

    def __copy__(self) -> EventEnvelope:
        """A copy (``model_copy``) keeps the trace that carried the event."""
        copied = super().__copy__()
        return copied.traced(self.traceparent)

    def __eq__(self, other: object) -> bool:
        """Equal fields: the event is the same whichever trace carried it."""
        if not isinstance(other, EventEnvelope):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.id)

    def typed_data(self) -> _Data:
        decoded = self.decoded_data()
        if decoded is not None:
            return decoded
        return DATA_MODELS[self.type].model_validate(self.data)

    def decoded_data(self) -> _Data | None:
        """The typed ``data`` that ``decode_envelope`` validated when it read this
        envelope from its message (frozen, so shared), while ``data`` is still the dict
        it validated; None for an envelope built otherwise (or a copy with new data)."""
        typed: tuple[dict[str, Any], _Data] | None = getattr(self, "_typed", None)
        if typed is None or typed[0] is not self.data:
            return None
        return typed[1]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class UnsupportedEventError(ValueError):
    """A message that is not a valid event of a type and version we know (poison)."""


def decode_envelope(raw: bytes | str) -> EventEnvelope:
    """Parses and fully validates a message; raises UnsupportedEventError if poison.

    A well-formed message of a known version is parsed and validated in one pass
    (pydantic's JSON parser), its ``data`` upcast in place (the dict is the new
    envelope's own) and checked against its type's model; anything that pass
    refuses or cannot judge alone is decoded step by step (``_decode_checked``),
    which says why it is poison."""
    try:
        # Strict: the lax JSON reading would coerce a string or bool in a number's
        # place (``"schema_version": "1"``), which the step-by-step path refuses.
        envelope = EventEnvelope.model_validate_json(raw, strict=True)
    except ValidationError:
        return _decode_checked(raw)
    event_type = envelope.type
    version = envelope.schema_version
    current = SCHEMA_VERSIONS[event_type]
    if version > current:
        return _decode_checked(raw)
    data = envelope.data
    if version < current:
        _upcast(event_type, data, envelope.actor.role)
    if data or event_type not in _EMPTY_DATA_VALID:
        try:
            typed = DATA_MODELS[event_type].model_validate(data)
        except ValidationError:
            return _decode_checked(raw)
    else:
        typed = _empty_data(event_type)
    # Kept for the consumers that read the facts (``decoded_data``): not validated twice.
    object.__setattr__(envelope, "_typed", (data, typed))
    return envelope


@functools.cache
def _empty_data(event_type: str) -> _Data:
    """The typed ``data`` of an event type whose fields are all optional, sent empty."""
    return DATA_MODELS[event_type].model_validate({})


def _decode_checked(raw: bytes | str) -> EventEnvelope:
    """``decode_envelope`` step by step: the type, then the version, then the fields,
    naming the first that makes the message poison."""
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise UnsupportedEventError(f"not JSON: {error}") from None
    except RecursionError:  # nested past the parser's depth: poison, never a crash
        raise UnsupportedEventError("not JSON: nested too deep to read") from None
    if not isinstance(payload, dict):
        raise UnsupportedEventError("not a JSON object")
    event_type = payload.get("type")
    if event_type not in DATA_MODELS:
        raise UnsupportedEventError(f"unknown event type {event_type!r}")
    version = payload.get("schema_version")
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not 1 <= version <= SCHEMA_VERSIONS[event_type]
    ):
        raise UnsupportedEventError(
            f"unsupported schema_version {version!r} for {event_type} "
            f"(this consumer knows up to {SCHEMA_VERSIONS[event_type]})"
        )
    data = payload.get("data")
    if version < SCHEMA_VERSIONS[event_type] and isinstance(data, dict):
        actor = payload.get("actor")
        _upcast(event_type, data, actor.get("role") if isinstance(actor, dict) else None)
    try:
        envelope = EventEnvelope.model_validate(payload)
        envelope.typed_data()
    except ValidationError as error:
        # Where and why only: the values may be what a user wrote, and this text is
        # logged and put on the dead-letter message's headers.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)
        )
        raise UnsupportedEventError(
            f"invalid fields: {error.error_count()} error(s): {problems}"
        ) from None
    return envelope


def _upcast(event_type: str, data: dict[str, Any], role: Any) -> None:
    """Brings the ``data`` of an older schema_version to the current shape, in place.

    ``interview.cancelled`` v1 had no ``cancelled_by`` (the actor's ``role`` says it),
    v1 and v2 no ``job_closed`` (false);
    ``interview.started`` v1 had no ``duration_minutes`` (the default, 30, applies);
    ``interview.offer_declined`` v1 always returned the interview to ``in_progress``.
    Versions before sealing (#17) carry free text as plain strings, which the
    current models still accept: nothing to change for them.
    """
    if event_type == "interview.cancelled":
        data.setdefault("cancelled_by", "unknown" if role is None else role)
        data.setdefault("job_closed", False)
    elif event_type == "interview.started":
        data.setdefault("duration_minutes", 30)
    elif event_type == "interview.offer_declined":
        data.setdefault("status", "in_progress")


# The types whose model takes an empty ``data`` as it is (every field optional):
# for those, ``{}`` needs no validating.
_EMPTY_DATA_VALID: frozenset[str] = frozenset(
    event_type
    for event_type, model in DATA_MODELS.items()
    if not any(f.is_required() for f in model.model_fields.values())
)
