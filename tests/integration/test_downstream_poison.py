"""Whatever the event store holds, the services downstream of it keep going.

Instants at the very edges of the calendar (valid aware datetimes that have no
UTC equivalent) are stored, not parked; an event a consumer truly cannot apply
parks only its interview, and ``dlq retry`` applies it once the handler is
fixed; ``interviewctl replay`` leaves out an event it cannot fold, says which,
and rebuilds the rest. Instants the domain now refuses are appended to the log
as a release before the input bounds wrote them; a consumer or a fold that
cannot apply an event stands for a later bug.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from services.cli import app as cli_app
from services.common.consumer import Batch, ConsumerSpec
from services.common.runner.parked import retry_parked
from services.contracts import EventEnvelope
from services.interviews.application import InterviewsApplication
from services.interviews.audit import InterviewAudit
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import CommandContext, Interview
from services.interviews.settings import InterviewsSettings
from services.projections import fold
from tests.conftest import TEST_SECRET, FakeClock, create_database, drop_database, require_postgres

from .downstream import (
    CLIENT,
    Downstream,
    append_as_an_older_release,
    as_party,
    invite_directly,
)

pytestmark = pytest.mark.integration

LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


def offset(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def as_client(at: datetime) -> CommandContext:
    return as_party(CLIENT, "client", at)


def as_freelancer(freelancer: str, at: datetime) -> CommandContext:
    return as_party(freelancer, "freelancer", at)


def invited_before_the_bounds(
    app: InterviewsApplication, at: datetime, freelancer: str, expires_at: datetime
) -> UUID:
    """An invitation whose deadline the domain now refuses, as an older release logged it."""
    return append_as_an_older_release(
        app,
        Interview.Invited,
        as_client(at),
        job_id=f"job-{freelancer}",
        client_id=CLIENT,
        freelancer_id=freelancer,
        message=None,
        expires_at=expires_at,
    )


def started_before_the_bounds(
    app: InterviewsApplication, at: datetime, freelancer: str, scheduled_at: datetime
) -> UUID:
    """An interview invited and accepted today, then started (by an older release)
    at a time the domain now refuses."""
    interview = invite_directly(app, at, freelancer)
    app.accept(as_freelancer(freelancer, at), interview)
    append_as_an_older_release(
        app,
        Interview.InterviewStarted,
        as_client(at),
        interview,
        scheduled_at=scheduled_at,
        duration_minutes=30,
    )
    return interview


@pytest.fixture
def downstream_urls(database_url: str | None) -> Iterator[tuple[str | None, str | None]]:
    """Own databases for the projections and the notifications (PostgreSQL run)."""
    if database_url is None:
        yield None, None
        return
    admin = require_postgres()
    names = [f"dp_{uuid.uuid4().hex[:10]}", f"dn_{uuid.uuid4().hex[:10]}"]
    urls = [create_database(admin, name) for name in names]
    try:
        yield urls[0], urls[1]
    finally:
        for name in names:
            drop_database(admin, name)


@pytest.fixture
def make_downstream(
    interviews_container: InterviewsContainer,
    tmp_path: Path,
    clock: FakeClock,
    downstream_urls: tuple[str | None, str | None],
) -> Iterator[Callable[..., Downstream]]:
    made: list[Downstream] = []

    def make(**options: Any) -> Downstream:
        downstream = Downstream(
            interviews_container,
            tmp_path,
            clock=clock,
            projections_url=downstream_urls[0],
            notifications_url=downstream_urls[1],
            **options,
        )
        made.append(downstream)
        return downstream

    yield make
    for downstream in made:
        downstream.close()


def test_instants_at_the_edges_of_the_calendar_are_stored_and_shown_not_parked(
    interviews_container: InterviewsContainer,
    clock: FakeClock,
    make_downstream: Callable[..., Downstream],
) -> None:
    app = interviews_container.interviews()
    far = invited_before_the_bounds(
        app, clock.now, "f-far", datetime(9999, 12, 31, 23, 59, 59, tzinfo=offset(-1))
    )
    late = started_before_the_bounds(
        app, clock.now, "f-late", datetime(9999, 12, 31, 23, 59, 59, tzinfo=offset(-14))
    )
    early = started_before_the_bounds(
        app, clock.now, "f-early", datetime(1, 1, 1, tzinfo=offset(14))
    )
    # Logged as that release did: the offsets as given, each chain intact.
    assert app.interview_events(far)[0].expires_at.utcoffset() == timedelta(hours=-1)  # type: ignore[attr-defined]
    assert [InterviewAudit(app).verify(i).checked for i in (far, late, early)] == [1, 3, 3]
    assert all(InterviewAudit(app).verify(i).ok for i in (far, late, early))
    downstream = make_downstream()

    downstream.drain()

    assert downstream.parked() == {"projections": [], "notifications": []}
    views = {i: downstream.view(str(i)) for i in (far, late, early)}
    assert views[far] is not None and views[far]["status"] == "invited"
    assert views[far]["invitation_expires_at"] == LATEST
    assert views[late] is not None and views[late]["scheduled_at"] == LATEST
    assert views[early] is not None and views[early]["scheduled_at"] == EARLIEST
    assert (views[late]["version"], views[early]["version"]) == (3, 3)
    # The freelancer is told, in the offset the client gave (UTC has no such instant).
    [invitation] = downstream.inbox("f-far")
    assert "Friday 31 December 9999 at 23:59 UTC-01:00" in invitation["message"]
    assert any("9999" in n["message"] for n in downstream.inbox("f-late"))
    # The scheduler indexed the far deadline (never due) and a rebuild folds everything.
    assert [d.interview_id for d in downstream.scheduler.index().all()] == [far]
    report = downstream.rebuild()
    assert (report.unfoldable, report.applied) == ([], len(downstream.log()))
    assert downstream.view(str(late)) == views[late] | {"updated_at": views[late]["updated_at"]}


class Faulty:
    """Wraps a spec's ``apply``: it refuses any batch with an event of an interview
    in ``broken``."""

    def __init__(self) -> None:
        self.broken: set[str] = set()

    def wrap(self, spec: ConsumerSpec) -> ConsumerSpec:
        def apply(conn: sa.Connection, batch: Batch) -> None:
            for event in batch.events:
                if str(event.interview_id) in self.broken:
                    raise RuntimeError(f"handler bug for {event.interview_id}")
            spec.apply(conn, batch)

        return replace(spec, apply=apply)


def test_an_event_a_consumer_cannot_apply_parks_its_interview_only_and_retry_applies_it(
    interviews_container: InterviewsContainer,
    clock: FakeClock,
    make_downstream: Callable[..., Downstream],
) -> None:
    app = interviews_container.interviews()
    faulty = Faulty()
    downstream = make_downstream(wrap=faulty.wrap)
    broken = invite_directly(app, clock.now, "f-broken")
    healthy = invite_directly(app, clock.now, "f-healthy")
    faulty.broken.add(str(broken))

    downstream.drain()
    app.accept(as_freelancer("f-broken", clock.now), broken)
    app.accept(as_freelancer("f-healthy", clock.now), healthy)
    downstream.drain()

    for group, parked in downstream.parked().items():
        assert [(p.interview_id, p.version) for p in parked] == [
            (str(broken), 1),
            (str(broken), 2),
        ], group
        assert "handler bug" in parked[0].error and "parked behind" in parked[1].error
    assert downstream.view(str(broken)) is None
    healthy_view = downstream.view(str(healthy))
    assert healthy_view is not None and healthy_view["status"] == "accepted"
    assert downstream.inbox("f-broken") == []

    faulty.broken.clear()  # the handler is fixed
    for group, spec in downstream.specs.items():
        report = retry_parked(spec)
        assert (len(report.applied), report.still_parked) == (2, {}), group

    assert downstream.parked() == {"projections": [], "notifications": []}
    view = downstream.view(str(broken))
    assert view is not None and (view["status"], view["version"]) == ("accepted", 2)
    assert len(downstream.inbox("f-broken")) == 1  # the invitation, once
    downstream.drain()  # nothing is applied twice
    assert len(downstream.inbox("f-broken")) == 1


@pytest.fixture
def sqlite_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> Iterator[InterviewsContainer]:
    """An embedded platform's data directory, as ``interviewctl`` finds it."""
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "PROJECTIONS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AUTH_SECRET", TEST_SECRET)
    settings = InterviewsSettings(database_url=None, data_dir=tmp_path, auth_secret=TEST_SECRET)
    container = InterviewsContainer(settings, clock=clock)
    yield container
    container.close()


