"""The live consumer's side of the views: ``LiveWriter.apply`` is the projections'
``ConsumerSpec.apply``.

The runner hands it each batch inside the batch's transaction; it folds the
whole batch into the current generation of the views with ``apply_events``,
in a handful of statements. The views, the processed ids and the runner's
position commit together, in one transaction.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from ...common.consumer import Batch
from ...common.privacy import CachingKeys, KeyService
from ...common.readiness import UnknownSchemaError
from ...common.revealed import reveal_batch
from ...contracts import EventEnvelope
from .ahead import ReadAhead, read_ahead
from .schema import VIEW_SCHEMAS, view_tables
from .store import ApplyResult, apply_events, current_generation

log = logging.getLogger(__name__)

# In the batch connection's ``info`` between ``LiveWriter.read_ahead`` and ``apply``.
_AHEAD = "projections read ahead"


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
    """Writes the runner's batches into the current generation of the views."""

    def __init__(
        self,
        on_result: Callable[[ApplyResult], None] | None = None,
        schemas: Mapping[str, int] = VIEW_SCHEMAS,
        keys: CachingKeys | KeyService | None = None,
        counter_slot: int | None = None,
    ) -> None:
        # Opens the events' sealed personal texts as they arrive (common.revealed).
        self.keys = keys
        # This writer's own counters row of a generation (``counters.count_batch``): drawn at
        # random, so the processes of a consumer group never share one.
        self.counter_slot = secrets.randbits(62) + 1 if counter_slot is None else counter_slot
        self.schemas = schemas  # the view schemas this release writes
        self.stats = LiveStats()
        self.on_result = on_result
        self._warned_outdated = 0.0
        # The generation the last batch wrote: ``read_ahead`` reads its rows ahead
        # (None until a batch got through, and while one that read ahead is under way).
        self._wrote: int | None = None

    def read_ahead(self, conn: sa.Connection, events: Sequence[EventEnvelope]) -> None:
        """``ConsumerSpec.read_ahead``: in a ``pipelined`` batch, the generation and the
        rows of the batch's interviews are sent before the runner's own read, and
        come back with it (``store.read_ahead``): one round trip for the three."""
        guess, self._wrote = self._wrote, None  # a batch that fails does not guess again
        ahead = read_ahead(conn, events, guess)
        if ahead is None:
            conn.info.pop(_AHEAD, None)
        else:
            conn.info[_AHEAD] = ahead

    def apply(self, conn: sa.Connection, batch: Batch) -> None:
        """``ConsumerSpec.apply``: folds the batch's events into the current
        generation of the views, in the runner's transaction (none while a rebuild
        to a newer view schema is pending: the rebuild reads them itself).

        Sealed texts are opened here: a key service that does not answer fails the
        batch, which the runner replays (never parks, never skips). Only the events
        that carry sealed text pay for ``Batch.map``'s log context (``reveal_batch``)."""
        ahead: ReadAhead | None = conn.info.pop(_AHEAD, None)
        events = reveal_batch(batch, self.keys)
        if ahead is not None:
            generation = ahead.current_generation()
        else:
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
            return
        result = apply_events(
            conn,
            view_tables(generation.number),
            events,
            keys=self.keys,
            revealed=True,
            counter_slot=self.counter_slot,
            preloaded=ahead.rows_of(generation.number) if ahead is not None else None,
        )
        self._wrote = generation.number
        self.stats.add(result)
        if self.on_result is not None:
            self.on_result(result)
