"""``decode_envelope``: one pass for a good message, the same verdict as before for
poison (the consumers dead-letter on it, with its reason in the headers)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.common.privacy import PERSONAL_FIELDS
from services.common.revealed import typed_data
from services.contracts import (
    DATA_MODELS,
    SCHEMA_VERSIONS,
    EventEnvelope,
    UnsupportedEventError,
    decode_envelope,
)

from .test_contract_files import SAMPLE_DATA, sample


def envelope_json(event_type: str, **changes: Any) -> dict[str, Any]:
    return sample(event_type) | {"data": SAMPLE_DATA[event_type]} | changes


@pytest.mark.parametrize("event_type", sorted(SAMPLE_DATA))
def test_a_current_message_decodes_to_the_envelope_it_was_made_from(event_type: str) -> None:
    payload = envelope_json(event_type)
    envelope = decode_envelope(json.dumps(payload).encode())
    assert envelope.type == event_type
    assert envelope.schema_version == SCHEMA_VERSIONS[event_type]
    assert str(envelope.id) == payload["id"]
    assert envelope.data == payload["data"]
    assert envelope.traceparent is None


def test_an_older_cancellation_gets_the_fields_its_version_lacked() -> None:
    payload = envelope_json(
        "interview.cancelled", schema_version=1, data={"reason": "position filled"}
    )
    envelope = decode_envelope(json.dumps(payload))
    assert envelope.data == {
        "reason": "position filled",
        "cancelled_by": payload["actor"]["role"],
        "job_closed": False,
    }


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff not json", "not JSON"),
        # Nested past the JSON parser's recursion limit: dead-lettered, not a batch
        # failing (and replayed) forever.
        (b"[" * 20_000 + b"]" * 20_000, "not JSON: nested too deep"),
        (
            b'{"type": "interview.invited", "data": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
            "not JSON: nested too deep",
        ),  # fmt: skip
        (b"[1, 2]", "not a JSON object"),
        (json.dumps(envelope_json("interview.invited", type="interview.teleported")), "unknown"),
        (
            json.dumps(envelope_json("interview.invited", schema_version=99)),
            "unsupported schema_version 99 for interview.invited",
        ),
        (json.dumps(envelope_json("interview.invited", schema_version=0)), "unsupported"),
        # JSON's lax reading would take these for 1: the contract's version is a number.
        (json.dumps(envelope_json("interview.invited", schema_version="1")), "unsupported"),
        (json.dumps(envelope_json("interview.invited", schema_version=True)), "unsupported"),
        (json.dumps(envelope_json("interview.invited", version="two")), "invalid fields"),
        (
            json.dumps(envelope_json("interview.expired", data={"what": "lunch"})),
            "invalid fields: 1 error(s): what:",
        ),
        (
            json.dumps(envelope_json("interview.invited", data={"message": 3})),
            "invalid fields",
        ),
        (json.dumps(envelope_json("interview.invited", extra=1)), "invalid fields"),
        # An older version to upcast whose actor is no object: refused, never a crash.
        (
            json.dumps(
                envelope_json(
                    "interview.cancelled", schema_version=1, actor="x", data={"reason": "r"}
                )
            ),
            "invalid fields: 1 error(s): actor:",
        ),
    ],
)
def test_poison_is_refused_with_its_reason(raw: bytes | str, reason: str) -> None:
    with pytest.raises(UnsupportedEventError) as refused:
        decode_envelope(raw)
    assert reason in str(refused.value)


def test_a_newer_version_is_refused_even_when_its_fields_look_valid() -> None:
    # A consumer must not guess at a version it does not know.
    payload = envelope_json("interview.accepted", schema_version=2)
    with pytest.raises(UnsupportedEventError, match="knows up to 1"):
        decode_envelope(json.dumps(payload))


def test_an_older_version_is_upcast_on_the_envelope_it_decodes_to() -> None:
    """The fast path upcasts the decoded envelope's own ``data``: the same envelope
    the step-by-step path makes, and the trace that carries it is kept by a copy."""
    payload = envelope_json("interview.started", schema_version=1, data={"scheduled_at": None})
    envelope = decode_envelope(json.dumps(payload))
    assert envelope.data == {"scheduled_at": None, "duration_minutes": 30}
    assert envelope.model_copy().traced("tp").model_copy().traceparent == "tp"


@pytest.mark.parametrize("event_type", sorted(SAMPLE_DATA))
def test_the_facts_a_consumer_reads_are_those_decoding_validated(event_type: str) -> None:
    """``typed_data`` of a decoded event is the model decoding validated (not a second
    validation), with the same facts as validating the data without its texts."""
    envelope = decode_envelope(json.dumps(envelope_json(event_type)))
    facts = typed_data(envelope)
    assert facts is envelope.decoded_data() is envelope.typed_data()
    texts = PERSONAL_FIELDS.get(event_type, ())
    unsealed = envelope.model_copy(update={"data": dict(envelope.data)})
    assert unsealed.decoded_data() is None  # a copy with other data validates its own
    again = typed_data(unsealed)
    assert type(again) is type(facts)
    assert again.model_dump(exclude=set(texts)) == facts.model_dump(exclude=set(texts))


def test_an_upcast_older_event_keeps_the_facts_of_its_upcast_data() -> None:
    payload = envelope_json(
        "interview.cancelled", schema_version=1, data={"reason": "position filled"}
    )
    envelope = decode_envelope(json.dumps(payload))
    assert (
        typed_data(envelope).model_dump()
        == DATA_MODELS["interview.cancelled"].model_validate(envelope.data).model_dump()
    )


def test_an_envelope_built_in_code_has_no_decoded_data_and_validates_it() -> None:
    payload = envelope_json("interview.started")
    built = EventEnvelope.model_validate(payload)
    assert built.decoded_data() is None
    assert typed_data(built) == decode_envelope(json.dumps(payload)).decoded_data()
