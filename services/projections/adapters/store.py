"""Writing the read models: generations, and applying batches of events.

``apply_events`` is the one write path, used by the live consumer (one call
per consumer batch) and by rebuilds (one call per chunk): it loads the rows
the batch touches in one query, folds every event in memory, and writes the
results with a few multi-row statements, inside the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa

from ...common.db import OnConflictInsert, copy_rows, upsert, write_rows
from ...common.instants import to_utc
from ...common.migrations import migrate
from ...common.privacy import CachingKeys, KeyService
from ...common.revealed import reveal_event
from ...common.runner.tables import RUNNER_HISTORY
from ...common.sql_values import bound_values, one_of_bound
from ...contracts import EventEnvelope
from ..fold import EMPTY_ROW, Row, fold
from ..migrations import HISTORY as PROJECTIONS_HISTORY
from .counters import GENERATION_COLUMNS, count_batch
from .schema import (
    VIEW,
    VIEW_SCHEMAS,
    ViewTables,
    pv_generation_counters,
    pv_generations,
    pv_meta,
    view_tables,
)

log = logging.getLogger(__name__)

_LOAD_CHUNK = 500


@dataclass(frozen=True)
class Generation:
    number: int
    schemas: dict[str, int]
    state: str
    position: int
    events_applied: int = 0
    gaps_detected: int = 0

    @property
    def current_schema(self) -> bool:
        return self.matches(VIEW_SCHEMAS)

    @property
    def newer_than_code(self) -> bool:
        return self.newer_than(VIEW_SCHEMAS)

    def matches(self, code: Mapping[str, int]) -> bool:
        """Built with the view schemas ``code`` knows (a release's VIEW_SCHEMAS)."""
        return self.schemas == dict(code)

    def newer_than(self, code: Mapping[str, int]) -> bool:
        """Built by a newer release than the one whose schemas are ``code``."""
        return any(self.schemas.get(k, 0) > v for k, v in code.items())


@dataclass
class ApplyResult:
    applied: int = 0
    duplicates: int = 0
    filled: int = 0
    gaps: list[tuple[str, int, int]] = field(default_factory=list)  # (id, missing, by version)
    max_position: int = 0
    skipped: int = 0  # not applied: the generation awaits a schema rebuild

    def add(self, other: ApplyResult) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.filled += other.filled
        self.gaps.extend(other.gaps)
        self.max_position = max(self.max_position, other.max_position)


def now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ generations


def ensure_schema(
    engine: sa.Engine, schemas: Mapping[str, int] = VIEW_SCHEMAS, *, auto_migrate: bool = True
) -> Generation:
    """Migrates the fixed tables (and the runner's), then creates generation 1 (of
    the view schemas ``schemas``) on a fresh database.

    Safe when several processes start at once (API, consumers): migrations run
    under a lock, and the loser of the race to create generation 1 sees a
    duplicate and simply looks again."""
    migrate(
        engine,
        [PROJECTIONS_HISTORY, RUNNER_HISTORY],
        auto=auto_migrate,
        database="projections database",
    )
    return ensure_generation(engine, schemas)


def ensure_generation(engine: sa.Engine, schemas: Mapping[str, int] = VIEW_SCHEMAS) -> Generation:
    """The current generation; generation 1 (active, empty) on a fresh database."""
    with engine.begin() as conn:
        current = current_generation(conn)
        if current is not None:
            return current
    try:
        with engine.begin() as conn:
            create_generation(conn, 1, source="live", state="active", schemas=schemas)
            conn.execute(sa.insert(pv_meta).values(view=VIEW, generation=1, swapped_at=now()))
    except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
        pass  # another process created it (or its tables) first
    with engine.begin() as conn:
        current = current_generation(conn)
        assert current is not None
        return current


def _generation(row: Any) -> Generation:
    schemas = row.schemas if isinstance(row.schemas, dict) else {}
    return Generation(
        number=row.generation,
        schemas={str(k): int(v) for k, v in schemas.items()},
        state=row.state,
        position=int(row.position or 0),
        events_applied=int(row.events_applied or 0),
        gaps_detected=int(row.gaps_detected or 0),
    )


# The statements every live batch runs, built once.
_CURRENT = (
    sa.select(*GENERATION_COLUMNS)
    .join(pv_meta, pv_meta.c.generation == pv_generations.c.generation)
    .where(pv_meta.c.view == VIEW)
)
# PostgreSQL: the pointer locked and its generation read in one round trip.
_CURRENT_HELD = _CURRENT.with_for_update(read=True, of=pv_meta)
# SQLite: the database write lock, taken by a no-op update of the pointer.
_HOLD_POINTER = (
    sa.update(pv_meta).where(pv_meta.c.view == VIEW).values(generation=pv_meta.c.generation)
)


def current_generation(conn: sa.Connection, *, for_write: bool = False) -> Generation | None:
    """The generation the API reads. ``for_write`` holds the pointer against a
    swap until the transaction ends (PostgreSQL: a share lock; SQLite: the
    database write lock, taken by a no-op update)."""
    query = _CURRENT
    if for_write:
        if conn.dialect.name == "sqlite":
            conn.execute(_HOLD_POINTER)
        else:
            query = _CURRENT_HELD
    row = conn.execute(query).first()
    return _generation(row) if row is not None else None


def get_generation(conn: sa.Connection, number: int) -> Generation | None:
    row = conn.execute(
        sa.select(*GENERATION_COLUMNS).where(pv_generations.c.generation == number)
    ).first()
    return _generation(row) if row is not None else None


def list_generations(conn: sa.Connection) -> list[Generation]:
    rows = conn.execute(sa.select(*GENERATION_COLUMNS).order_by(pv_generations.c.generation))
    return [_generation(r) for r in rows]


def create_generation(
    conn: sa.Connection,
    number: int | None = None,
    *,
    source: str,
    state: str = "building",
    indexes: bool = True,
    schemas: Mapping[str, int] = VIEW_SCHEMAS,
) -> ViewTables:
    """A generation's row and fresh tables. ``indexes=False`` leaves out the
    secondary indexes (a bulk load is cheaper without them; ``create_indexes``
    adds them before the generation is swapped in)."""
    if number is None:
        highest = conn.execute(sa.select(sa.func.max(pv_generations.c.generation))).scalar()
        number = int(highest or 0) + 1
    conn.execute(
        sa.insert(pv_generations).values(
            generation=number,
            schemas=dict(schemas),
            state=state,
            position=0,
            events_applied=0,
            duplicates=0,
            gaps_detected=0,
            source=source,
            created_at=now(),
            activated_at=now() if state == "active" else None,
        )
    )
    tables = view_tables(number)
    for table in tables.all:
        table.drop(conn, checkfirst=True)  # left over from a rebuild that died
        if indexes:
            table.create(conn)
        else:
            conn.execute(sa.schema.CreateTable(table))
    return tables


def create_indexes(conn: sa.Connection, tables: ViewTables) -> None:
    """The secondary indexes of a bulk-loaded generation, and fresh planner
    statistics (autovacuum would take a minute to notice the new tables)."""
    for table in tables.all:
        for index in table.indexes:
            index.create(conn, checkfirst=True)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f'ANALYZE "{table.name}"')


