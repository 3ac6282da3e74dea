"""The embedded consumers of ``interviewctl up`` under a stream of commands: they
linger for larger batches (they share the process with the API), yet each sees
every interview event of the log exactly once, in order, across a stop in the
middle of the stream and a restart from the positions they stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common.consumer import Batch, ConsumerSpec
from services.common.db import create_engine
from services.common.runner.loop import ConsumerRunner
from services.common.runner.tables import migrate_consumer_database
from services.interviews.application import InterviewsApplication
from services.interviews.bootstrap import InterviewsContainer
from services.platform import embedded_log, embedded_runner_for
from tests.integration.downstream import invite_directly

GROUPS = ("projections", "notifications")


@pytest.fixture
def database_url() -> None:
    """The embedded default: the event store is an SQLite file."""
    return None


class Recorded:
    """A consumer that remembers the positions of each batch it committed."""

    def __init__(self, group: str, data_dir: Path) -> None:
        self.batches: list[list[int]] = []
        self._pending: list[int] = []
        self._changed = threading.Condition()
        self.spec = ConsumerSpec(
            group=group,
            engine=create_engine(None, data_dir / f"{group}.sqlite"),
            apply=self.apply,
            on_committed=self.committed,
        )
        migrate_consumer_database(self.spec)

    def apply(self, conn: sa.Connection, batch: Batch) -> None:
        self._pending = [event.position for event in batch.events]

    def committed(self, position: int) -> None:
        with self._changed:
            self.batches.append(self._pending)
            self._changed.notify_all()

    def positions(self) -> list[int]:
        return [p for batch in self.batches for p in batch]

    def wait_for(self, position: int) -> None:
        with self._changed:
            assert self._changed.wait_for(
                lambda: self.batches and self.batches[-1][-1] >= position, timeout=30
            ), f"{self.spec.group} never reached {position}"


def interview_positions(app: InterviewsApplication) -> list[int]:
    return [position for position, _ in app.iter_interview_notifications(0, 1_000_000)]


def start(app: InterviewsApplication, consumers: dict[str, Recorded]) -> list[ConsumerRunner]:
    """The runners as the platform builds them: one shared reading of the log."""
    shared = embedded_log(app)
    return [embedded_runner_for(app, c.spec, shared=shared).start() for c in consumers.values()]


def stop(runners: list[ConsumerRunner]) -> None:
    for runner in runners:
        runner.stop()
    for runner in runners:
        runner.join(10)


@pytest.fixture
def app(interviews_container: InterviewsContainer) -> Iterator[InterviewsApplication]:
    yield interviews_container.interviews()


def test_every_event_of_a_stream_reaches_each_consumer_once_across_a_restart(
    app: InterviewsApplication, tmp_path: Path, clock: object
) -> None:
    at: datetime = clock()  # type: ignore[operator]
    consumers = {group: Recorded(group, tmp_path) for group in GROUPS}
    runners = start(app, consumers)
    for n in range(120):
        invite_directly(app, at, f"freelancer-{n}")
    stop(runners)  # in the middle of the stream's work: some events are not read yet

    for n in range(120, 160):
        invite_directly(app, at, f"freelancer-{n}")
    runners = start(app, consumers)  # from the positions stored
    try:
        expected = interview_positions(app)
        assert len(expected) == 160
        for consumer in consumers.values():
            consumer.wait_for(expected[-1])
    finally:
        stop(runners)

    for group, consumer in consumers.items():
        assert consumer.positions() == expected, f"{group}: an event missing or twice"
