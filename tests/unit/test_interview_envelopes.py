"""Every domain event, the second round's included, becomes exactly the published
contract: its type name, its schema_version, and data the contract's model and
JSON Schema file accept with nothing missing and nothing extra."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from uuid import uuid4, uuid5

import jsonschema
import pytest
from pydantic import ValidationError

from services.contracts import SCHEMA_VERSIONS, decode_envelope
from services.contracts.generate import ROOT, schema_file_name
from services.interviews.adapters.envelope import (
    EVENT_ID_NAMESPACE,
    event_id,
    event_id_text,
    outgoing_from_state,
    to_envelope,
    to_outgoing,
)
from services.interviews.adapters.event_states import EventStates
from services.interviews.adapters.group_commit import GroupCommitter
from services.interviews.adapters.kafka_publisher import headers_for
from services.interviews.application import InterviewsApplication
from services.interviews.domain import SYSTEM, CommandContext, Interview
from services.interviews.domain.interview import EVENT_TYPES, TRACE_CONTEXT
from tests.support.interview_domain import CLIENT, FREELANCER, LATER, T0, ctx, extend, invite


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


GIVEN_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def events_with_awkward_values() -> list[Interview.Event]:
    """Texts JSON must escape, sealed text, microseconds, the system's Expired."""
    at = T0 + timedelta(microseconds=123456)
    sealer = lambda text: {"key_id": "k1", "alg": "A256GCM", "nonce": "bm9u", "ciphertext": text}  # noqa: E731
    interview = invite(message='Zoë says "hi" \\ / — 面试 😀')
    interview.decline(CommandContext(FREELANCER, at, "00-corr", "req", sealer), "nope\tnope")
    expired = invite()
    expired.expire(ctx(SYSTEM, LATER))
    return interview.collect_events() + expired.collect_events()[1:]


@pytest.mark.parametrize(
    "event", every_kind_of_event() + events_with_awkward_values(), ids=lambda e: type(e).__name__
)
def test_what_the_relay_sends_is_byte_for_byte_the_contract_model(event: Interview.Event) -> None:
    parties = ("job-1", CLIENT.id, FREELANCER.id)
    object.__setattr__(event, TRACE_CONTEXT, GIVEN_TRACEPARENT)
    envelope = to_envelope(event, position=7, parties=parties)

    outgoing = to_outgoing(event, position=7, parties=parties)

    assert outgoing.value == envelope.to_bytes()
    assert outgoing.key == str(envelope.interview_id).encode()
    assert (outgoing.id, outgoing.position) == (str(envelope.id), envelope.position)
    assert (outgoing.type, outgoing.schema_version) == (envelope.type, envelope.schema_version)
    assert outgoing.correlation_id == envelope.correlation_id
    assert outgoing.traceparent == envelope.traceparent
    assert headers_for(outgoing) == headers_for(envelope)


def test_the_relay_refuses_an_actor_role_the_contract_does_not_know() -> None:
    event = invite().collect_events()[0]
    object.__setattr__(event, "actor_role", "service")
    with pytest.raises(ValidationError):
        to_envelope(event, position=1)
    with pytest.raises(ValueError, match="actor role 'service'"):
        to_outgoing(event, position=1)


def test_event_ids_are_uuid5_of_the_interview_and_version() -> None:
    interview_id = uuid4()
    for version in range(1, 40):
        expected = uuid5(EVENT_ID_NAMESPACE, f"{interview_id}:{version}")
        assert event_id(interview_id, version) == expected
        assert event_id_text(str(interview_id), version) == str(expected)


def popo_application(env: dict[str, str]) -> InterviewsApplication:
    """The application in memory, for its mapper (transcodings, compressor): no
    command runs, so it has no audit positions to ask."""
    return InterviewsApplication(env, audit_store=lambda _: None, committer=GroupCommitter)  # type: ignore[arg-type, return-value]


@pytest.fixture(params=["plain", "compressed"])
def stored_app(request: pytest.FixtureRequest) -> Iterator[InterviewsApplication]:
    env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if request.param == "compressed":
        env["COMPRESSOR_TOPIC"] = "eventsourcing.compressor:ZlibCompressor"
    app = popo_application(env)
    yield app
    app.close()


def test_the_relay_sends_a_stored_event_as_the_model_of_the_event_it_decodes_to(
    stored_app: InterviewsApplication,
) -> None:
    mapper = stored_app.mapper
    states = EventStates(mapper)
    parties = ("job-1", CLIENT.id, FREELANCER.id)
    events = every_kind_of_event() + events_with_awkward_values()
    for position, event in enumerate(events, start=1):
        if position % 2:
            object.__setattr__(event, TRACE_CONTEXT, GIVEN_TRACEPARENT)
        stored = mapper.to_stored_event(event)

        event_class, state = states.decode(stored)
        outgoing = outgoing_from_state(
            event_class, state, str(stored.originator_id), stored.originator_version,
            position, parties,
        )  # fmt: skip

        decoded = mapper.to_domain_event(stored)
        assert event_class is type(decoded)
        assert outgoing == to_outgoing(decoded, position, parties)
        assert outgoing.value == to_envelope(decoded, position, parties).to_bytes()
        assert outgoing.traceparent == (GIVEN_TRACEPARENT if position % 2 else None)


def test_the_relay_upcasts_a_stored_event_of_an_older_class_version() -> None:
    app = popo_application({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    interview = invite()
    interview.accept(ctx(FREELANCER))
    interview.start(ctx(CLIENT), scheduled_at=T0 + timedelta(days=2), duration_minutes=60)
    started = app.mapper.to_stored_event(interview.collect_events()[-1])
    state = json.loads(started.state)
    del state["duration_minutes"], state["class_version"]  # as version 1 stored it
    stored_v1 = dataclasses.replace(started, state=json.dumps(state).encode())

    event_class, fields = EventStates(app.mapper).decode(stored_v1)
    outgoing = outgoing_from_state(
        event_class, fields, str(interview.id), 3, 9, ("job-1", CLIENT.id, FREELANCER.id)
    )

    assert json.loads(outgoing.value)["data"]["duration_minutes"] == 30
    decoded = app.mapper.to_domain_event(stored_v1)
    assert outgoing == to_outgoing(decoded, 9, ("job-1", CLIENT.id, FREELANCER.id))
    app.close()
