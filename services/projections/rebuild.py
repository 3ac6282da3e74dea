"""Rebuilding every view without downtime.

A rebuild fills a fresh generation of tables from the start of the source in
chunk-sized transactions while the API keeps reading (and the live consumer
keeps writing) the current generation. To finish, one transaction locks the
generation pointer (which every live batch holds shared while it writes),
reads whatever the source has gained meanwhile, applies it and moves the
pointer. Everything the live consumer had committed before the lock is in the
source by then, so nothing is lost; what it applies afterwards to the new
generation is deduplicated by version.

An event that cannot be folded (a bug, a value the views cannot hold) never
stops a rebuild: its chunk is applied again one event at a time, the event is
left out, counted in the report with its id (``unfoldable``) and logged, and
the rest of the log is folded as usual (the interview's later events apply on
top, a missing version shows as a gap).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..common.db import DATABASE_OUTAGES
from ..common.privacy import CachingKeys, KeyService, KeyServiceUnavailable
from ..contracts import EventEnvelope
from .adapters.schema import VIEW, VIEW_SCHEMAS, pv_meta
from .adapters.sources import RebuildSource
from .adapters.store import (
    ApplyResult,
    ViewTables,
    apply_events,
    create_generation,
    create_indexes,
    drop_generations,
    ensure_schema,
    mark_failed,
    swap_to,
)

log = logging.getLogger(__name__)


class RebuildRunningError(RuntimeError):
    """Another rebuild holds the rebuild lock."""


@dataclass
class Progress:
    events: int
    done: int
    total: int | None
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def eta_seconds(self) -> float | None:
        fraction = self.fraction
        if fraction is None or fraction <= 0 or self.seconds <= 0:
            return None
        return self.seconds * (1 - fraction) / fraction

    def render(self, width: int = 30) -> str:
        fraction = self.fraction
        if fraction is None:
            bar, pct = "?" * width, "  ?%"
        else:
            filled = int(round(fraction * width))
            bar, pct = "#" * filled + "." * (width - filled), f"{fraction * 100:3.0f}%"
        eta = self.eta_seconds
        eta_text = f"ETA {eta:5.1f}s" if eta is not None else "ETA   ?  "
        return f"[{bar}] {pct} {self.events:>9,} events  {self.rate:>9,.0f} ev/s  {eta_text}"


# The database or the key service failing: the rebuild stops (and can be run again),
# no event is blamed (a text the key service could not open is never left out).
OUTAGES: tuple[type[Exception], ...] = (*DATABASE_OUTAGES, KeyServiceUnavailable)


@dataclass(frozen=True)
class Unfoldable:
    """An event the rebuild left out: it could not be folded into the views."""

    event_id: str
    interview_id: str
    type: str
    version: int
    position: int
    error: str


@dataclass
class RebuildReport:
    generation: int
    replaced: int
    events: int
    applied: int
    duplicates: int
    gaps: int
    poison: int
    position: int
    seconds: float
    unfoldable: list[Unfoldable] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@contextlib.contextmanager
def rebuild_lock(engine: sa.Engine) -> Iterator[None]:
    """One rebuild at a time per database (PostgreSQL advisory lock, or a lock file)."""
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(b"projections.rebuild")
        with engine.connect() as conn:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()
            if not got:
                raise RebuildRunningError("another rebuild of the views is running")
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    database = engine.url.database or "memory"
    path = Path(database + ".rebuild.lock")
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RebuildRunningError("another rebuild of the views is running") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_pointer(conn: sa.Connection) -> None:
    """Excludes live batches (they hold the pointer shared) until commit."""
    if conn.dialect.name == "sqlite":
        conn.execute(
            sa.update(pv_meta).where(pv_meta.c.view == VIEW).values(generation=pv_meta.c.generation)
        )
    else:
        conn.execute(
            sa.select(pv_meta.c.generation).where(pv_meta.c.view == VIEW).with_for_update()
        )


def _prefetched(source: RebuildSource, batch: int, depth: int = 3) -> Iterator[list[Any]]:
    """``source.read`` chunks, read (and decoded) by a thread of their own while
    the previous chunk is being written: reading and writing overlap."""
    chunks: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def pump() -> None:
        try:
            while not stop.is_set():
                chunk = source.read(batch)
                while not stop.is_set():
                    try:
                        chunks.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if not chunk:
                    return
        except BaseException as error:  # handed to the consumer of the chunks
            chunks.put(error)

    reader = threading.Thread(target=pump, name="rebuild-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = chunks.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        reader.join(30)


def _apply_chunk(
    transaction: Callable[[], contextlib.AbstractContextManager[sa.Connection]],
    tables: ViewTables,
    chunk: Sequence[EventEnvelope],
    total: ApplyResult,
    unfoldable: list[Unfoldable],
    keys: CachingKeys | KeyService | None = None,
) -> None:
    """One chunk in one ``transaction``; if it fails, one event per transaction.
    A database outage stops the rebuild (run it again): no event is blamed."""
    try:
        with transaction() as conn:
            total.add(apply_events(conn, tables, chunk, lock_rows=False, keys=keys))
        return
    except OUTAGES:
        raise
    except Exception as error:  # find the event(s) at fault
        log.warning("rebuild: a chunk failed (%s); folding it event by event", error)
    for event in chunk:
        try:
            with transaction() as conn:
                total.add(apply_events(conn, tables, [event], lock_rows=False, keys=keys))
        except OUTAGES:
            raise
        except Exception as error:  # left out, reported
            unfoldable.append(_left_out(event, error))


def _savepoints(
    conn: sa.Connection,
) -> Callable[[], contextlib.AbstractContextManager[sa.Connection]]:
    """Transactions inside the swap's own: a savepoint each."""

    @contextlib.contextmanager
    def savepoint() -> Iterator[sa.Connection]:
        with conn.begin_nested():
            yield conn

    return savepoint


