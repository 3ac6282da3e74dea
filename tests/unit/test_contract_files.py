"""The committed JSON Schemas and AsyncAPI document match the pydantic contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import jsonschema
import pytest
import yaml

from services.contracts import EVENT_TYPES, SCHEMA_VERSIONS, EventEnvelope, decode_envelope
from services.contracts.generate import ROOT, schema_file_name, stale_files

pytestmark = pytest.mark.unit

SAMPLE_DATA = {
    "interview.invited": {"message": "hi", "expires_at": "2026-12-01T12:00:00Z"},
    "interview.accepted": {},
    "interview.declined": {"reason": None},
    "interview.started": {"scheduled_at": None},
    "interview.offer_extended": {
        "amount": "1500.00",
        "currency": "EUR",
        "rate_type": "fixed",
        "start_date": "2027-01-04",
        "message": None,
        "expires_at": None,
    },
    "interview.offer_accepted": {},
    "interview.offer_declined": {"reason": "too low", "status": "accepted"},
    "interview.cancelled": {"reason": "position filled", "cancelled_by": "client"},
    "interview.expired": {"what": "invitation"},
    "interview.rescheduled": {
        "scheduled_at": "2026-12-08T15:00:00+00:00",
        "duration_minutes": 45,
        "previous_scheduled_at": "2026-12-07T15:00:00+00:00",
        "reason": "a clash",
    },
    "interview.offer_withdrawn": {"reason": None, "status": "in_progress"},
}


def sample(event_type: str) -> dict[str, object]:
    envelope = EventEnvelope(
        id=uuid4(),
        type=event_type,  # type: ignore[arg-type]
        schema_version=SCHEMA_VERSIONS[event_type],
        interview_id=uuid4(),
        version=2,
        position=17,
        occurred_at=datetime(2026, 11, 25, 12, tzinfo=UTC),
        actor={"id": "c1", "role": "client"},  # type: ignore[arg-type]
        job_id="j1",
        client_id="c1",
        freelancer_id="f1",
        correlation_id="r1",
        causation_id="r1",
        data=SAMPLE_DATA[event_type],
    )
    envelope.typed_data()
    return json.loads(envelope.to_bytes())  # type: ignore[no-any-return]


def test_committed_contract_files_are_up_to_date() -> None:
    assert stale_files() == [], "run `python -m services.contracts.generate` and commit"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_a_published_envelope_validates_against_its_schema_file(event_type: str) -> None:
    schema = json.loads((ROOT / "schemas" / schema_file_name(event_type)).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(sample(event_type), schema, cls=jsonschema.Draft202012Validator)


def test_a_schema_file_refuses_another_types_data() -> None:
    schema = json.loads((ROOT / "schemas" / schema_file_name("interview.expired")).read_text())
    wrong = sample("interview.expired") | {"data": {"what": "lunch"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    ("event_type", "data", "upcast"),
    [
        ("interview.started", {"scheduled_at": None}, {"duration_minutes": 30}),
        ("interview.offer_declined", {"reason": None}, {"status": "in_progress"}),
        (
            "interview.cancelled",
            {"reason": "gone"},
            {"cancelled_by": "client", "job_closed": False},
        ),
    ],
)
def test_an_event_of_an_older_schema_version_is_read_in_the_current_shape(
    event_type: str, data: dict[str, object], upcast: dict[str, object]
) -> None:
    old = sample(event_type) | {"schema_version": 1, "data": data}
    envelope = decode_envelope(json.dumps(old))
    assert envelope.typed_data().model_dump(include=set(upcast)) == upcast


def test_asyncapi_document_names_the_topics_and_every_message() -> None:
    doc = yaml.safe_load((ROOT / "asyncapi.yaml").read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {"interviews.events", "interviews.events.dlq", "privacy.erasures"}
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert set(EVENT_TYPES) | {"subject.erased"} <= names
    for message in doc["components"]["messages"].values():
        ref = message["payload"].get("$ref")
        if ref:
            assert (ROOT / ref).exists(), ref
    for operation in doc["operations"].values():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"#/channels/{channel}/messages/")
