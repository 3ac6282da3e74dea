"""The runner's bookkeeping in a consumer's database, read and written in as few
round trips as a batch allows, on SQLite and PostgreSQL alike; and the pipelined
transaction a light batch is applied in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common.db import SMALL_BATCH, create_engine, write_rows
from services.common.pipeline import pipelined
from services.common.runner.tables import (
    consumer_offsets,
    parked_events,
    processed_events,
    processed_or_parked,
    record_processed,
    runner_metadata,
    upsert_greater_many,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str | None, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(database_url, tmp_path / "consumer.sqlite")
    runner_metadata.create_all(engine)
    yield engine
    engine.dispose()


def park_row(group: str, interview_id: str, event_id: str) -> dict[str, object]:
    return {
        "group": group,
        "interview_id": interview_id,
        "event_id": event_id,
        "type": "interview.accepted",
        "version": 2,
        "position": 7,
        "source": None,
        "payload": "{}",
        "error": "handler bug",
        "attempts": 3,
        "parked_at": datetime(2026, 12, 1, tzinfo=UTC),
    }


def test_one_query_tells_processed_ids_and_every_parked_event_of_the_batchs_interviews(
    engine: sa.Engine,
) -> None:
    with engine.begin() as conn:
        record_processed(conn, [{"group": "g", "event_id": "e1", "position": 1},
                                {"group": "other", "event_id": "e2", "position": 2}])  # fmt: skip
        conn.execute(
            parked_events.insert(),
            [park_row("g", "i1", "p1"), park_row("g", "i1", "p2"), park_row("other", "i2", "p3")],
        )
    with engine.connect() as conn:
        seen, blocked = processed_or_parked(conn, "g", ["e1", "e2", "e3"], ["i1", "i2"])
    # e2 and i2's parked event belong to another group; both parked events of i1
    # count as seen, so neither is applied by a replay.
    assert seen == {"e1", "p1", "p2"}
    assert set(blocked) == {"i1"} and blocked["i1"] in {"p1", "p2"}


def test_nothing_known_reads_as_nothing_seen_or_parked(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert processed_or_parked(conn, "g", ["e1"], ["i1"]) == (set(), {})


def test_offsets_of_every_partition_move_in_one_statement_and_never_backwards(
    engine: sa.Engine,
) -> None:
    def store(offsets: dict[int, int]) -> None:
        rows = [{"group": "g", "topic": "t", "partition": p, "next_offset": o}
                for p, o in offsets.items()]  # fmt: skip
        with engine.begin() as conn:
            upsert_greater_many(conn, consumer_offsets, rows, "next_offset")

    def stored() -> dict[int, int]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(consumer_offsets.c.partition, consumer_offsets.c.next_offset)
            )
            return {row.partition: row.next_offset for row in rows}

    store({0: 10, 1: 5})
    store({0: 4, 1: 9, 2: 1})  # partition 0 behind what is stored: it stays at 10
    assert stored() == {0: 10, 1: 9, 2: 1}


def test_the_bookkeeping_commits_with_the_transaction_or_not_at_all(engine: sa.Engine) -> None:
    def offsets() -> dict[int, int]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(consumer_offsets.c.partition, consumer_offsets.c.next_offset)
            )
            return {row.partition: row.next_offset for row in rows}

    def batch(event_ids: list[str], next_offset: int) -> None:
        with engine.connect() as conn, conn.begin(), pipelined(conn):
            record_processed(
                conn, [{"group": "g", "event_id": e, "position": 1} for e in event_ids]
            )
            upsert_greater_many(
                conn,
                consumer_offsets,
                [{"group": "g", "topic": "t", "partition": 0, "next_offset": next_offset}],
                "next_offset",
            )

    batch(["e1", "e2"], 3)
    assert offsets() == {0: 3}
    # e2 again breaks the primary key: the new id and the offset stay out with it.
    with pytest.raises(sa.exc.IntegrityError):
        batch(["e3", "e2"], 5)
    assert offsets() == {0: 3}
    with engine.connect() as conn:
        seen, _ = processed_or_parked(conn, "g", ["e1", "e2", "e3"], [])
    assert seen == {"e1", "e2"}
    batch(["e3"], 5)  # the connection that failed is fit for the next batch
    assert offsets() == {0: 5}


def offsets_row(partition: int, next_offset: int) -> dict[str, object]:
    return {"group": "g", "topic": "t", "partition": partition, "next_offset": next_offset}


def test_a_pipelined_transaction_reads_what_it_wrote_and_writes_any_number_of_rows(
    engine: sa.Engine,
) -> None:
    many = [{"group": "g", "event_id": f"e{i}", "position": i} for i in range(SMALL_BATCH + 10)]
    statement = sa.insert(processed_events).returning(processed_events.c.event_id)
    with engine.connect() as conn:
        with conn.begin(), pipelined(conn):
            upsert_greater_many(conn, consumer_offsets, [offsets_row(0, 7)], "next_offset")
            # A read waits for its answer, which brings the write's before it.
            assert conn.execute(sa.select(consumer_offsets.c.next_offset)).scalar() == 7
            # More rows than a COPY would take, as one statement (no COPY in a pipeline),
            # and RETURNING read back in order.
            returned = write_rows(conn, statement, many)
            assert [row.event_id for row in returned] == [row["event_id"] for row in many]
        seen, _ = processed_or_parked(conn, "g", [row["event_id"] for row in many], [])
    assert seen == {row["event_id"] for row in many}


def test_in_a_pipelined_transaction_a_write_does_not_wait_for_its_answer(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = create_engine(postgres_url, tmp_path / "unused.sqlite")
    runner_metadata.create_all(engine)
    try:
        with engine.connect() as conn:
            record_processed(conn, [{"group": "g", "event_id": "e1", "position": 1}])
            conn.commit()
            sent_without_waiting = False
            with pytest.raises(sa.exc.IntegrityError), conn.begin(), pipelined(conn):
                upsert_greater_many(conn, consumer_offsets, [offsets_row(0, 3)], "next_offset")
                # The duplicate id is refused by the server, but the statement returns
                # at once: its answer comes with the COMMIT, which then fails.
                record_processed(conn, [{"group": "g", "event_id": "e1", "position": 1}])
                sent_without_waiting = True
            assert sent_without_waiting
            # Nothing of the transaction was committed, and the connection goes on.
            stored = sa.select(sa.func.count()).select_from(consumer_offsets)
            assert conn.execute(stored).scalar() == 0
            conn.rollback()
    finally:
        engine.dispose()
