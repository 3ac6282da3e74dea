"""The persistence kit every service uses: engines for PostgreSQL or an SQLite file,
the database URL's one spelling, the UTC column type, ``ON CONFLICT`` inserts for
both dialects, and the errors that mean "the database is unavailable".

Schema creation is not here: every table comes from ``common/migrations.py``.
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlparse

import psycopg
import psycopg_pool
import sqlalchemy as sa
from eventsourcing import persistence as es
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from .instants import to_utc
from .pgcopy import copy_into
from .settings import POSTGRES_SCHEMES, normalized_database_url

# The database itself failing (down, disconnected, timing out): a reason to retry
# later, never to blame (park, isolate, leave out) the event or row in hand.
DATABASE_OUTAGES: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
# The same, as the drivers and the event store raise it where SQLAlchemy does not
# wrap it (eventsourcing's recorders, psycopg's pool): an API answers 503 to these.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    *DATABASE_OUTAGES,
    es.OperationalError,
    es.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    sqlite3.OperationalError,
)


class DependencyUnavailableError(Exception):
    """A service's database could not be reached: its container raises it while the
    database is down (the API answers 503, a command exits 69)."""


T = TypeVar("T")


class DatabaseProblemError(Exception):
    """A database named in the settings cannot be used as it stands."""


class InvalidDatabaseUrlError(DatabaseProblemError):
    """DATABASE_URL (or a service's own URL) is not a usable PostgreSQL URL."""


class MissingDatabaseError(DatabaseProblemError):
    """The database, or the tables a reader needs, do not exist."""


class UnreachableDatabaseError(DatabaseProblemError):
    """The database server does not answer."""


def redacted(database_url: str) -> str:
    """The URL without its password, fit for a message."""
    try:
        url = urlparse(database_url)
        if url.password is None:
            return database_url
        return url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@", 1)).geturl()
    except ValueError:
        return "<unparsable URL>"


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite file (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def check_database_url(database_url: str) -> None:
    """Raises InvalidDatabaseUrlError unless the URL is a well-formed PostgreSQL URL."""
    scheme, separator, _ = database_url.partition("://")
    if not separator or scheme not in POSTGRES_SCHEMES:
        raise InvalidDatabaseUrlError(
            f"the database URL must be postgresql://USER:PASSWORD@HOST:PORT/DBNAME, "
            f"not {redacted(database_url)!r}"
        )
    try:
        url = urlparse(database_url)
        url.port  # noqa: B018 - parsing the port is the check
    except ValueError as error:
        raise InvalidDatabaseUrlError(
            f"the database URL {redacted(database_url)!r} is malformed: {error}"
        ) from None
    if not url.hostname:
        raise InvalidDatabaseUrlError(f"the database URL {redacted(database_url)!r} has no host")


def require_database(
    database_url: str | None, sqlite_path: Path, tables: Sequence[str], what: str
) -> None:
    """For a command that only reads: the database and ``tables`` must exist
    already. Creates nothing (no file, no database, no table); raises a
    ``DatabaseProblemError`` that says what is missing or unreachable."""
    if database_url:
        _require_postgres(database_url, tables, what)
        return
    if not sqlite_path.is_file():
        raise MissingDatabaseError(
            f"no {what} at {sqlite_path}: the file does not exist (check DATA_DIR or --data-dir)"
        )
    try:
        with closing(sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)) as conn:
            present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as error:
        raise MissingDatabaseError(f"{sqlite_path} is not an SQLite database ({error})") from None
    missing = [table for table in tables if table not in present]
    if missing:
        raise MissingDatabaseError(f"{sqlite_path} holds no {what} (no table {', '.join(missing)})")


def _require_postgres(database_url: str, tables: Sequence[str], what: str) -> None:
    check_database_url(database_url)
    url = urlparse(database_url)
    name = unquote((url.path or "/").lstrip("/")) or "postgres"
    where = f"{url.hostname}:{url.port or 5432}"
    try:
        with psycopg.connect(
            normalized_database_url(database_url), autocommit=True, connect_timeout=5
        ) as conn:
            missing = [
                table
                for table in tables
                if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)
            ]
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "does not exist" in reason:
            raise MissingDatabaseError(
                f"no {what}: database {name!r} does not exist on {where}"
            ) from None
        reason = reason.rsplit(" failed: ", 1)[-1]
        raise UnreachableDatabaseError(f"cannot reach PostgreSQL at {where}: {reason}") from None
    except psycopg.ProgrammingError as error:  # a URL libpq cannot parse
        raise InvalidDatabaseUrlError(
            f"the database URL {redacted(database_url)!r} is malformed: {error}"
        ) from None
    if missing:
        raise MissingDatabaseError(
            f"database {name!r} on {where} holds no {what} (no table {', '.join(missing)})"
        )


def sqlalchemy_url(database_url: str | None, sqlite_path: Path) -> str:
    """PostgreSQL through psycopg when a URL is given, else the SQLite file."""
    if database_url:
        url = normalized_database_url(database_url)
        if url.startswith("postgresql://"):
            return f"postgresql+psycopg://{url.removeprefix('postgresql://')}"
        return url
    return sqlite_url(sqlite_path)


