"""Transactions sent to PostgreSQL in psycopg's pipeline mode: the writes of a
transaction go with its next read or its COMMIT instead of waiting one round trip
each (the consumer runner applies light traffic's small batches so)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy import event

from .db import PIPELINED, sa_error


@contextmanager
def pipelined(conn: sa.Connection) -> Iterator[None]:
    """The block's statements and then the ``COMMIT`` of ``conn``'s transaction, sent
    to PostgreSQL in psycopg's pipeline mode: a statement that returns rows (a
    ``SELECT``, ``RETURNING``) waits for its answer, which brings those of the
    statements queued before it; one that returns none (``INSERT``, ``UPDATE``,
    ``DELETE``) is sent with the next that waits, or with the ``COMMIT``. A batch
    that reads three times and then writes takes four round trips, where each
    statement would take its own.

    Inside the block a write's row count is unknown (-1; ask with ``RETURNING``),
    ``db.write_rows`` and ``db.copy_rows`` write multi-row statements (no COPY in
    pipeline mode), and a failed write raises at a later statement (the error's
    detail tells which row it refused) or when the block ends; either way nothing
    is committed. The
    transaction ends with the block; the caller's own commit then finds nothing
    left to do. On SQLite the statements run one by one and the caller's commit
    commits."""
    if conn.dialect.name != "postgresql":
        yield
        return
    engine = conn.engine
    if not event.contains(engine, "after_cursor_execute", _answer_if_awaited):
        event.listen(engine, "after_cursor_execute", _answer_if_awaited)
    driver = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    # The connection's info read now: once a lost session invalidated ``conn``, reading
    # ``conn.info`` would raise an error of its own in place of the outage.
    info = conn.info
    try:
        with driver.pipeline() as pipeline:
            info[PIPELINED] = pipeline
            try:
                yield
                driver.execute("COMMIT")
            finally:
                del info[PIPELINED]
    except psycopg.Error as error:
        raise sa_error("pipeline (common.pipeline.pipelined)", error, conn.dialect) from error


class Pending:
    """A read sent by ``read_ahead``: its rows come back with the transaction's next
    round trip (a read through SQLAlchemy, or the ``COMMIT``)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def rows(self) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """The column names and the rows (waits for them if nothing fetched them yet).

        Values as psycopg reads them, which is how SQLAlchemy returns them on
        PostgreSQL for the types the projections read (its psycopg dialect leaves
        JSON, times and numbers to psycopg)."""
        cursor = self._cursor
        try:
            records = cursor.fetchall()
            names = tuple(column.name for column in cursor.description or ())
        finally:
            cursor.close()
        return names, records


def read_ahead(conn: sa.Connection, statement: Any, params: dict[str, Any]) -> Pending | None:
    """In ``pipelined``: ``statement`` sent with ``params`` without waiting for its rows,
    which come back with the next statement that waits (``Pending.rows``); None
    elsewhere (the caller reads as usual). A statement that fails aborts the
    transaction as any other would: the error comes with that round trip."""
    if PIPELINED not in conn.info:
        return None
    compiled = _compiled(conn.dialect, statement)
    processors = compiled._bind_processors
    values = compiled.construct_params(params)
    bound = {
        name: processors[name](value) if name in processors else value
        for name, value in values.items()
    }
    driver = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    cursor = driver.cursor()
    cursor.execute(compiled.string, bound)
    return Pending(cursor)


@functools.cache
def _compiled(dialect: sa.Dialect, statement: Any) -> Any:
    """``statement`` compiled once for ``dialect`` (each batch runs the same few)."""
    return statement.compile(dialect=dialect)


def _answer_if_awaited(
    conn: sa.Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: sa.engine.ExecutionContext | None,
    executemany: bool,
) -> None:
    """In ``pipelined``: a statement whose rows SQLAlchemy reads as soon as it was sent
    gets its answer now (``sync``), with those of the writes queued before it."""
    pipeline = conn.info.get(PIPELINED)
    if pipeline is not None and _returns_rows(context):
        pipeline.sync()


# An execution option of a statement SQLAlchemy cannot tell returns no rows (a
# ``text`` one): ``pipelined`` sends it with the next statement that waits.
RETURNS_NO_ROWS = "pipeline_returns_no_rows"


def _returns_rows(context: sa.engine.ExecutionContext | None) -> bool:
    compiled = getattr(context, "compiled", None)
    if context is None or compiled is None:  # driver SQL: assume it does
        return True
    if context.execution_options.get(RETURNS_NO_ROWS):
        return False
    if context.isinsert or context.isupdate or getattr(context, "isdelete", False):
        return bool(compiled.effective_returning)
    return True
