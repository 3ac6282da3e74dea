"""The consumer runner's interface, shared by every downstream service.

A downstream service (projections, notifications) supplies a ``ConsumerSpec``:
its group name, its own database engine and ``apply``, the one function that
writes a batch's effects. The runner (``services/common/runner/``) feeds it
events either from Kafka or, in the embedded default, from the event store's
notification log, and for each batch commits in ONE transaction of the
consumer's database: what ``apply`` wrote, the processed event ids and the
source position. ``apply`` therefore never commits, never sees an event twice
or an event of a parked interview, and never deals with offsets or poison
messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import sqlalchemy as sa

from ..contracts import EventEnvelope
from .db import DATABASE_OUTAGES
from .logs import EventLogContext, trace_id_from
from .migrations import History
from .privacy import KeyServiceUnavailable

T = TypeVar("T")

# Errors of the consumer's database itself (down, disconnected), or of the key service
# that opens sealed texts: never the events' fault, never a reason to park one; the
# runner backs off and replays the batch instead.
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_OUTAGES, KeyServiceUnavailable)


@dataclass(frozen=True)
class Batch:
    """The events of one batch that take effect, in the order they were read (per
    interview, the order of its versions): none already processed, none of an
    interview with a parked event."""

    events: Sequence[EventEnvelope]
    # By event id, the W3C traceparent of the consumer span that received the
    # event: an effect that happens later (a webhook sent by another worker)
    # continues that trace.
    traceparents: Mapping[str, str | None] = field(default_factory=dict)

    def map(self, fn: Callable[[EventEnvelope], T]) -> list[T]:
        """``fn`` of each event in turn, each call inside the event's log context: a
        line logged while applying it carries its interview, correlation and trace ids."""
        out: list[T] = []
        for event in self.events:
            traceparent = self.traceparents.get(str(event.id))
            trace = trace_id_from(traceparent or event.traceparent or event.correlation_id)
            with EventLogContext(event.correlation_id, event.interview_id, trace):
                out.append(fn(event))
        return out


class BatchHandler(Protocol):
    """Writes a batch's effects inside the runner's open transaction.

    It raises to refuse the batch; the runner then applies the events one by
    one, each in its own transaction, and parks the one that still fails."""

    def __call__(self, conn: sa.Connection, batch: Batch) -> None: ...


@dataclass
class ConsumerSpec:
    group: str
    engine: sa.Engine
    apply: BatchHandler
    # Called after each committed batch with the highest event-store position applied
    # (for read-your-writes waits and live updates). Runs outside the transaction.
    on_committed: Callable[[int], None] | None = None
    # The service's own migration histories in this database: migrated with the
    # runner's before consuming (AUTO_MIGRATE), or checked when ``auto_migrate`` is off.
    histories: Sequence[History] = ()
    auto_migrate: bool = True
    # Called in the batch's transaction before the runner reads what it has processed,
    # with the batch's events (duplicates and parked ones among them): reads that
    # ``apply`` will need can be sent now (``common.pipeline.read_ahead``), so that in a
    # ``pipelined`` transaction they come back with the runner's read, one round trip.
    # A batch that fails on a missing table or column is tried once more before the
    # runner steps aside: a read ahead that guessed must not guess again after a failure.
    read_ahead: Callable[[sa.Connection, Sequence[EventEnvelope]], None] | None = None
