"""What a runner reads from: a ``Source`` of ``SourceRecord``s that keeps its
position in the consumer's database, in the batch's transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa
from opentelemetry.trace import SpanKind

from ...contracts import EventEnvelope
from ..logs import EventLogContext, trace_id_from
from ..tracing import context_from, span_context_from, traceparent_of, tracer, tracing_exports
from .metrics import RunnerMetrics


@dataclass
class SourceRecord:
    """One message from a source: already an envelope (embedded) or raw bytes (Kafka)."""

    envelope: EventEnvelope | None = None
    raw: bytes | None = None
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def where(self) -> str | None:
        if self.topic is None:
            return None
        return f"{self.topic}/{self.partition}/{self.offset}"

    def traceparent(self) -> bytes | None:
        """The Kafka ``traceparent`` header, if the message has one."""
        for key, value in self.headers:
            if key == "traceparent":
                return value
        return None


class Source(Protocol):
    """Where a runner's events come from, and where it keeps its position."""

    # The lag metric's ``topic`` label.
    topic: str

    def open(self, group: str, engine: sa.Engine, metrics: RunnerMetrics) -> None:
        """Starts reading after the position stored for ``group`` in ``engine``."""
        ...

    def poll(self, timeout: float) -> list[SourceRecord]: ...

    def hold(
        self, records: list[SourceRecord]
    ) -> contextlib.AbstractContextManager[list[SourceRecord]]:
        """While a batch is processed: the records still ours (no rebalance meanwhile)."""
        ...

    def store_position(self, conn: sa.Connection, records: Sequence[SourceRecord]) -> None:
        """Inside the batch's transaction: the position after ``records``."""
        ...

    def committed(self, records: Sequence[SourceRecord]) -> None:
        """After the transaction committed."""
        ...

    def rewind(self) -> None:
        """Forget what was read but not committed (the batch will be read again)."""
        ...

    def dead_letter(self, record: SourceRecord, error: str, group: str) -> None:
        """Sends a record that is no valid event where an operator can find it."""
        ...

    def interrupt(self) -> None:
        """Wake up a blocked ``poll`` (used by ``stop``)."""
        ...

    def update_lag(self, metrics: RunnerMetrics, group: str) -> int | None:
        """Sets the lag gauges; returns the total lag (None: no partition is ours)."""
        ...

    def check_reachable(self) -> None:
        """Raises ``NotReadyError`` when what the source reads from does not answer."""
        ...

    def close(self) -> None: ...


def consumer_traceparent(
    group: str,
    record: SourceRecord,
    envelope: EventEnvelope,
    event_id: str | None = None,
    interview_id: str | None = None,
) -> str | None:
    """Records the consumer span of one event, continuing the command's trace (from
    the Kafka ``traceparent`` header, or, embedded, the envelope read in-process),
    and returns its ``traceparent``: the effects that happen later (a webhook sent by
    another worker) continue it. The span marks the event's receipt; it is started
    and ended here, never made the current span, which costs a fraction of a
    context manager's attach and detach for every event of a batch. ``event_id``
    and ``interview_id``: the envelope's ids as text, when the caller has them.

    With nothing exported (``tracing_exports``) the span is not made: nobody would
    see it, and the effects continue the command's own context instead."""
    parent = record.traceparent() or envelope.traceparent
    if not tracing_exports():
        remote = span_context_from(parent)
        return traceparent_of(remote) if remote is not None else None
    span = tracer().start_span(
        f"{group} apply",
        context=context_from(parent),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka" if record.topic else "event store",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": group,
            "messaging.message.id": event_id or str(envelope.id),
            "interview.id": interview_id or str(envelope.interview_id),
            "event.type": envelope.type,
        },
    )
    span.end()
    span_context = span.get_span_context()
    return traceparent_of(span_context) if span_context.is_valid else None


class ReceivedTraceparents(Mapping[str, str | None]):
    """By event id, the ``traceparent`` a batch's effects continue (``Batch.traceparents``).

    While spans are exported (``tracing_exports``) each event's consumer span is
    recorded as the batch is received (``consumer_traceparent``): a reader of the
    traces sees every event's receipt in its command's trace. Until then no span is
    made (nobody would see it) and an event's effects continue the command's own
    context, as the relay's messages do: the Kafka header, or the envelope read
    in-process, looked up only for the events whose effects ask (a webhook's
    delivery), not for every event of every batch."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._exporting = tracing_exports()
        self._spans: dict[str, str | None] = {}
        self._received: dict[str, tuple[SourceRecord, EventEnvelope]] = {}

    def receive(
        self, event_id: str, interview_id: str, record: SourceRecord, envelope: EventEnvelope
    ) -> None:
        """One event of the batch, its ids as text."""
        if self._exporting:
            self._spans[event_id] = consumer_traceparent(
                self.group, record, envelope, event_id, interview_id
            )
        else:
            self._received[event_id] = (record, envelope)

    def __getitem__(self, event_id: str) -> str | None:
        if self._exporting:
            return self._spans[event_id]
        record, envelope = self._received[event_id]
        return consumer_traceparent(self.group, record, envelope, event_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._spans if self._exporting else self._received)

    def __len__(self) -> int:
        return len(self._spans if self._exporting else self._received)


def event_log_context(
    record: SourceRecord, envelope: EventEnvelope
) -> contextlib.AbstractContextManager[None]:
    """Log lines written while one event is applied carry its ids."""
    return EventLogContext(
        envelope.correlation_id,
        envelope.interview_id,
        trace_id_from(record.traceparent() or envelope.traceparent or envelope.correlation_id),
    )
