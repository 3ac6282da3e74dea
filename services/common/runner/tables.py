"""The runner's bookkeeping in each consumer's own database, and how it writes it.

``processed_events`` (ids already applied, per group), ``consumer_offsets``
(Kafka: the next offset per partition), ``consumer_positions`` (embedded: the
log position) and ``parked_events`` (events the consumer could not apply, with
every later event of their interview). The tables are a migration history of
their own (``services/common/runner_migrations``), applied with the service's
histories before a consumer starts.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..consumer import ConsumerSpec
from ..db import copy_rows
from ..migrations import History, migrate
from ..sql_values import bound_values, one_of_bound

if TYPE_CHECKING:
    pass

runner_metadata = sa.MetaData()

processed_events = sa.Table(
    "processed_events",
    runner_metadata,
    sa.Column("group", sa.String(100), primary_key=True),
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)
consumer_offsets = sa.Table(
    "consumer_offsets",
    runner_metadata,
    sa.Column("group", sa.String(100), primary_key=True),
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)
consumer_positions = sa.Table(
    "consumer_positions",
    runner_metadata,
    sa.Column("group", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)
parked_events = sa.Table(
    "parked_events",
    runner_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("group", sa.String(100), nullable=False),
    sa.Column("interview_id", sa.String(36), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(255), nullable=True),  # topic/partition/offset, if any
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("group", "event_id", name="uq_parked_group_event"),
    sa.Index("ix_parked_group_interview", "group", "interview_id"),
)

RUNNER_HISTORY = History(
    name="runner",
    package="services.common.runner_migrations",
    metadata=runner_metadata,
    first_release_tables=("processed_events", "consumer_offsets", "consumer_positions",
                          "parked_events"),
)  # fmt: skip


def migrate_consumer_database(spec: ConsumerSpec) -> None:
    """The runner's tables and the service's own (``spec.histories``) at their heads
    in the consumer's database (or ``SchemaError`` if it must not be used)."""
    migrate(
        spec.engine,
        [RUNNER_HISTORY, *spec.histories],
        auto=spec.auto_migrate,
        database=f"database of consumer {spec.group}",
    )


def processed_ids(conn: sa.Connection, group: str, event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` the group has processed."""
    dialect = conn.dialect.name
    query = sa.select(processed_events.c.event_id).where(
        processed_events.c.group == group,
        one_of_bound(dialect, processed_events.c.event_id, "ids"),
    )
    return set(conn.execute(query, {"ids": bound_values(dialect, event_ids)}).scalars())


@functools.cache
def _processed_or_parked(dialect: str) -> sa.CompoundSelect[Any]:
    """The query of ``processed_or_parked``, built once per dialect (each batch runs it)."""
    group = sa.bindparam("group", type_=sa.String)
    processed = sa.select(
        processed_events.c.event_id, sa.null().cast(sa.String).label("interview_id")
    ).where(
        processed_events.c.group == group,
        one_of_bound(dialect, processed_events.c.event_id, "event_ids"),
    )
    parked = sa.select(parked_events.c.event_id, parked_events.c.interview_id).where(
        parked_events.c.group == group,
        one_of_bound(dialect, parked_events.c.interview_id, "interview_ids"),
    )
    return sa.union_all(processed, parked)


def processed_or_parked(
    conn: sa.Connection, group: str, event_ids: list[str], interview_ids: list[str]
) -> tuple[set[str], dict[str, str]]:
    """In one round trip: the ids the group must not apply again (those of
    ``event_ids`` it processed, and every parked event of ``interview_ids``), and
    the interviews among ``interview_ids`` with a parked event (with one of them)."""
    dialect = conn.dialect.name
    seen: set[str] = set()
    blocked: dict[str, str] = {}
    rows = conn.execute(
        _processed_or_parked(dialect),
        {
            "group": group,
            "event_ids": bound_values(dialect, event_ids),
            "interview_ids": bound_values(dialect, interview_ids),
        },
    )
    for event_id, interview_id in rows:
        seen.add(event_id)
        if interview_id is not None:
            blocked[interview_id] = event_id
    return seen, blocked


def record_processed(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Inserts the processed ids (``group``, ``event_id``, ``position``); with COPY
    on PostgreSQL (several times cheaper than a multi-row INSERT, which psycopg
    parses in Python)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(processed_events.insert(), rows)
        return
    copy_rows(conn, processed_events, rows)


def upsert_greater(
    conn: sa.Connection, table: sa.Table, keys: dict[str, Any], column: str, value: int
) -> None:
    """Sets ``column`` to ``value`` for the row ``keys``, never moving it backwards."""
    statement = _upsert_greater(conn.dialect.name, table, tuple(keys), column)
    conn.execute(statement, {**keys, column: value})


@functools.cache
def _upsert_greater(dialect: str, table: sa.Table, keys: tuple[str, ...], column: str) -> Any:
    """``upsert_greater``'s statement, built once (a consumer runs it every batch)."""
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values({name: sa.bindparam(name) for name in (*keys, column)})
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={column: stmt.excluded[column]},
        where=table.c[column] < stmt.excluded[column],
    )


def upsert_greater_many(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], column: str
) -> None:
    """``upsert_greater`` of every row (its keys and ``column``), one statement built
    once and run for all the partitions a batch read (one round trip)."""
    if not rows:
        return
    keys = tuple(k for k in rows[0] if k != column)
    conn.execute(_upsert_greater(conn.dialect.name, table, keys, column), rows)
