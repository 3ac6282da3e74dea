"""The consumer runner's interface, shared by every downstream service.

A downstream service (projections, notifications) supplies a ``ConsumerSpec``:
its group name, its own database engine and a mapping from event type to
handler. The runner (built on this interface) feeds it events either from
Kafka or, in the embedded default, from the event store's notification log,
and for each batch commits in ONE transaction of the consumer's database:
the handlers' effects, the processed event ids (duplicates are skipped) and
the source position. Handlers therefore never commit, never see duplicates
and never deal with offsets or poison messages. A spec may also give ``flush``,
called after a batch's handlers in its transaction, so that handlers can
collect their writes and make them once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import sqlalchemy as sa

from ..contracts import EventEnvelope
from .migrations import History


class EventHandler(Protocol):
    """Applies one event's effects inside the consumer's open transaction."""

    def __call__(self, conn: sa.Connection, event: EventEnvelope) -> None: ...


@dataclass
class ConsumerSpec:
    group: str
    engine: sa.Engine
    handlers: Mapping[str, EventHandler]
    # Called after each committed batch with the highest event-store position applied
    # (for read-your-writes waits and live updates). Runs outside the transaction.
    on_committed: Callable[[int], None] | None = None
    # The service's own migration histories in this database: migrated with the
    # runner's before consuming (AUTO_MIGRATE), or checked when ``auto_migrate`` is off.
    histories: Sequence[History] = ()
    auto_migrate: bool = True
    # Called once per batch after its handlers, in the same transaction: handlers
    # may collect what they would write and write it here in a few set-based
    # statements. A failure here fails the batch like a handler's would (the
    # runner then applies it event by event, each with its own flush).
    flush: Callable[[sa.Connection], None] | None = None

    def apply(self, conn: sa.Connection, events: Iterable[EventEnvelope]) -> None:
        """The handlers of ``events`` in order, then ``flush``: what the runner
        does in a batch's transaction, without its bookkeeping (for tools and tests)."""
        for event in events:
            handler = self.handlers.get(event.type)
            if handler is not None:
                handler(conn, event)
        if self.flush is not None:
            self.flush(conn)


T = TypeVar("T")


class PerTransaction(Generic[T]):
    """Items collected on a connection for its current transaction only: what a
    handler defers to its ``flush`` (items left by a transaction that failed
    before its flush are dropped, never written by the next one)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def add(self, conn: sa.Connection, item: T) -> None:
        transaction = conn.get_transaction()
        pending = conn.info.get(self.key)
        if pending is None or pending[0] is not transaction:
            items: list[T] = []
            pending = (transaction, items)
            conn.info[self.key] = pending
        pending[1].append(item)

    def take(self, conn: sa.Connection) -> list[T]:
        pending = conn.info.pop(self.key, None)
        if pending is None or pending[0] is not conn.get_transaction():
            return []
        return pending[1]

    def discard(self, conn: sa.Connection) -> None:
        conn.info.pop(self.key, None)
