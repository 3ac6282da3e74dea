"""SQLAlchemy engines for a consumer's own database: PostgreSQL, or an SQLite file."""

from __future__ import annotations

from pathlib import Path

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
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
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
