"""Turns recorded domain events into the published integration envelope."""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic_core import to_jsonable_python

from ...contracts import SCHEMA_VERSIONS, ActorRef, EventEnvelope
from ..domain import Interview
from ..domain.interview import BASE_FIELDS, EVENT_TYPES, META_FIELDS, TRACE_CONTEXT

EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:interviews:event")


def event_id(interview_id: UUID, version: int) -> UUID:
    """Deterministic, so a republished event keeps its id and consumers dedupe it."""
    return uuid5(EVENT_ID_NAMESPACE, f"{interview_id}:{version}")


def to_envelope(
    event: Interview.Event, position: int, parties: tuple[str, str, str] | None = None
) -> EventEnvelope:
    """``parties`` = (job_id, client_id, freelancer_id) for events after ``Invited``.

    The relay keeps them per interview (they never change after the invitation).
    """
    event_type = EVENT_TYPES[type(event)]
    if isinstance(event, Interview.Invited):
        job_id, client_id, freelancer_id = event.job_id, event.client_id, event.freelancer_id
    elif parties is not None:
        job_id, client_id, freelancer_id = parties
    else:
        raise ValueError(f"parties are needed for {event_type} of {event.originator_id}")
    data = {name: getattr(event, name) for name in _data_fields(type(event))}
    if isinstance(event, Interview.Invited):
        data = {"message": event.message, "expires_at": event.expires_at}
    return EventEnvelope(
        id=event_id(event.originator_id, event.originator_version),
        type=event_type,
        schema_version=SCHEMA_VERSIONS[event_type],
        interview_id=event.originator_id,
        version=event.originator_version,
        position=position,
        occurred_at=event.timestamp,
        actor=ActorRef(id=event.actor_id, role=event.actor_role),
        job_id=job_id,
        client_id=client_id,
        freelancer_id=freelancer_id,
        correlation_id=event.correlation_id,
        causation_id=event.causation_id,
        data=_jsonable(data),
    ).traced(getattr(event, TRACE_CONTEXT, None))


@cache
def _data_fields(event_class: type[Any]) -> tuple[str, ...]:
    """What ``Interview.Event.data()`` returns, by name, computed once per class
    (the relay converts every event; ``dataclasses.fields`` per event is slow)."""
    return tuple(
        f.name
        for f in dataclasses.fields(event_class)
        if f.name not in META_FIELDS and f.name not in BASE_FIELDS
    )


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return to_jsonable_python(data)
