"""The persistence kit (``services/common/db.py``) on SQLite and on PostgreSQL: one
UTC column type, ``ON CONFLICT`` inserts, and the errors that mean "unavailable"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from services.common.db import (
    DATABASE_OUTAGES,
    DATABASE_UNAVAILABLE,
    UtcDateTime,
    create_engine,
    in_transaction,
    insert_ignore,
    upsert,
)
from services.common.instants import UTC_MAX

pytestmark = pytest.mark.integration

metadata = sa.MetaData()
rows = sa.Table(
    "kit_rows",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=True),
)
PARIS_SUMMER = timezone(timedelta(hours=2))


@pytest.fixture
def engine(database_url: str | None, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(database_url, tmp_path / "kit.sqlite")
    metadata.create_all(engine)  # a table of the test's own, not a service's
    yield engine
    engine.dispose()


def table(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(rows).order_by(rows.c.id))]


def put(engine: sa.Engine, statement: Any, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(statement.values(**values))


def test_an_aware_instant_reads_back_as_the_same_instant_in_utc(engine: sa.Engine) -> None:
    local = datetime(2026, 7, 1, 14, 30, tzinfo=PARIS_SUMMER)
    with engine.begin() as conn:
        conn.execute(rows.insert().values(id="a", label="x", version=1, at=local))

    [(_, _, _, at)] = table(engine)

    assert at == local
    assert at.tzinfo is not None and at.utcoffset() == timedelta(0)
    assert at.hour == 12


def test_instants_compare_by_time_whatever_their_offset(engine: sa.Engine) -> None:
    earlier = datetime(2026, 7, 1, 13, 0, tzinfo=PARIS_SUMMER)  # 11:00 UTC
    later = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(rows.insert(), [
            {"id": "later", "label": "x", "version": 1, "at": later},
            {"id": "earlier", "label": "x", "version": 1, "at": earlier},
        ])  # fmt: skip
        due = conn.execute(
            sa.select(rows.c.id).where(rows.c.at <= datetime(2026, 7, 1, 11, 30, tzinfo=UTC))
        ).scalars()
        ordered = conn.execute(sa.select(rows.c.id).order_by(rows.c.at)).scalars()

        assert list(due) == ["earlier"]
        assert list(ordered) == ["earlier", "later"]


def test_a_naive_datetime_is_refused_and_nothing_is_stored(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(rows.insert().values(id="a", label="x", version=1, at=datetime(2026, 7, 1)))

    assert table(engine) == []


def test_an_instant_past_the_calendars_end_in_utc_is_stored_at_the_end(
    engine: sa.Engine,
) -> None:
    edge = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1)))
    with engine.begin() as conn:
        conn.execute(rows.insert().values(id="a", label="x", version=1, at=edge))

    [(_, _, _, at)] = table(engine)

    assert at == UTC_MAX


def test_insert_ignore_keeps_the_row_already_there(engine: sa.Engine) -> None:
    put(engine, insert_ignore(engine, rows), id="a", label="first", version=1)

    put(engine, insert_ignore(engine, rows), id="a", label="second", version=2)
    put(engine, insert_ignore(engine, rows, ["id"]), id="a", label="third", version=3)

    assert table(engine) == [("a", "first", 1, None)]


def test_upsert_sets_the_named_columns_from_the_new_row(engine: sa.Engine) -> None:
    statement = upsert(engine, rows, ["id"], ["label"])
    put(engine, statement, id="a", label="first", version=1)

    put(engine, statement, id="a", label="second", version=9)

    assert table(engine) == [("a", "second", 1, None)]  # version not named: kept


def test_upsert_with_a_condition_only_moves_a_row_forward(engine: sa.Engine) -> None:
    with engine.connect() as conn:  # built on a connection, as the consumers do
        statement = upsert(
            conn, rows, ["id"], ["label", "version"], where=lambda new: rows.c.version < new.version
        )
    put(engine, statement, id="a", label="v2", version=2)

    put(engine, statement, id="a", label="v1", version=1)
    stale = table(engine)
    put(engine, statement, id="a", label="v3", version=3)

    assert stale == [("a", "v2", 2, None)]
    assert table(engine) == [("a", "v3", 3, None)]


def test_upsert_can_compute_the_update_from_the_new_row(engine: sa.Engine) -> None:
    statement = upsert(
        engine.dialect.name,  # by dialect name, as a cached statement is built
        rows,
        ["id"],
        lambda new: {"label": rows.c.label + "+" + new.label, "version": rows.c.version + 1},
    )
    put(engine, statement, id="a", label="a", version=1)

    put(engine, statement, id="a", label="b", version=1)

    assert table(engine) == [("a", "a+b", 2, None)]


def test_a_database_that_does_not_answer_raises_an_unavailable_error(tmp_path: Path) -> None:
    closed = "postgresql://nobody:secret@127.0.0.1:1/none"
    engine = create_engine(closed, tmp_path / "unused.sqlite")
    try:
        with pytest.raises(DATABASE_OUTAGES):
            engine.connect()
    finally:
        engine.dispose()
    with pytest.raises(DATABASE_UNAVAILABLE):
        psycopg.connect(closed, connect_timeout=2)


def test_a_transaction_that_met_another_writer_is_run_again_on_sqlite_only(
    engine: sa.Engine,
) -> None:
    tries: list[int] = []

    def work(conn: sa.Connection) -> str:
        tries.append(1)
        conn.execute(rows.insert().values(id=f"try-{len(tries)}", label="x", version=1))
        if len(tries) == 1:
            raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))
        return "done"

    if engine.dialect.name == "sqlite":
        assert in_transaction(engine, work) == "done"
        assert [r[0] for r in table(engine)] == ["try-2"]  # the first try rolled back
    else:
        with pytest.raises(sa.exc.OperationalError):
            in_transaction(engine, work)
        assert table(engine) == []
    assert len(tries) == (2 if engine.dialect.name == "sqlite" else 1)


def test_a_transaction_that_keeps_meeting_writers_gives_up_after_its_attempts(
    engine: sa.Engine,
) -> None:
    tries: list[int] = []

    def work(conn: sa.Connection) -> None:
        tries.append(1)
        raise sa.exc.OperationalError("UPDATE", {}, Exception("database is locked"))

    with pytest.raises(sa.exc.OperationalError):
        in_transaction(engine, work, attempts=3)

    assert len(tries) == (3 if engine.dialect.name == "sqlite" else 1)