def create_engine(database_url: str | None, sqlite_path: Path, **kwargs: object) -> sa.Engine:
    """PostgreSQL when a URL is given, else an SQLite file in WAL mode."""
    url = sqlalchemy_url(database_url, sqlite_path)
    # An error's text (logged, or stored with a parked event) never shows the
    # statement's parameters: they may hold what a user wrote.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            # Freed space is zeroed: an erased person's words leave no bytes behind
            # (see sqlite_privacy.py for the WAL's part).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    connect_args = {
        "connect_timeout": 5,
        # psycopg prepares a statement run five times, and PostgreSQL then may
        # switch it to a generic plan made without the parameters' values. For
        # the consumers' `event_id = ANY(<500 ids>)` on a young table that plan
        # was a scan costing 43 ms a batch instead of 3 (a third of the views'
        # apply time); planning each execution costs a fraction of a millisecond.
        # Timestamps read back in UTC whatever the server's zone: an instant stored
        # at the calendar's edge (common/instants.py) would not fit in another one.
        "options": "-c plan_cache_mode=force_custom_plan -c TimeZone=UTC",
    }
    return sa.create_engine(url, connect_args=connect_args, **kwargs)


def in_transaction(engine: sa.Engine, work: Callable[[sa.Connection], T], attempts: int = 5) -> T:
    """``work`` in one transaction. On SQLite, a transaction that meets another
    writer (which committed between its read and its write) is run again, up to
    ``attempts`` times, after a pause growing from 50 ms; PostgreSQL's errors are
    raised at once."""
    for attempt in range(1, attempts):
        try:
            with engine.begin() as conn:
                return work(conn)
        except sa_exc.OperationalError:
            if engine.dialect.name != "sqlite":
                raise
            time.sleep(0.05 * attempt)
    with engine.begin() as conn:  # the last attempt: its error is the caller's
        return work(conn)


# ------------------------------------------------------------------ column types


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An instant, aware in and aware UTC out, on PostgreSQL and SQLite alike.

    The rule for naive values: refused (``ValueError``), whatever the dialect.
    A naive datetime does not say which instant it means, and storing it as UTC
    would silently shift any local time by its offset. Aware values are stored in
    UTC, clamped at the calendar's edges (``common/instants.py``); SQLite stores
    them naive, so their text sorts in time order.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime ({value.isoformat()}) names no instant")
        if value.tzinfo is not UTC:  # already UTC: nothing to convert or clamp
            value = to_utc(value)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        # SQLite gives back the naive UTC it was given.
        return None if value is None else to_utc(value)


# ------------------------------------------------------------------ INSERT .. ON CONFLICT

OnConflictInsert = postgresql.Insert | sqlite.Insert
Bind = sa.Connection | sa.Engine | str  # or the dialect's name


def dialect_insert(bind: Bind, table: sa.Table) -> OnConflictInsert:
    """An ``INSERT`` that knows ``ON CONFLICT``, for PostgreSQL or SQLite."""
    name = bind if isinstance(bind, str) else bind.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database {name}")


def insert_ignore(
    bind: Bind, table: sa.Table, index_elements: Sequence[str] | None = None
) -> OnConflictInsert:
    """``INSERT .. ON CONFLICT [(index_elements)] DO NOTHING``: a row already there stays."""
    return dialect_insert(bind, table).on_conflict_do_nothing(index_elements=index_elements)


def upsert(
    bind: Bind,
    table: sa.Table,
    index_elements: Sequence[str],
    update: Sequence[str] | Callable[[Any], Mapping[str, Any]],
    where: Callable[[Any], sa.ColumnElement[bool]] | None = None,
) -> OnConflictInsert:
    """``INSERT .. ON CONFLICT (index_elements) DO UPDATE``.

    ``update`` names the columns that take the new row's values, or maps the new
    row (``excluded``) to the ``SET`` clause; ``where(excluded)`` limits the update
    (a row it does not hold for stays as it is)."""
    statement = dialect_insert(bind, table)
    new = statement.excluded
    set_ = update(new) if callable(update) else {column: new[column] for column in update}
    return statement.on_conflict_do_update(
        index_elements=list(index_elements),
        set_=dict(set_),
        where=where(new) if where is not None else None,
    )


# ------------------------------------------------------------------ bulk reads and writes

# Rows up to which a bulk write is one multi-row statement rather than a COPY.
SMALL_BATCH = 50
# In a Connection's ``info`` while ``common.pipeline.pipelined`` runs (no COPY then).
PIPELINED = "psycopg pipeline"


