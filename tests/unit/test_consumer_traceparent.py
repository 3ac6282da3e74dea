"""What a consumer hands on as an event's ``traceparent``: its own span's when
spans are exported, the command's own when nothing would ever see that span."""

from __future__ import annotations

import uuid

import pytest

from services.common.runner import source
from services.common.runner.source import SourceRecord, consumer_traceparent
from services.common.tracing import setup_tracing
from services.contracts import EventEnvelope
from tests.support import relay_fakes

pytestmark = pytest.mark.unit

GIVEN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def envelope(traceparent: str | None) -> EventEnvelope:
    return relay_fakes.envelope(uuid.uuid4(), 2, 7).traced(traceparent)


class NoSpans:
    def start_span(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no span is made while nothing is exported")


def test_with_nothing_exported_the_command_s_context_goes_on_and_no_span_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(source, "tracing_exports", lambda: False)
    monkeypatch.setattr(source, "tracer", NoSpans)
    event = envelope(GIVEN)
    assert consumer_traceparent("projections", SourceRecord(envelope=event), event) == GIVEN
    header = SourceRecord(raw=b"{}", headers=[("traceparent", GIVEN.upper().encode())])
    assert consumer_traceparent("notifications", header, envelope(None)) == GIVEN
    untraced = envelope(None)
    assert consumer_traceparent("projections", SourceRecord(envelope=untraced), untraced) is None
    garbled = envelope("00-nonsense")
    assert consumer_traceparent("projections", SourceRecord(envelope=garbled), garbled) is None


def test_with_spans_exported_the_consumer_span_continues_the_command_s_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert setup_tracing("tests") is not None
    monkeypatch.setattr(source, "tracing_exports", lambda: True)
    event = envelope(GIVEN)
    traceparent = consumer_traceparent("projections", SourceRecord(envelope=event), event)
    assert traceparent is not None
    _, trace_id, span_id, _ = traceparent.split("-")
    assert trace_id == GIVEN.split("-")[1]
    assert span_id != GIVEN.split("-")[2], "the consumer's own span"
