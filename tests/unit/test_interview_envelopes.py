"""Every domain event, the second round's included, becomes exactly the published
contract: its type name, its schema_version, and data the contract's model and
JSON Schema file accept with nothing missing and nothing extra."""

from __future__ import annotations

import json
from datetime import timedelta

import jsonschema
import pytest

from services.contracts import SCHEMA_VERSIONS, decode_envelope
from services.contracts.generate import ROOT, schema_file_name
from services.interviews.adapters.envelope import to_envelope
from services.interviews.domain import Interview
from services.interviews.domain.interview import EVENT_TYPES
from tests.support.interview_domain import CLIENT, FREELANCER, T0, ctx, extend, invite


def every_kind_of_event() -> list[Interview.Event]:
    interview = invite()
    interview.accept(ctx(FREELANCER))
    extend(interview)
    interview.withdraw_offer(ctx(CLIENT), "re-scoped")
    interview.start(ctx(CLIENT), scheduled_at=T0 + timedelta(days=2), duration_minutes=60)
    interview.reschedule(ctx(FREELANCER), T0 + timedelta(days=3), 90, "a clash")
    extend(interview)
    interview.decline_offer(ctx(FREELANCER), "too low")
    extend(interview)
    interview.accept_offer(ctx(FREELANCER))
    events = interview.collect_events()
    declined = invite(interview_id=interview.id)
    declined.decline(ctx(FREELANCER), "busy")
    cancelled = invite()
    cancelled.cancel(ctx(CLIENT), "filled")
    return events + declined.collect_events()[1:] + cancelled.collect_events()[1:]


EXPECTED_DATA = {
    "interview.started": {"scheduled_at": "2026-11-27T12:00:00Z", "duration_minutes": 60},
    "interview.rescheduled": {
        "scheduled_at": "2026-11-28T12:00:00Z",
        "duration_minutes": 90,
        "previous_scheduled_at": "2026-11-27T12:00:00Z",
        "reason": "a clash",
    },
    "interview.offer_withdrawn": {"reason": "re-scoped", "status": "accepted"},
    "interview.offer_declined": {"reason": "too low", "status": "in_progress"},
}


def test_every_event_class_is_published_under_its_contract_name() -> None:
    declared = {
        value
        for value in vars(Interview).values()
        if isinstance(value, type) and issubclass(value, Interview.Event)
        # The base class, and the library's default creation event (Invited creates).
        if value not in (Interview.Event, Interview.Created)
    }
    assert set(EVENT_TYPES) == declared
    assert sorted(EVENT_TYPES.values()) == sorted(SCHEMA_VERSIONS)


@pytest.mark.parametrize("event", every_kind_of_event(), ids=lambda e: type(e).__name__)
def test_each_event_becomes_exactly_its_contract(event: Interview.Event) -> None:
    envelope = to_envelope(event, position=10 + event.originator_version,
                           parties=("job-1", CLIENT.id, FREELANCER.id))  # fmt: skip

    assert envelope.schema_version == SCHEMA_VERSIONS[envelope.type]
    typed = envelope.typed_data()
    # Cancelled's job_closed (v3) comes with the jobs that close; until then it defaults.
    if envelope.type != "interview.cancelled":
        assert typed.model_dump(mode="json") == envelope.data, "no field left to a default"
    published = json.loads(envelope.to_bytes())
    schema = json.loads((ROOT / "schemas" / schema_file_name(envelope.type)).read_text())
    jsonschema.validate(published, schema, cls=jsonschema.Draft202012Validator)
    assert decode_envelope(envelope.to_bytes()) == envelope
    if envelope.type in EXPECTED_DATA:
        assert json.loads(typed.model_dump_json()) == EXPECTED_DATA[envelope.type]