def swap_to(conn: sa.Connection, number: int) -> int:
    """Points the views at generation ``number`` (inside the caller's locked
    transaction); returns the generation it replaced."""
    # The row exists from the first generation on (ensure_generation inserts it).
    old = conn.execute(sa.select(pv_meta.c.generation).where(pv_meta.c.view == VIEW)).scalar_one()
    conn.execute(
        sa.update(pv_meta).where(pv_meta.c.view == VIEW).values(generation=number, swapped_at=now())
    )
    conn.execute(
        sa.update(pv_generations)
        .where(pv_generations.c.generation == number)
        .values(state="active", activated_at=now())
    )
    conn.execute(
        sa.update(pv_generations).where(pv_generations.c.generation == old).values(state="retired")
    )
    return int(old)


def mark_failed(engine: sa.Engine, number: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(pv_generations)
            .where(pv_generations.c.generation == number, pv_generations.c.state == "building")
            .values(state="failed")
        )


def drop_generations(engine: sa.Engine, keep: Iterable[int] = ()) -> list[int]:
    """Drops the tables of retired and failed generations, except ``keep``.

    Retired tables are kept until then because a reader that read the old
    pointer may still be querying them.
    """
    keep = set(keep)
    dropped = []
    with engine.begin() as conn:
        gens = list_generations(conn)
    for gen in gens:
        if gen.state not in ("retired", "failed") or gen.number in keep:
            continue
        with engine.begin() as conn:
            for table in view_tables(gen.number).all:
                table.drop(conn, checkfirst=True)
            conn.execute(
                sa.update(pv_generations)
                .where(pv_generations.c.generation == gen.number)
                .values(state="dropped")
            )
            conn.execute(
                sa.delete(pv_generation_counters).where(
                    pv_generation_counters.c.generation == gen.number
                )
            )
        dropped.append(gen.number)
    return dropped


