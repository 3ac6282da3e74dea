"""``common.db.write_rows``: an ``INSERT .. ON CONFLICT`` for many rows, by COPY through a
staging table on PostgreSQL (or, for a small batch, one multi-row statement) and by plain
parameters on SQLite, with the same outcome. Every test runs both PostgreSQL paths."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common import db
from services.common.db import UtcDateTime, create_engine, insert_ignore, upsert, write_rows

pytestmark = pytest.mark.integration

metadata = sa.MetaData()
items = sa.Table(
    "bulk_items",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("key", sa.String(16), nullable=False, unique=True),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)
AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def row(key: str, text: str | None = "x") -> dict[str, object]:
    return {"key": key, "text": text, "details": {"k": [key, 1]}, "at": AT}


@pytest.fixture(params=["copy", "one statement"], autouse=True)
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which way PostgreSQL writes these few rows: by COPY (as a large batch) or as
    one multi-row statement (a small batch's way)."""
    monkeypatch.setattr(db, "SMALL_BATCH", 0 if request.param == "copy" else 1_000)
    return str(request.param)


@pytest.fixture
def engine(database_url: str | None, tmp_path: Path) -> sa.Engine:
    engine = create_engine(database_url, tmp_path / "bulk.sqlite")
    metadata.create_all(engine)
    return engine


def test_two_writes_in_one_transaction_each_insert_their_own_rows_in_order(
    engine: sa.Engine,
) -> None:
    statement = insert_ignore(engine, items).returning(items.c.key)
    with engine.begin() as conn:
        first = write_rows(conn, statement, [row("b"), row("a", None), row("c\t\\ \n'")])
        second = write_rows(conn, statement, [row("a"), row("d")])
    assert [r.key for r in first] == ["b", "a", "c\t\\ \n'"]
    assert [r.key for r in second] == ["d"], "a row already there is not inserted again"
    with engine.connect() as conn:
        stored = conn.execute(sa.select(items).order_by(items.c.seq)).mappings().all()
    assert [(r["key"], r["text"]) for r in stored] == [
        ("b", "x"),
        ("a", None),
        ("c\t\\ \n'", "x"),
        ("d", "x"),
    ]
    assert all(r["details"] == {"k": [r["key"], 1]} and r["at"] == AT for r in stored)


def test_an_upsert_updates_rows_and_a_rolled_back_write_leaves_nothing(engine: sa.Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        write_rows(conn, insert_ignore(conn, items), [row("z")])
        raise RuntimeError("the batch fails after its write")
    with engine.begin() as conn:  # the staging table went with the rollback: made again
        write_rows(conn, insert_ignore(conn, items), [row("a")])
    with engine.begin() as conn:
        write_rows(conn, upsert(conn, items, ["key"], ["text"]), [row("a", "new"), row("b")])
    with engine.connect() as conn:
        stored = conn.execute(sa.select(items.c.key, items.c.text).order_by(items.c.seq)).all()
    assert [tuple(r) for r in stored] == [("a", "new"), ("b", "x")]


def test_driver_errors_of_the_copy_are_raised_as_sqlalchemy_raises_them(
    engine: sa.Engine, write_path: str
) -> None:
    """A consumer tells an outage (retry) and a schema it does not know (halt) from a bad
    event (park) by SQLAlchemy's error classes: the COPY path raises those too."""
    from services.common.db import DATABASE_OUTAGES
    from services.common.readiness import schema_problem

    if engine.dialect.name != "postgresql" or write_path != "copy":
        pytest.skip("COPY is PostgreSQL's path for a large batch")
    statement = insert_ignore(engine, items)
    with engine.begin() as conn:
        conn.exec_driver_sql('ALTER TABLE "bulk_items" DROP COLUMN "text"')
    with pytest.raises(sa.exc.ProgrammingError) as missing, engine.begin() as conn:
        write_rows(conn, statement, [row("a")])
    assert "text" in (schema_problem(missing.value) or "")

    with engine.begin() as conn:
        conn.exec_driver_sql('ALTER TABLE "bulk_items" ADD COLUMN "text" TEXT')
    with pytest.raises(DATABASE_OUTAGES), engine.begin() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid or 0)})")
        write_rows(conn, statement, [row("b")])
    with engine.begin() as conn:  # the pool hands out a live connection again
        assert [r.key for r in write_rows(conn, statement.returning(items.c.key), [row("c")])] == [
            "c"
        ]


def test_json_is_stored_as_the_same_text_and_instants_as_the_same_instant_either_way(
    engine: sa.Engine,
) -> None:
    """The COPY path writes a JSON column's text as the one-statement path does
    (``json.dumps`` of the value, byte for byte: a ``json`` column keeps it as sent),
    and an instant in any zone as the same UTC instant."""
    import json
    from zoneinfo import ZoneInfo

    if engine.dialect.name != "postgresql":
        pytest.skip("the text a PostgreSQL json column keeps")
    values: list[object] = [
        [],
        {},
        {"k": ["tab\there", "line\nbreak", "back\\slash", 'quote"', "é ☃"], "n": None},
        [1, 2.5, True, {"nested": {"deep": []}}],
    ]
    berlin = AT.astimezone(ZoneInfo("Europe/Berlin"))
    rows = [
        {"key": f"j{i}", "text": None, "details": value, "at": berlin if i % 2 else AT}
        for i, value in enumerate(values)
    ]
    with engine.begin() as conn:
        write_rows(conn, insert_ignore(conn, items), rows)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            'SELECT key, details::text, at FROM "bulk_items" ORDER BY seq'
        ).all()
    assert [(k, text) for k, text, _ in stored] == [
        (f"j{i}", json.dumps(value)) for i, value in enumerate(values)
    ]
    assert all(at == AT for _, _, at in stored)


def test_a_value_of_another_type_than_its_column_takes_is_still_written_by_copy(
    engine: sa.Engine, write_path: str
) -> None:
    """The COPY writes PostgreSQL's binary form when every value fits its column; a
    value that does not (here a number for a text column) sends the batch as text,
    which the server parses as the literal it reads, as before."""
    if engine.dialect.name != "postgresql" or write_path != "copy":
        pytest.skip("COPY is PostgreSQL's path for a large batch")
    with engine.begin() as conn:
        write_rows(conn, insert_ignore(conn, items), [row("a", "x"), row("b", 5)])  # type: ignore[arg-type]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(items.c.key, items.c.text).order_by(items.c.seq)).all()
    assert [tuple(r) for r in stored] == [("a", "x"), ("b", "5")]