def _left_out(event: EventEnvelope, error: BaseException) -> Unfoldable:
    left = Unfoldable(
        event_id=str(event.id),
        interview_id=str(event.interview_id),
        type=event.type,
        version=event.version,
        position=event.position,
        error=f"{type(error).__name__}: {error}"[:2000],
    )
    log.error(
        "rebuild: cannot fold %s %s (interview %s, version %d, position %d); left out: %s",
        left.type,
        left.event_id,
        left.interview_id,
        left.version,
        left.position,
        left.error,
    )
    return left


def rebuild(
    engine: sa.Engine,
    source: RebuildSource,
    *,
    batch: int = 5000,
    progress: Callable[[Progress], None] | None = None,
    progress_every: float = 0.5,
    schemas: Mapping[str, int] = VIEW_SCHEMAS,
    keys: CachingKeys | KeyService | None = None,
) -> RebuildReport:
    """Rebuilds every view from ``source`` into a new generation (of the view
    schemas ``schemas``: this release's) and swaps it in."""
    ensure_schema(engine, schemas)
    start = time.monotonic()
    total = ApplyResult()
    unfoldable: list[Unfoldable] = []
    events = 0
    last_report = 0.0

    def report(force: bool = False) -> None:
        nonlocal last_report
        if progress is None:
            return
        now = time.monotonic()
        if force or now - last_report >= progress_every:
            last_report = now
            done, whole = source.progress()
            progress(Progress(events, done, whole, now - start))

    with rebuild_lock(engine):
        drop_generations(engine)
        with engine.begin() as conn:
            tables = create_generation(conn, source=source.name, indexes=False, schemas=schemas)
        log.info("rebuilding the views into generation %d from %s", tables.generation, source.name)
        try:
            for chunk in _prefetched(source, batch):
                _apply_chunk(engine.begin, tables, chunk, total, unfoldable, keys)
                events += len(chunk)
                report()
            with engine.begin() as conn:
                create_indexes(conn, tables)
            with engine.begin() as conn:
                _lock_pointer(conn)
                for chunk in source.catch_up(batch):
                    _apply_chunk(_savepoints(conn), tables, chunk, total, unfoldable, keys)
                    events += len(chunk)
                replaced = swap_to(conn, tables.generation)
        except BaseException:
            mark_failed(engine, tables.generation)
            raise
        report(force=True)
    drop_generations(engine, keep={replaced})
    seconds = time.monotonic() - start
    result = RebuildReport(
        generation=tables.generation,
        replaced=replaced,
        events=events,
        applied=total.applied + total.filled,
        duplicates=total.duplicates,
        gaps=len(total.gaps),
        poison=source.poison,
        position=total.max_position,
        seconds=seconds,
        unfoldable=unfoldable,
    )
    log.info(
        "views rebuilt: generation %d replaces %d; %d events (%d applied, %d duplicates, "
        "%d gaps, %d poison, %d unfoldable) in %.1fs, %.0f events/s",
        result.generation,
        result.replaced,
        result.events,
        result.applied,
        result.duplicates,
        result.gaps,
        result.poison,
        len(result.unfoldable),
        result.seconds,
        result.rate,
    )
    return result