# ----------------------------------------------------------------- applying

_DATETIME_COLUMNS = frozenset(name for name in EMPTY_ROW if name.endswith("_at"))


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_utc(value)
    return value


def row_from_db(record: Any) -> Row:
    return _as_row(dict(record._mapping))


def _as_row(row: dict[str, Any]) -> Row:
    """A row read from the database, as the fold takes it (UTC times, a list of
    missing versions)."""
    for name in _DATETIME_COLUMNS:
        value = row.get(name)
        # PostgreSQL's are in UTC already (the session's zone); SQLite's are naive.
        if value is None or value.__class__ is not datetime or value.tzinfo is not UTC:
            row[name] = _utc(value)
    row["missing"] = list(row.get("missing") or [])
    return row


@cache
def _load_query(dialect: str, table: sa.Table, lock: bool) -> sa.Select[Any]:
    """``load_rows``' query of one generation's table, built once: the ids go in one
    parameter, so its text is the same for every batch (an IN list is rendered and
    parsed anew for each length)."""
    query = sa.select(table).where(one_of_bound(dialect, table.c.interview_id, "ids"))
    return query.with_for_update() if lock else query


def load_rows(
    conn: sa.Connection, tables: ViewTables, ids: Sequence[str], *, lock: bool = False
) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    dialect = conn.dialect.name
    query = _load_query(dialect, tables.interviews, lock)
    for start in range(0, len(ids), _LOAD_CHUNK):
        chunk = ids[start : start + _LOAD_CHUNK]
        result = conn.execute(query, {"ids": bound_values(dialect, chunk)})
        _add_rows(rows, tuple(result.keys()), result.all())
    return rows


def _add_rows(rows: dict[str, Row], names: tuple[str, ...], records: Iterable[Any]) -> None:
    for record in records:
        row = _as_row(dict(zip(names, record, strict=True)))
        # The fold takes the row as its own (``in_place``): a list of its own here.
        row["erased_fields"] = list(row.get("erased_fields") or [])
        rows[row["interview_id"]] = row


_ROW_KEYS = tuple(EMPTY_ROW)


def _upsert(conn: sa.Connection, table: sa.Table) -> OnConflictInsert:
    """INSERT .. ON CONFLICT (id) DO UPDATE every column: the folded row wins
    (the batch holds the row locks it read them with). Built once per table: its
    construction costs more than a small batch's fold."""
    return _upsert_of(conn.dialect.name, table)


_UPDATED_KEYS = tuple(k for k in _ROW_KEYS if k != "interview_id")


@cache
def _upsert_of(dialect: str, table: sa.Table) -> OnConflictInsert:
    return upsert(dialect, table, ["interview_id"], _UPDATED_KEYS)


