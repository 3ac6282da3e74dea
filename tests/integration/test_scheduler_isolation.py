"""A deadline the scheduler cannot handle is isolated; every other one fires on time.

Time is a FakeClock moved by hand and the scheduler is driven tick by tick
(``run_once``): "on time" means in the first tick after the deadline passed.
A deadline the domain now refuses (in year 9999) is appended to the log as a
release before the input bounds wrote it; the others are ordinary invitations
whose expiry or indexing is made to fail, as a later bug might.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from services.cli import app as cli_app
from services.interviews.application import InterviewsApplication
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Interview
from services.interviews.scheduler import Deadline, DeadlineIndex, Scheduler
from tests.conftest import FakeClock

from .downstream import CLIENT, append_as_an_older_release, as_party, invite_directly

pytestmark = pytest.mark.integration


def invite(app: InterviewsApplication, at: datetime, n: int, expires_at: datetime) -> UUID:
    """Invitation ``n``: freelancer ``f-<n>`` to job ``job-f-<n>``."""
    return invite_directly(app, at, f"f-{n}", expires_at=expires_at)


def kinds(app: InterviewsApplication, interview_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.interview_events(interview_id)]


class BrokenIndex(DeadlineIndex):
    """An index that cannot write the deadline of the interviews in ``broken``."""

    def __init__(self, engine: sa.Engine, broken: set[UUID]) -> None:
        super().__init__(engine)
        self.broken = broken

    def _write(
        self, conn: sa.Connection, puts: list[Deadline], clears: list[tuple[UUID, int]]
    ) -> None:
        for deadline in puts:
            if deadline.interview_id in self.broken:
                raise ValueError(f"cannot store the deadline of {deadline.interview_id}")
        super()._write(conn, puts, clears)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_scheduler(
    interviews_container: InterviewsContainer, registry: CollectorRegistry
) -> Iterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def make(**options: Any) -> Scheduler:
        scheduler = Scheduler(
            interviews_container, max_sleep=0.05, lease_seconds=1.0, registry=registry, **options
        )
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.stop()


def failed(registry: CollectorRegistry, stage: str) -> float:
    return registry.get_sample_value("scheduler_failed_deadlines_total", {"stage": stage}) or 0.0


def isolated_gauge(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("scheduler_isolated_deadlines")


def test_deadlines_at_the_end_of_the_calendar_do_not_stop_the_others(
    interviews_container: InterviewsContainer,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    app = interviews_container.interviews()
    # An hour into year 10000 in UTC: astimezone(UTC) overflows.
    edge = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-1)))
    far = append_as_an_older_release(
        app,
        Interview.Invited,
        as_party(CLIENT, "client", clock.now),
        job_id="job-f-1",
        client_id=CLIENT,
        freelancer_id="f-1",
        message=None,
        expires_at=edge,
    )
    soon = invite(app, clock.now, 2, clock.now + timedelta(hours=1))
    scheduler = make_scheduler()

    report = scheduler.run_once()
    assert (report.indexed, report.failed, report.isolated) == (2, 0, 0)
    clock.advance(hours=1)
    assert scheduler.run_once().expired == 1

    assert kinds(app, soon) == ["Invited", "Expired"]
    assert kinds(app, far) == ["Invited"]
    [kept] = scheduler.index().all()
    assert kept.interview_id == far
    assert kept.due_at == datetime.max.replace(tzinfo=UTC)  # clamped, never due


def test_a_deadline_that_cannot_be_indexed_is_isolated_and_the_others_fire_on_time(
    interviews_container: InterviewsContainer,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = interviews_container.interviews()
    ids = [invite(app, clock.now, n, clock.now + timedelta(hours=1)) for n in range(4)]
    bad = ids[1]
    scheduler = make_scheduler()
    index = BrokenIndex(scheduler.index().engine, {bad})
    scheduler = make_scheduler(index=index)

    report = scheduler.run_once()
    assert (report.indexed, report.isolated) == (4, 1)
    [isolated] = index.isolated()
    assert (isolated.interview_id, isolated.what, isolated.stage) == (bad, "invitation", "index")
    assert "cannot store the deadline" in isolated.error
    assert (failed(registry, "index"), isolated_gauge(registry)) == (1.0, 1.0)

    clock.advance(hours=1)
    report = scheduler.run_once()
    assert (report.expired, report.failed) == (3, 0)
    assert [kinds(app, i)[-1] for i in ids] == ["Expired", "Invited", "Expired", "Expired"]

    # An operator sees it...
    settings = interviews_container.settings
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    listed = CliRunner().invoke(cli_app, ["deadlines", "isolated"])
    assert listed.exit_code == 0, listed.output
    assert str(bad) in listed.output and "1 isolated deadline" in listed.output
    # ... and once the cause is fixed, releases it: it is due, so it expires at once.
    index.broken.clear()
    assert scheduler.release(bad)
    assert not scheduler.release(bad)
    assert scheduler.run_once().expired == 1
    assert kinds(app, bad) == ["Invited", "Expired"]
    assert index.isolated() == [] and isolated_gauge(registry) == 0.0


def test_a_deadline_whose_expiry_keeps_failing_is_isolated_after_three_ticks(
    interviews_container: InterviewsContainer,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = interviews_container.interviews()
    bad = invite(app, clock.now, 0, clock.now + timedelta(minutes=10))
    good = invite(app, clock.now, 1, clock.now + timedelta(minutes=20))
    expire = app.expire

    def flaky_expire(interview_id: UUID, **kwargs: Any) -> Any:
        if interview_id == bad:
            raise ValueError("this record cannot be expired")
        return expire(interview_id, **kwargs)

    monkeypatch.setattr(app, "expire", flaky_expire)
    scheduler = make_scheduler()
    scheduler.run_once()

    clock.advance(minutes=10)
    reports = [scheduler.run_once()]
    clock.advance(minutes=10)  # the other deadline passes between the failures
    reports += [scheduler.run_once(), scheduler.run_once(), scheduler.run_once()]

    assert [(r.failed, r.isolated) for r in reports] == [(1, 0), (1, 0), (1, 1), (0, 0)]
    assert reports[1].expired == 1  # on time, despite the row ahead of it failing
    assert kinds(app, good) == ["Invited", "Expired"]
    assert [d.interview_id for d in scheduler.index().all()] == []
    [isolated] = scheduler.index().isolated()
    assert (isolated.interview_id, isolated.stage) == (bad, "expire")
    assert "cannot be expired" in isolated.error
    assert (failed(registry, "expire"), isolated_gauge(registry)) == (3.0, 1.0)


def test_a_later_event_of_the_interview_makes_its_isolated_deadline_moot(
    interviews_container: InterviewsContainer,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    app = interviews_container.interviews()
    bad = invite(app, clock.now, 0, clock.now + timedelta(hours=1))
    scheduler = make_scheduler()
    index = BrokenIndex(scheduler.index().engine, {bad})
    scheduler = make_scheduler(index=index)
    assert scheduler.run_once().isolated == 1

    app.accept(as_party("f-0", "freelancer", clock.now), bad)
    scheduler.run_once()

    assert index.isolated() == []
    assert isinstance(app.interview_events(bad)[-1], Interview.Accepted)
