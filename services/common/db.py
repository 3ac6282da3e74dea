"""SQLAlchemy engines for a consumer's own database: PostgreSQL, or an SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlparse

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

# The database itself failing (down, disconnected, timing out): a reason to retry
# later, never to blame (park, isolate, leave out) the event or row in hand.
DATABASE_OUTAGES: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


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
    import psycopg

    check_database_url(database_url)
    url = urlparse(database_url)
    name = unquote((url.path or "/").lstrip("/")) or "postgres"
    where = f"{url.hostname}:{url.port or 5432}"
    libpq_url = f"postgresql://{database_url.partition('://')[2]}"
    try:
        with psycopg.connect(libpq_url, autocommit=True, connect_timeout=5) as conn:
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
    if database_url:
        scheme, _, rest = database_url.partition("://")
        if scheme in ("postgresql", "postgres"):
            return f"postgresql+psycopg://{rest}"
        return database_url
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{sqlite_path}"


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
            # Freed pages are zeroed: redacted text or a destroyed key leaves no trace.
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