def apply_events(
    conn: sa.Connection,
    tables: ViewTables,
    events: Sequence[EventEnvelope],
    *,
    lock_rows: bool = True,
    keys: CachingKeys | KeyService | None = None,
    revealed: bool = False,
    counter_slot: int | None = None,
    preloaded: tuple[frozenset[str], dict[str, Row]] | None = None,
) -> ApplyResult:
    """Folds ``events`` (in the order given) into generation ``tables``, their sealed
    personal texts opened through ``keys`` (``fold.reveal_event``); ``revealed``: the
    caller opened them already (the fold still refuses a sealed text).

    The generation's counters move in the same transaction (``counters.count_batch``): a writer
    that may run beside others (a live consumer) names its ``counter_slot``.

    ``preloaded``: the rows of some interview ids (``ReadAhead.rows_of``), read and
    locked already in this transaction, used if they cover the batch's interviews."""
    result = ApplyResult()
    if not events:
        return result
    if not revealed:
        events = [reveal_event(e, keys) for e in events]
    # Each interview id as text (the row key, the timeline's column), made once per
    # interview of the batch: ``str`` of a UUID costs more than finding it by number.
    texts: dict[int, str] = {}
    keyed = []
    for e in events:
        number = e.interview_id.int
        key = texts.get(number)
        if key is None:
            key = texts[number] = str(e.interview_id)
        keyed.append((key, e))
    ids = list(dict.fromkeys(key for key, _ in keyed))
    if preloaded is not None and preloaded[0].issuperset(ids):
        rows = preloaded[1]
    else:
        rows = load_rows(conn, tables, ids, lock=lock_rows and conn.dialect.name != "sqlite")
    touched: dict[str, None] = {}
    timeline: list[Row] = []
    gaps: list[Row] = []
    fills: list[dict[str, Any]] = []
    at = now()
    for key, event in keyed:
        result.max_position = max(result.max_position, event.position)
        # The rows are this call's own (read above, or new): folded in place.
        folded = fold(rows.get(key), event, key, in_place=True)
        if folded.outcome == "duplicate":
            result.duplicates += 1
            continue
        rows[key] = folded.row
        touched[key] = None
        assert folded.timeline is not None
        timeline.append(folded.timeline)
        if folded.outcome == "filled":
            result.filled += 1
            fills.append({"k_id": key, "k_version": event.version, "filled_at": at})
        else:
            result.applied += 1
        for missing in folded.missing:
            result.gaps.append((key, missing, event.version))
            gaps.append(
                {
                    "interview_id": key,
                    "version": missing,
                    "detected_by_version": event.version,
                    "detected_at_position": event.position,
                    "detected_at": at,
                    "filled_at": None,
                }
            )
    # By COPY on PostgreSQL (common.db): an order of magnitude cheaper than multi-row
    # INSERTs that psycopg parses in Python on every batch.
    write_rows(conn, _upsert(conn, tables.interviews), [rows[i] for i in touched], _ROW_KEYS)
    if conn.dialect.name == "postgresql":
        copy_rows(conn, tables.timeline, timeline)
    elif timeline:
        conn.execute(sa.insert(tables.timeline), timeline)
    if gaps:
        conn.execute(sa.insert(tables.gaps), gaps)
    if fills:
        g = tables.gaps
        conn.execute(
            sa.update(g).where(
                g.c.interview_id == sa.bindparam("k_id"), g.c.version == sa.bindparam("k_version")
            ),
            fills,
        )
    for interview_id, missing, by_version in result.gaps:
        log.warning(
            "version gap in interview %s: version %d missing (received version %d); "
            "applied and flagged",
            interview_id,
            missing,
            by_version,
        )
    count_batch(
        conn,
        tables.generation,
        result.max_position,
        (result.applied + result.filled, result.duplicates, len(result.gaps)),
        counter_slot,
    )
    return result
