"""The projections' live batches on PostgreSQL: a light batch costs two round trips
(its reads together, then its writes with the COMMIT), and what it saves changes no
guarantee: the views are those of batches applied without reading ahead, a swap or
a dropped generation between two batches is read again, and a batch that fails
before its COMMIT leaves no effect, no processed id and no position."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from services.common.runner import loop
from services.common.runner.embedded import EmbeddedSource
from services.common.runner.loop import ConsumerRunner
from services.common.runner.source import SourceRecord
from services.common.runner.tables import consumer_positions, parked_events, processed_events
from services.contracts import EventEnvelope
from services.projections.adapters.schema import view_tables
from services.projections.adapters.store import (
    create_generation,
    current_generation,
    drop_generations,
    swap_to,
)
from services.projections.bootstrap import ProjectionsContainer, consumer_spec
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET
from tests.support.projections_reference import scripts, synthetic_events

pytestmark = pytest.mark.integration

Make = Callable[[str], str]


@pytest.fixture
def make_runner(tmp_path: Path) -> Iterator[Callable[..., ConsumerRunner]]:
    containers: list[ProjectionsContainer] = []

    def make(url: str, *, read_ahead: bool = True) -> ConsumerRunner:
        container = ProjectionsContainer(
            ProjectionsSettings(
                database_url=url,
                projections_database_url=url,
                kafka_bootstrap_servers=None,
                data_dir=tmp_path,
                auth_secret=TEST_SECRET,
            )
        )
        containers.append(container)
        spec = consumer_spec(container)
        if not read_ahead:
            spec = dataclasses.replace(spec, read_ahead=None)
        runner = ConsumerRunner(spec, EmbeddedSource(lambda after, limit: [], threading.Event()))
        loop.migrate_consumer_database(spec)
        runner.source.open(spec.group, spec.engine, runner.metrics)
        return runner

    yield make
    for container in containers:
        container.close()


def in_batches(events: list[EventEnvelope], size: int = 15) -> list[list[SourceRecord]]:
    ordered = sorted(events, key=lambda e: e.position)
    return [
        [SourceRecord(envelope=e) for e in ordered[i : i + size]]
        for i in range(0, len(ordered), size)
    ]


class RoundTrips:
    """Counts the round trips of pipelined transactions: each sync, and the COMMIT
    sent when the pipeline ends (nothing else may run outside it on the spec's engine)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, engine: sa.Engine) -> None:
        self.count = 0
        self.outside = 0
        real_sync, real_exit = psycopg.Pipeline.sync, psycopg.Pipeline.__exit__

        def sync(pipeline: psycopg.Pipeline) -> None:
            self.count += 1
            real_sync(pipeline)

        def leave(pipeline: psycopg.Pipeline, *args: Any) -> None:
            self.count += 1
            real_exit(pipeline, *args)

        monkeypatch.setattr(psycopg.Pipeline, "sync", sync)
        monkeypatch.setattr(psycopg.Pipeline, "__exit__", leave)

        @sa.event.listens_for(engine, "after_cursor_execute")
        def _outside(conn: sa.Connection, *_: Any) -> None:
            if "psycopg pipeline" not in conn.info:
                self.outside += 1


def views(engine: sa.Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        generation = current_generation(conn)
        assert generation is not None
        tables = view_tables(generation.number)
        interviews = list(
            conn.execute(
                sa.select(tables.interviews).order_by(tables.interviews.c.interview_id)
            ).all()
        )
        timeline = conn.execute(sa.select(tables.timeline)).all()
    return interviews, sorted(tuple(map(str, row)) for row in timeline)


def bookkeeping(engine: sa.Engine) -> tuple[int, int, int | None]:
    with engine.connect() as conn:
        processed = conn.execute(sa.select(sa.func.count()).select_from(processed_events))
        parked = conn.execute(sa.select(sa.func.count()).select_from(parked_events))
        position = conn.execute(sa.select(consumer_positions.c.position)).scalar()
        return int(processed.scalar_one()), int(parked.scalar_one()), position


def test_a_light_batch_is_two_round_trips_and_the_views_are_those_applied_without_reading_ahead(
    databases: Make, make_runner: Callable[..., ConsumerRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = synthetic_events(scripts(30))
    batches = in_batches(events)
    lean, plain = make_runner(databases("lean")), make_runner(databases("plain"), read_ahead=False)
    for batch in batches[:1]:  # the first batch has no generation to guess yet
        lean.process(batch)
    trips = RoundTrips(monkeypatch, lean.engine)
    for batch in batches[1:]:
        lean.process(batch)
    assert trips.outside == 0
    assert trips.count == 2 * (len(batches) - 1)
    for batch in batches:
        plain.process(batch)
    for batch in batches:  # redelivered: nothing changes twice
        lean.process(batch)
    assert lean.stats.processed == plain.stats.processed == len(events)
    assert views(lean.engine) == views(plain.engine)
    assert (
        bookkeeping(lean.engine)
        == bookkeeping(plain.engine)
        == (len(events), 0, max(e.position for e in events))
    )


def test_a_generation_swapped_in_or_dropped_between_batches_is_read_again(
    databases: Make, make_runner: Callable[..., ConsumerRunner]
) -> None:
    """The rows a batch reads ahead are those of the generation the last batch wrote:
    after a swap they are not used (the new generation's rows are read), and once
    that generation's tables are dropped the batch is applied all the same, neither
    parked nor stepped aside."""
    events = sorted(synthetic_events(scripts(6)), key=lambda e: e.position)
    first, second, third = events[:10], events[10:20], events[20:]
    runner, plain = (
        make_runner(databases("lean")),
        make_runner(databases("plain"), read_ahead=False),
    )
    for runner_ in (runner, plain):
        runner_.process([SourceRecord(envelope=e) for e in first])
        with runner_.engine.begin() as conn:  # an empty generation 2, swapped in
            create_generation(conn, 2, source="rebuild")
            swap_to(conn, 2)
        runner_.process([SourceRecord(envelope=e) for e in second])
        with runner_.engine.begin() as conn:  # and generation 3; 1 and 2 dropped
            create_generation(conn, 3, source="rebuild")
            swap_to(conn, 3)
        drop_generations(runner_.engine)
        runner_.process([SourceRecord(envelope=e) for e in third])
    assert views(runner.engine) == views(plain.engine)
    assert len(views(runner.engine)[1]) == len(third)
    assert runner.halted is None and runner.stats.errors == 0
    assert bookkeeping(runner.engine) == (len(events), 0, max(e.position for e in events))


def test_a_batch_that_fails_before_its_commit_leaves_no_effect_and_no_position(
    databases: Make, make_runner: Callable[..., ConsumerRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The view writes and the counters are queued in the pipeline, not yet sent: the
    bookkeeping failing after them (the session lost) commits none of them."""
    events = synthetic_events(scripts(4))
    batches = in_batches(events, size=10)
    runner = make_runner(databases("lean"))
    runner.process(batches[0])
    before = views(runner.engine), bookkeeping(runner.engine)

    def lost(conn: sa.Connection, records: Any) -> None:
        raise sa.exc.OperationalError("store position", {}, Exception("server closed"))

    monkeypatch.setattr(runner.source, "store_position", lost)
    with pytest.raises(sa.exc.OperationalError):
        runner.process(batches[1])
    runner._let_go()  # as run() does before it replays
    assert (views(runner.engine), bookkeeping(runner.engine)) == before
    monkeypatch.undo()
    for batch in batches[1:]:
        runner.process(batch)
    with runner.engine.connect() as conn:
        generation = current_generation(conn)
    assert generation is not None and generation.events_applied == len(events)
    assert bookkeeping(runner.engine) == (len(events), 0, max(e.position for e in events))
