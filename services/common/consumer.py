"""The consumer runner's interface, shared by every downstream service.

A downstream service (projections, notifications) supplies a ``ConsumerSpec``:
its group name, its own database engine and a mapping from event type to
handler. The runner (built on this interface) feeds it events either from
Kafka or, in the embedded default, from the event store's notification log,
and for each batch commits in ONE transaction of the consumer's database:
the handlers' effects, the processed event ids (duplicates are skipped) and
the source position. Handlers therefore never commit, never see duplicates
and never deal with offsets or poison messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa

from ..contracts import EventEnvelope


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
    # Extra tables/metadata the service wants created before consuming.
    metadata: Iterable[sa.MetaData] = field(default_factory=tuple)
