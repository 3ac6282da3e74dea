"""``retry_parked`` goes through the same ``ConsumerSpec.apply`` as the runner and
tells ``on_committed`` only what it applied: never the position of an event that
is still parked."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common.consumer import Batch, ConsumerSpec
from services.common.db import create_engine
from services.common.runner.embedded import EmbeddedSource
from services.common.runner.loop import ConsumerRunner
from services.common.runner.parked import list_parked, retry_parked
from services.common.runner.source import SourceRecord
from services.common.runner.tables import migrate_consumer_database
from services.contracts import EventEnvelope
from tests.support.projections_reference import scripts, synthetic_events

pytestmark = pytest.mark.integration


class Refusing:
    """A consumer that keeps the ids it applied and refuses the events in ``refused``."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.applied: list[str] = []
        self.told: list[int] = []

    def apply(self, conn: sa.Connection, batch: Batch) -> None:
        for event in batch.events:
            if str(event.id) in self.refused:
                raise RuntimeError(f"cannot apply {event.id}")
        self.applied.extend(str(event.id) for event in batch.events)

    def spec(self, engine: sa.Engine) -> ConsumerSpec:
        return ConsumerSpec("retry", engine, self.apply, on_committed=self.told.append)


@pytest.fixture
def engine(database_url: str | None, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(database_url, tmp_path / "consumer.sqlite")
    yield engine
    engine.dispose()


def consume(spec: ConsumerSpec, events: list[EventEnvelope]) -> None:
    """The runner's ``process`` on ``events`` as one batch, as its loop would."""
    migrate_consumer_database(spec)
    runner = ConsumerRunner(
        spec, EmbeddedSource(lambda after, limit: [], threading.Event()), retry_backoff=0.001
    )
    runner.source.open(spec.group, spec.engine, runner.metrics)
    runner.process([SourceRecord(envelope=e) for e in events])


def test_retry_reports_the_position_it_applied_not_that_of_an_event_still_parked(
    engine: sa.Engine,
) -> None:
    events = synthetic_events(scripts(3))
    by_interview: dict[str, list[EventEnvelope]] = defaultdict(list)
    for event in events:
        by_interview[str(event.interview_id)].append(event)
    broken = next(evs for evs in by_interview.values() if len(evs) >= 3)
    consumer = Refusing()
    consumer.refused = {str(broken[0].id)}
    spec = consumer.spec(engine)

    consume(spec, events)

    parked = list_parked(engine, "retry")
    assert [p.event_id for p in parked] == [str(e.id) for e in broken], "the interview waits"
    others = [str(e.id) for e in events if e.interview_id != broken[0].interview_id]
    assert consumer.applied == others, "every other interview applied once, in order"
    # The first event is fixed; the second still fails.
    consumer.refused = {str(broken[1].id)}
    consumer.told.clear()

    report = retry_parked(spec)

    assert report.applied == [str(broken[0].id)]
    assert report.position == broken[0].position
    assert consumer.told == [broken[0].position]
    still = list_parked(engine, "retry")
    assert [p.event_id for p in still] == [str(e.id) for e in broken[1:]]
    assert all(p.position > consumer.told[0] for p in still)


def test_a_retry_that_applies_nothing_reports_no_position(engine: sa.Engine) -> None:
    events = synthetic_events(scripts(2))
    first = events[0]
    consumer = Refusing()
    consumer.refused = {str(first.id)}
    spec = consumer.spec(engine)
    consume(spec, events)
    consumer.told.clear()

    report = retry_parked(spec)

    assert report.applied == [] and report.position is None
    assert consumer.told == []
    assert str(first.interview_id) in report.still_parked
