"""What a consumer's effects continue: the trace of the command that recorded the
event, through the consumer span while spans are exported, else the producer's own
context (no span per event that nobody would see)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common.consumer import Batch, ConsumerSpec
from services.common.db import create_engine
from services.common.runner import source as runner_source
from services.common.runner.loop import ConsumerRunner
from services.common.runner.source import SourceRecord
from services.common.runner.tables import migrate_consumer_database
from services.common.tracing import setup_tracing
from services.contracts import EventEnvelope
from tests.conftest import GIVEN_TRACEPARENT
from tests.support import relay_fakes

pytestmark = pytest.mark.unit

GROUP = "traced"


class ListSource:
    """Records handed to ``process`` directly; remembers what it dead-lettered."""

    topic = "interviews.events"

    def __init__(self) -> None:
        self.dead: list[tuple[SourceRecord, str]] = []

    def store_position(self, conn: sa.Connection, records: Sequence[SourceRecord]) -> None:
        pass

    def committed(self, records: Sequence[SourceRecord]) -> None:
        pass

    def dead_letter(self, record: SourceRecord, error: str, group: str) -> None:
        self.dead.append((record, error))

    def hold(self, records: list[SourceRecord]) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext(records)


def event() -> EventEnvelope:
    return relay_fakes.envelope(uuid4(), 2, 7)


def record(e: EventEnvelope, traceparent: str | None = GIVEN_TRACEPARENT) -> SourceRecord:
    headers = [("traceparent", traceparent.encode())] if traceparent else []
    return SourceRecord(raw=e.to_bytes(), topic="interviews.events", partition=0, offset=0,
                        headers=headers)  # fmt: skip


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[tuple[ConsumerRunner, list[Batch]]]:
    setup_tracing("tests")  # the process's provider: a span made now gets an id of its own
    engine = create_engine(None, tmp_path / "consumer.sqlite")
    batches: list[Batch] = []

    def apply(conn: sa.Connection, batch: Batch) -> None:
        batches.append(batch)

    spec = ConsumerSpec(group=GROUP, engine=engine, apply=apply)
    migrate_consumer_database(spec)
    consumer = ConsumerRunner(spec, ListSource())  # type: ignore[arg-type]
    yield consumer, batches
    consumer._let_go()
    engine.dispose()


def test_with_nothing_exported_an_effect_continues_the_producer_s_context(
    runner: tuple[ConsumerRunner, list[Batch]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_source, "tracing_exports", lambda: False)
    consumer, batches = runner
    traced, untraced = event(), event()

    consumer.process([record(traced), record(untraced, traceparent=None)])

    (batch,) = batches
    assert batch.traceparents.get(str(traced.id)) == GIVEN_TRACEPARENT
    assert batch.traceparents.get(str(untraced.id)) is None
    assert set(batch.traceparents) == {str(traced.id), str(untraced.id)}


def test_while_spans_are_exported_each_event_s_receipt_is_a_span_in_its_command_s_trace(
    runner: tuple[ConsumerRunner, list[Batch]], spans: InMemorySpanExporter
) -> None:
    consumer, batches = runner
    e = event()

    consumer.process([record(e)])

    (batch,) = batches
    (applied,) = [s for s in spans.get_finished_spans() if s.name == f"{GROUP} apply"]
    assert applied.parent is not None
    assert f"{applied.parent.span_id:016x}" == GIVEN_TRACEPARENT.split("-")[2]
    assert applied.attributes is not None
    assert applied.attributes["messaging.message.id"] == str(e.id)
    assert applied.attributes["interview.id"] == str(e.interview_id)
    effect = batch.traceparents.get(str(e.id))
    assert effect is not None
    assert effect.split("-")[1:3] == [
        f"{applied.context.trace_id:032x}",
        f"{applied.context.span_id:016x}",
    ], "the effect continues the consumer span"
