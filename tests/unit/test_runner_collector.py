"""A consumer batch runs without the cycle collector, which comes back after it: a
batch's envelopes and rows would otherwise make the young collections run full
ones over the whole process (both consumers, every mode)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa

from services.common.consumer import Batch, ConsumerSpec
from services.common.db import create_engine
from services.common.runner.loop import ConsumerRunner, cycle_collection_paused
from services.common.runner.source import SourceRecord
from services.common.runner.tables import migrate_consumer_database
from tests.support import relay_fakes

pytestmark = pytest.mark.unit


class ListSource:
    """Records handed to ``process`` directly."""

    topic = "interviews.events"

    def store_position(self, conn: sa.Connection, records: Sequence[SourceRecord]) -> None:
        pass

    def committed(self, records: Sequence[SourceRecord]) -> None:
        pass

    def dead_letter(self, record: SourceRecord, error: str, group: str) -> None:
        pass

    def hold(self, records: list[SourceRecord]) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext(records)


def records(n: int) -> list[SourceRecord]:
    return [
        SourceRecord(
            raw=relay_fakes.envelope(uuid4(), 2, 7 + i).to_bytes(),
            topic="interviews.events",
            partition=0,
            offset=i,
            headers=[],
        )
        for i in range(n)
    ]


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[tuple[ConsumerRunner, list[bool]]]:
    engine = create_engine(None, tmp_path / "consumer.sqlite")
    during: list[bool] = []
    failing: list[bool] = []

    def apply(conn: sa.Connection, batch: Batch) -> None:
        during.append(gc.isenabled())
        if failing:
            raise RuntimeError("this batch fails")

    spec = ConsumerSpec(group="collected", engine=engine, apply=apply)
    migrate_consumer_database(spec)
    consumer = ConsumerRunner(spec, ListSource(), max_attempts=1, retry_backoff=0)  # type: ignore[arg-type]
    consumer.failing = failing  # type: ignore[attr-defined]
    yield consumer, during
    consumer._let_go()
    engine.dispose()


def test_a_batch_is_applied_without_the_cycle_collector_which_comes_back_after(
    runner: tuple[ConsumerRunner, list[bool]], collector_on: None
) -> None:
    consumer, during = runner
    consumer.process(records(3))
    assert during == [False]
    assert gc.isenabled()
    assert consumer.stats.processed == 3


def test_the_collector_comes_back_after_a_batch_that_fails(
    runner: tuple[ConsumerRunner, list[bool]], collector_on: None
) -> None:
    consumer, during = runner
    consumer.failing.append(True)  # type: ignore[attr-defined]
    consumer.process(records(2))  # the batch, then each event once, then parked
    assert during and not any(during)
    assert consumer.stats.parked == 2
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off(
    runner: tuple[ConsumerRunner, list[bool]], collector_on: None
) -> None:
    consumer, during = runner
    gc.disable()
    consumer.process(records(1))
    assert during == [False]
    assert not gc.isenabled()


def test_two_batches_at_once_turn_it_back_on_only_when_both_are_done(
    collector_on: None,
) -> None:
    """The embedded platform runs two consumers in one process: the first to end
    must not turn the collector on under the other's batch."""
    first_in, second_done = threading.Event(), threading.Event()
    seen: list[bool] = []

    def second() -> None:
        first_in.wait(5)
        with cycle_collection_paused():
            pass
        seen.append(gc.isenabled())
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with cycle_collection_paused():
        first_in.set()
        assert second_done.wait(5)
        assert seen == [False]
    thread.join(5)
    assert gc.isenabled()