def write_rows(
    conn: sa.Connection,
    statement: OnConflictInsert,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
) -> Sequence[sa.Row[Any]]:
    """``statement`` (an ``INSERT .. ON CONFLICT`` of one table, maybe ``RETURNING``) for
    every row of ``rows``, in the caller's transaction; returns the ``RETURNING`` rows
    (none without it). ``columns``: the rows' keys written (default: the first row's).

    On PostgreSQL the rows of a large batch go by COPY into a session-local staging
    table and one ``INSERT .. SELECT`` reads them from there in the order given (so a
    serial column numbers them in that order): psycopg's parsing of a multi-row
    ``VALUES`` statement of a few hundred rows costs more than the server's work.
    Values are bound as the executemany would bind them (by the columns' own types).
    A small batch (``SMALL_BATCH`` rows or fewer: light traffic, where each round trip
    delays the effect), a transaction in ``pipelined`` and SQLite (neither has COPY) run
    the statement with ``rows`` as its parameters, one multi-row statement in the
    order given, one round trip instead of four."""
    if not rows:
        return []
    columns = list(columns or rows[0])
    if not _copies(conn, rows):
        result = conn.execute(statement, [{c: row[c] for c in columns} for row in rows])
        return result.all() if result.returns_rows else []
    table = cast(sa.Table, statement.table)
    stage = _staging_table(table, columns)
    names = ", ".join(f'"{c}"' for c in columns)
    with _driver_cursor(conn) as cursor:
        # In the transaction (a rolled-back one takes the table with it): a no-op
        # once the session has it.
        cursor.execute(
            f'CREATE TEMPORARY TABLE IF NOT EXISTS "{stage.name}" ON COMMIT DELETE ROWS AS '
            f'SELECT {names}, 0::bigint AS "{_ORDER}" FROM "{table.name}" WITH NO DATA'
        )
        # Numbered on from the session's previous call: rows an earlier statement of
        # this transaction staged stay out of this one without emptying the table
        # (the commit empties it).
        first = conn.info.get(_ORDER, 0)
        copy_into(conn, cursor, table, stage.name, columns, rows, first, _ORDER)
        conn.info[_ORDER] = first + len(rows)
    order = stage.c[_ORDER]
    source = sa.select(*(stage.c[c] for c in columns)).where(order >= first).order_by(order)
    result = conn.execute(statement.from_select(columns, source))
    return result.all() if result.returns_rows else []


def copy_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Appends ``rows`` (new ones: no conflict handling) to ``table`` by COPY, values
    bound by the columns' types; PostgreSQL only (``write_rows`` serves both). A
    small batch, or any in a transaction in ``pipelined``, is one multi-row ``INSERT``
    (one round trip; a COPY takes two)."""
    if rows and not _copies(conn, rows):
        columns = list(table.c.keys())
        conn.execute(sa.insert(table), [{c: row[c] for c in columns} for row in rows])
    elif rows:
        with _driver_cursor(conn) as cursor:
            copy_into(conn, cursor, table, table.name, list(table.c.keys()), rows)


def _copies(conn: sa.Connection, rows: Sequence[Any]) -> bool:
    """Whether a bulk write of ``rows`` goes by COPY: on PostgreSQL, more than
    ``SMALL_BATCH`` rows, outside ``pipelined`` (where COPY is not allowed)."""
    return (
        conn.dialect.name == "postgresql" and len(rows) > SMALL_BATCH and PIPELINED not in conn.info
    )


@contextmanager
def _driver_cursor(conn: sa.Connection) -> Iterator[psycopg.Cursor[Any]]:
    """A cursor of the psycopg connection under ``conn`` (PostgreSQL's only driver here),
    whose errors are raised as SQLAlchemy raises a statement's: an outage is an
    ``OperationalError`` (retried, never blamed on the events), a missing column a
    ``ProgrammingError`` whose ``orig`` readiness reads as a schema mismatch. Raw,
    they would be neither, and the consumer would park good events."""
    driver = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    try:
        with driver.cursor() as cursor:
            yield cursor
    except psycopg.Error as error:
        raise sa_error("COPY (common.db.write_rows)", error, conn.dialect) from error


def sa_error(what: str, error: psycopg.Error, dialect: sa.Dialect) -> sa_exc.StatementError:
    """A driver's error raised where no statement of SQLAlchemy's was (a COPY, a
    pipeline's end) as SQLAlchemy raises a statement's: an outage reads as one."""
    return sa_exc.DBAPIError.instance(what, None, error, psycopg.Error, dialect=dialect)


_ORDER = "stage_order"
_stages: dict[tuple[str, tuple[str, ...]], sa.Table] = {}


def _staging_table(table: sa.Table, columns: Sequence[str]) -> sa.Table:
    """The staging table of ``table``'s ``columns``: one name per column set, so a
    session that staged other columns of the table (or a table since migrated) never
    mixes them up."""
    key = (table.name, tuple(columns))
    stage = _stages.get(key)
    if stage is None:
        digest = zlib.crc32(",".join(columns).encode())
        stage = _stages[key] = sa.Table(
            f"stage_{table.name[:40]}_{digest:08x}",
            sa.MetaData(),
            *(sa.Column(c, table.c[c].type) for c in columns),
            sa.Column(_ORDER, sa.BigInteger),
        )
    return stage
