"""The live consumer's side of the views: handlers per event type for the runner.

The runner calls one handler per event inside the batch's transaction. The
handlers only collect the events on the connection; just before that
transaction commits, everything collected is folded and written with
``apply_events`` in a handful of statements (the ORM's flush-before-commit,
done with SQLAlchemy's ``commit`` connection event). Effects and the runner's
position therefore still commit together, in one transaction, and a batch of
500 events costs a few round trips instead of 2000.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from ...common.consumer import EventHandler, PerTransaction
from ...common.privacy import CachingKeys, KeyService
from ...common.readiness import UnknownSchemaError
from ...common.revealed import reveal_event
from ...contracts import EVENT_TYPES, EventEnvelope
from .schema import VIEW_SCHEMAS, view_tables
from .store import ApplyResult, apply_events, current_generation

log = logging.getLogger(__name__)


class ViewNewerThanCodeError(UnknownSchemaError):
    """The views were rebuilt by a newer release; this process must not write them
    (its consumer steps aside: it stops, keeps its position and fails readiness)."""


@dataclass
class LiveStats:
    """Running totals of what the live consumer did (for metrics)."""

    applied: int = 0
    duplicates: int = 0
    filled: int = 0
    gaps: int = 0
    skipped_outdated: int = 0
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, result: ApplyResult) -> None:
        with self.lock:
            self.applied += result.applied
            self.duplicates += result.duplicates
            self.filled += result.filled
            self.gaps += len(result.gaps)
            self.batches += 1


class LiveWriter:
    """Collects the runner's events per transaction and writes them at commit."""

    def __init__(
        self,
        engine: sa.Engine,
        on_result: Callable[[ApplyResult], None] | None = None,
        schemas: Mapping[str, int] = VIEW_SCHEMAS,
        keys: CachingKeys | KeyService | None = None,
    ) -> None:
        self.engine = engine
        # Opens the events' sealed personal texts as they arrive (fold.reveal_event).
        self.keys = keys
        self.schemas = schemas  # the view schemas this release writes
        self.stats = LiveStats()
        self.on_result = on_result
        self._warned_outdated = 0.0
        self._pending: PerTransaction[EventEnvelope] = PerTransaction("projections.pending")
        sa_event.listen(engine, "commit", self._before_commit)
        sa_event.listen(engine, "rollback", self._discard)

    def close(self) -> None:
        sa_event.remove(self.engine, "commit", self._before_commit)
        sa_event.remove(self.engine, "rollback", self._discard)

    @property
    def handlers(self) -> Mapping[str, EventHandler]:
        """One handler per event type, as ``ConsumerSpec.handlers`` wants."""
        return {event_type: self.handle for event_type in EVENT_TYPES}

    def handle(self, conn: sa.Connection, event: EventEnvelope) -> None:
        # Opened here, in the handler: a key service that does not answer fails the
        # batch, which the runner replays (never parks, never skips).
        self._pending.add(conn, reveal_event(event, self.keys))

    def flush(self, conn: sa.Connection) -> ApplyResult:
        """Writes what was collected in this transaction (also called at commit)."""
        events = self._pending.take(conn)
        return self._write(conn, events) if events else ApplyResult()

    def _write(self, conn: sa.Connection, events: list[EventEnvelope]) -> ApplyResult:
        generation = current_generation(conn, for_write=True)
        if generation is None:
            raise RuntimeError("the projection tables do not exist (ensure_schema not run)")
        if not generation.matches(self.schemas):
            if generation.newer_than(self.schemas):
                raise ViewNewerThanCodeError(
                    f"generation {generation.number} has view schemas {generation.schemas}, "
                    "newer than this release; stop this process"
                )
            # A rebuild to the new schema is pending; it reads everything up to
            # the head of the log under the pointer lock before it swaps, so
            # these events reach the new generation.
            with self.stats.lock:
                self.stats.skipped_outdated += len(events)
            if self.on_result is not None:
                self.on_result(ApplyResult(skipped=len(events)))
            if time.monotonic() - self._warned_outdated > 30:
                self._warned_outdated = time.monotonic()
                log.warning(
                    "generation %d has an outdated view schema %s: not applying live events "
                    "until the rebuild swaps in a new generation",
                    generation.number,
                    generation.schemas,
                )
            return ApplyResult()
        result = apply_events(conn, view_tables(generation.number), events, keys=self.keys)
        self.stats.add(result)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _before_commit(self, conn: sa.Connection) -> None:
        if self._pending.key in conn.info:
            self.flush(conn)

    def _discard(self, conn: sa.Connection) -> None:
        self._pending.discard(conn)
