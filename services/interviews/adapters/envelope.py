"""Turns recorded domain events into the published integration envelope.

One conversion, ``state_fields``, with two outputs: the validated
``EventEnvelope`` model for the consumers that read the log in-process, and
``OutgoingEvent`` for the relay, whose value is the very bytes
``EventEnvelope.to_bytes()`` writes, serialised from the same fields without
building the model. The relay converts every event of the log, from its stored
state without building the domain event (``adapters/event_states.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import cache
from hashlib import sha1
from typing import Any, NamedTuple, get_args
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic_core import to_json, to_jsonable_python

from ...contracts import SCHEMA_VERSIONS, ActorRef, EventEnvelope
from ..domain import Interview
from ..domain.interview import BASE_FIELDS, EVENT_TYPES, META_FIELDS, TRACE_CONTEXT

EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:interviews:event")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
# What ``ActorRef.role`` accepts: the relay checks it as the model would.
ACTOR_ROLES = frozenset(get_args(ActorRef.model_fields["role"].annotation))


def event_id(interview_id: UUID, version: int) -> UUID:
    """Deterministic, so a republished event keeps its id and consumers dedupe it."""
    return UUID(event_id_text(str(interview_id), version))


def event_id_text(interview_id: str, version: int) -> str:
    """``event_id`` as text: the UUID version 5 of ``"{interview_id}:{version}"`` in
    ``EVENT_ID_NAMESPACE`` (RFC 4122), formatted without building UUID objects."""
    h = sha1(_NAMESPACE_BYTES + f"{interview_id}:{version}".encode()).hexdigest()
    # The version nibble is 5; the variant's two top bits are 10.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def envelope_fields(
    event: Interview.Event, position: int, parties: tuple[str, str, str] | None = None
) -> dict[str, Any]:
    """The envelope of ``event`` as a dict in the contract's field order, with ids as
    text and ``data`` as JSON values.

    ``parties`` = (job_id, client_id, freelancer_id) for events after ``Invited``;
    the feed keeps them per interview (they never change after the invitation).
    """
    fields = state_fields(
        type(event),
        event.__dict__,
        str(event.originator_id),
        event.originator_version,
        position,
        parties,
    )
    fields["data"] = to_jsonable_python(fields["data"])
    return fields


def state_fields(
    event_class: type[Interview.Event],
    state: Mapping[str, Any],
    interview_id: str,
    version: int,
    position: int,
    parties: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """``envelope_fields`` of an event given by its class and its fields (an event's
    ``__dict__``, or a stored event's decoded state: ``adapters/event_states.py``),
    with ``data`` holding the fields' own values."""
    event_type = EVENT_TYPES[event_class]
    if event_class is Interview.Invited:
        job_id, client_id = state["job_id"], state["client_id"]
        freelancer_id = state["freelancer_id"]
        data: dict[str, Any] = {"message": state["message"], "expires_at": state["expires_at"]}
    elif parties is not None:
        job_id, client_id, freelancer_id = parties
        data = {name: state[name] for name in _data_fields(event_class)}
    else:
        raise ValueError(f"parties are needed for {event_type} of {interview_id}")
    return {
        "id": event_id_text(interview_id, version),
        "type": event_type,
        "schema_version": SCHEMA_VERSIONS[event_type],
        "interview_id": interview_id,
        "version": version,
        "position": position,
        "occurred_at": state["timestamp"],
        "actor": {"id": state["actor_id"], "role": state["actor_role"]},
        "job_id": job_id,
        "client_id": client_id,
        "freelancer_id": freelancer_id,
        "correlation_id": state["correlation_id"],
        "causation_id": state["causation_id"],
        "data": data,
    }


def to_envelope(
    event: Interview.Event, position: int, parties: tuple[str, str, str] | None = None
) -> EventEnvelope:
    """The validated envelope of ``event`` (``parties`` as for ``envelope_fields``)."""
    envelope = EventEnvelope.model_validate(envelope_fields(event, position, parties))
    return envelope.traced(event.__dict__.get(TRACE_CONTEXT))


class OutgoingEvent(NamedTuple):
    """One interview event as the relay sends it: key, value and what its headers say."""

    position: int
    id: str  # the event's
    key: bytes  # the interview id
    value: bytes  # the envelope's JSON: exactly ``EventEnvelope.to_bytes()``
    type: str
    schema_version: int
    correlation_id: str
    traceparent: str | None  # of the command that recorded the event, where known


def to_outgoing(
    event: Interview.Event, position: int, parties: tuple[str, str, str] | None = None
) -> OutgoingEvent:
    """``event`` ready for Kafka (``parties`` as for ``envelope_fields``)."""
    return outgoing_from_state(
        type(event),
        event.__dict__,
        str(event.originator_id),
        event.originator_version,
        position,
        parties,
    )


def outgoing_from_state(
    event_class: type[Interview.Event],
    state: Mapping[str, Any],
    interview_id: str,
    version: int,
    position: int,
    parties: tuple[str, str, str] | None = None,
) -> OutgoingEvent:
    """An event given as for ``state_fields``, ready for Kafka. The fields are the
    model's by construction; the actor's role is the one the model would refuse.
    ``to_json`` writes ``data``'s values as ``to_jsonable_python`` would convert them,
    so the value is the model's bytes without the conversion pass."""
    fields = state_fields(event_class, state, interview_id, version, position, parties)
    role = fields["actor"]["role"]
    if role not in ACTOR_ROLES:
        raise ValueError(f"actor role {role!r} of {fields['id']} is not one of the contract's")
    return OutgoingEvent(
        position,
        fields["id"],
        interview_id.encode(),
        to_json(fields),
        fields["type"],
        fields["schema_version"],
        fields["correlation_id"],
        state.get(TRACE_CONTEXT),
    )


@cache
def _data_fields(event_class: type[Any]) -> tuple[str, ...]:
    """What ``Interview.Event.data()`` returns, by name, computed once per class
    (the relay converts every event; ``dataclasses.fields`` per event is slow)."""
    return tuple(
        f.name
        for f in dataclasses.fields(event_class)
        if f.name not in META_FIELDS and f.name not in BASE_FIELDS
    )
