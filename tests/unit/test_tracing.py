"""The tracing set-up's small rules: which spans start a trace, what a
``traceparent`` header may be, what the relay writes on a Kafka message."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind

from services.common import tracing
from services.common.kafka import MemoPartitioner
from services.common.tracing import (
    NoOrphanClientSpans,
    _exporters,
    context_from,
    continued_span,
    current_traceparent,
    setup_tracing,
    traceparent_of,
)
from services.contracts import EventEnvelope
from services.interviews.adapters.envelope import OutgoingEvent
from services.interviews.adapters.kafka_publisher import KafkaPublisher, RecordSender, headers_for

pytestmark = pytest.mark.unit

GIVEN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def sampled(kind: SpanKind, parent: str | None) -> bool:
    tracer = TracerProvider(sampler=NoOrphanClientSpans(ALWAYS_ON)).get_tracer("t")
    with tracer.start_as_current_span("s", context=context_from(parent), kind=kind) as span:
        return span.is_recording()


def test_a_database_statement_outside_any_command_starts_no_trace() -> None:
    assert not sampled(SpanKind.CLIENT, None)
    assert sampled(SpanKind.CLIENT, GIVEN), "inside a command's trace it is kept"
    assert sampled(SpanKind.SERVER, None), "a request starts a trace"
    assert sampled(SpanKind.INTERNAL, None)


@pytest.mark.parametrize(
    "value",
    [None, "", "nonsense", "00-" + "0" * 32 + "-b7ad6b7169203331-01", GIVEN[:-1], b"\xff" * 55],
)
def test_anything_but_a_valid_traceparent_names_no_parent(value: str | bytes | None) -> None:
    assert context_from(value) is None


def test_a_continued_span_keeps_the_trace_id_and_is_its_own_span() -> None:
    setup_tracing("tests")  # the process's provider (any test may have set it up)
    with continued_span("x", GIVEN):
        current = current_traceparent()
    assert current is not None
    assert current.split("-")[1] == GIVEN.split("-")[1]
    assert current.split("-")[2] != GIVEN.split("-")[2]


def envelope(correlation_id: str) -> EventEnvelope:
    return EventEnvelope(
        id=uuid.uuid4(),
        type="interview.accepted",
        schema_version=1,
        interview_id=uuid.uuid4(),
        version=2,
        position=3,
        occurred_at=datetime.now(UTC),
        actor={"id": "f", "role": "freelancer"},  # type: ignore[arg-type]
        job_id="j",
        client_id="c",
        freelancer_id="f",
        correlation_id=correlation_id,
        causation_id="x",
        data={},
    )


def test_the_kafka_message_carries_the_producer_span_s_traceparent() -> None:
    headers = dict(headers_for(envelope("corr-1"), GIVEN))
    assert headers["traceparent"] == GIVEN.encode()
    assert "traceparent" not in dict(headers_for(envelope("corr-1")))
    # An event recorded before traces were stored: a correlation id that is one.
    assert dict(headers_for(envelope(GIVEN)))["traceparent"] == GIVEN.encode()


def test_the_traceparent_travels_beside_the_envelope_never_in_its_json() -> None:
    event = envelope("corr-1")
    traced = event.model_copy().traced(GIVEN)
    assert traced.traceparent == GIVEN
    assert "traceparent" not in json.loads(traced.to_bytes())
    assert traced == event, "the same event whichever trace carried it"


def test_console_spans_are_one_json_object_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    (exporter,) = _exporters()
    out = io.StringIO()
    exporter.out = out  # type: ignore[attr-defined]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("one"):
        pass
    with provider.get_tracer("t").start_as_current_span("two"):
        pass
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["one", "two"]


def test_no_exporter_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert _exporters() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert _exporters() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    assert [type(e).__name__ for e in _exporters()] == ["OTLPSpanExporter", "ConsoleSpanExporter"]


class _Sent:
    """Stands for kafka-python's producer: keeps each message's headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, bytes]] = []

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[Any]) -> None:
        self.headers.append(dict(headers))


def _publisher(producer: _Sent) -> KafkaPublisher:
    publisher = object.__new__(KafkaPublisher)  # no broker: only publish() is used
    publisher._producer = producer  # type: ignore[assignment]  # the fake above
    publisher.topic = "interviews.events"
    publisher._records = RecordSender(producer, publisher.topic, MemoPartitioner())
    return publisher


def _outgoing(traceparent: str | None) -> OutgoingEvent:
    return OutgoingEvent(
        position=7,
        id=str(uuid.uuid4()),
        key=b"i-1",
        value=b"{}",
        type="Invited",
        schema_version=1,
        correlation_id="corr-1",
        traceparent=traceparent,
    )


def test_with_nothing_exported_the_relay_passes_the_stored_traceparent_on(
    spans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "_exporting", False)  # as with OTEL_TRACES_EXPORTER unset
    sent = _Sent()
    _publisher(sent).publish(_outgoing(GIVEN))
    _publisher(sent).publish(_outgoing(None))
    assert sent.headers[0]["traceparent"] == GIVEN.encode()
    assert "traceparent" not in sent.headers[1], "an event recorded before traces were kept"
    assert spans.get_finished_spans() == (), "no producer span is made"


def test_with_an_exporter_the_relay_sends_its_producer_span(spans: Any) -> None:
    sent = _Sent()
    _publisher(sent).publish(_outgoing(GIVEN))
    (publish,) = [s for s in spans.get_finished_spans() if s.name.endswith(" publish")]
    assert publish.kind == SpanKind.PRODUCER
    assert publish.parent.span_id == int(GIVEN.split("-")[2], 16)
    assert sent.headers[0]["traceparent"].decode() == traceparent_of(publish.context)