def test_replay_leaves_out_an_event_it_cannot_fold_says_which_and_rebuilds_the_rest(
    sqlite_platform: InterviewsContainer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = sqlite_platform.interviews()
    broken = invite_directly(app, clock.now, "f-broken")
    healthy = [invite_directly(app, clock.now, f"f-{n}") for n in range(3)]
    for interview, freelancer in [(broken, "f-broken"), (healthy[0], "f-0")]:
        app.accept(as_freelancer(freelancer, clock.now), interview)
    app.start(as_client(clock.now), broken)
    [accepted] = [e for e in app.interview_events(broken) if type(e).__name__ == "Accepted"]
    accept_fact = fold.FACTS["interview.accepted"]

    def cannot_fold(row: dict[str, Any], event: EventEnvelope, at: datetime) -> None:
        if event.interview_id == broken:
            raise ValueError("a value the views cannot hold")
        accept_fact(row, event, at)

    monkeypatch.setitem(fold.FACTS, "interview.accepted", cannot_fold)  # type: ignore[index]

    result = CliRunner().invoke(cli_app, ["replay", "--source", "log"])

    assert result.exit_code == 0, result.output
    assert "7 events, 6 applied" in result.stdout and "1 unfoldable" in result.stdout
    assert "1 event(s) could not be folded" in result.stderr
    assert f"interview {broken} v2" in result.stderr and "a value the views" in result.stderr
    assert accepted.originator_version == 2
    from services.projections.bootstrap import ProjectionsContainer
    from services.projections.settings import ProjectionsSettings

    views = ProjectionsContainer(ProjectionsSettings())
    try:
        downstream_view = _views(views)
    finally:
        views.close()
    assert downstream_view[str(healthy[0])] == ("accepted", 2)
    assert downstream_view[str(healthy[1])] == ("invited", 1)
    # The interview goes on past the left-out event; the hole shows as a gap.
    assert downstream_view[str(broken)] == ("in_progress", 3)


def _views(container: Any) -> dict[str, tuple[str, int]]:
    import sqlalchemy as sa

    from services.projections.adapters.schema import view_tables
    from services.projections.adapters.store import current_generation

    with container.engine().connect() as conn:
        generation = current_generation(conn)
        t = view_tables(generation.number).interviews
        return {r.interview_id: (r.status, r.version) for r in conn.execute(sa.select(t))}


@dataclass
class LateSource:
    """A rebuild source whose events all arrive during the final catch-up (written
    while the rebuild ran): they are folded under the swap's lock."""

    events: list[EventEnvelope]
    name: str = "late"
    poison: int = 0

    def read(self, limit: int) -> list[EventEnvelope]:
        return []

    def catch_up(self, limit: int) -> Iterator[list[EventEnvelope]]:
        yield self.events

    def progress(self) -> tuple[int, int | None]:
        return 0, None

    def close(self) -> None:
        pass


def test_an_unfoldable_event_in_the_final_catch_up_is_left_out_too(
    interviews_container: InterviewsContainer,
    clock: FakeClock,
    make_downstream: Callable[..., Downstream],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = interviews_container.interviews()
    broken, healthy = (invite_directly(app, clock.now, f) for f in ("f-broken", "f-healthy"))
    for interview, freelancer in ((broken, "f-broken"), (healthy, "f-healthy")):
        app.accept(as_freelancer(freelancer, clock.now), interview)
    downstream = make_downstream()
    accept_fact = fold.FACTS["interview.accepted"]

    def cannot_fold(row: dict[str, Any], event: EventEnvelope, at: datetime) -> None:
        if event.interview_id == broken:
            raise ValueError("a value the views cannot hold")
        accept_fact(row, event, at)

    monkeypatch.setitem(fold.FACTS, "interview.accepted", cannot_fold)  # type: ignore[index]

    report = downstream.projections.rebuild(LateSource(downstream.log()))

    assert [(u.interview_id, u.version) for u in report.unfoldable] == [(str(broken), 2)]
    assert (report.events, report.applied) == (4, 3)
    broken_view, healthy_view = downstream.view(str(broken)), downstream.view(str(healthy))
    assert broken_view is not None and (broken_view["status"], broken_view["version"]) == (
        "invited",
        1,
    )
    assert healthy_view is not None and healthy_view["status"] == "accepted"
