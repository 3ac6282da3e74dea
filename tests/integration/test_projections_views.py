"""The projections on a real database (SQLite file and PostgreSQL): the views
equal an independent fold of the events, whatever the delivery order, and the
query API keeps its promises (visibility, pagination, read-your-writes, 422s)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from services.common.consumer import Batch
from services.contracts import EventEnvelope
from services.projections.adapters import schema
from services.projections.adapters.sources import LogSource
from services.projections.adapters.store import current_generation, list_generations
from services.projections.bootstrap import ProjectionsContainer, consumer_spec, create_app
from services.projections.demo import demo_log
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET
from tests.support.projections_reference import (
    Script,
    all_interviews,
    assert_views_equal_reference,
    batches,
    reference_interviews,
    reference_stats,
    scripts,
    shuffled_across_interviews,
    synthetic_events,
)

pytestmark = pytest.mark.integration

Token = Callable[[str, str], dict[str, str]]


@pytest.fixture
def settings(database_url: str | None, tmp_path: Path) -> ProjectionsSettings:
    return ProjectionsSettings(
        database_url=database_url,
        projections_database_url=database_url,
        kafka_bootstrap_servers=None,
        data_dir=tmp_path,
        auth_secret=TEST_SECRET,
        min_position_timeout_s=1.0,
        stream_interval_s=0.05,
    )


@pytest.fixture
def container(settings: ProjectionsSettings) -> Iterator[ProjectionsContainer]:
    c = ProjectionsContainer(settings)
    yield c
    c.close()


@pytest.fixture
def api(container: ProjectionsContainer) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as client:
        yield client


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[TestClient]:
    """Where the database does not matter (input validation)."""
    settings = ProjectionsSettings(
        database_url=None, kafka_bootstrap_servers=None, data_dir=tmp_path, auth_secret=TEST_SECRET
    )
    container = ProjectionsContainer(settings)
    with TestClient(create_app(container)) as client:
        yield client
    container.close()


def feed(container: ProjectionsContainer, events: list[EventEnvelope], batch: int = 50) -> None:
    """What the runner does: one transaction per batch, a handler per event."""
    spec = consumer_spec(container)
    for chunk in batches(events, batch):
        with spec.engine.begin() as conn:
            spec.apply(conn, Batch(chunk))
        assert spec.on_committed is not None
        spec.on_committed(max(e.position for e in chunk))


# ------------------------------------------------------------ equal to the fold


def test_views_equal_the_reference_after_duplicated_and_reordered_deliveries(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    events = synthetic_events(scripts(300))
    delivered = shuffled_across_interviews(events, seed=11, duplicate=0.25)
    feed(container, delivered, batch=40)
    feed(container, events[:100], batch=100)  # a whole batch replayed
    assert_views_equal_reference(api, token, events)
    writer = container.writer()
    assert writer.stats.applied == len(events)
    assert writer.stats.duplicates == len(delivered) - len(events) + 100
    assert writer.stats.gaps == 0
    response = api.get("/views/stats", headers=token("a", "admin"))
    assert int(response.headers["X-View-Position"]) == max(e.position for e in events)


def test_a_batch_over_more_interviews_than_one_read_finds_every_stored_row(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    """The rows a batch touches are read in chunks of 500 ids; a replay of every event
    in batches over ~700 interviews must find each stored row (else it would apply
    the events again as new interviews)."""
    events = synthetic_events(scripts(700))
    feed(container, events, batch=1500)
    feed(container, events, batch=1500)
    assert_views_equal_reference(api, token, events)
    writer = container.writer()
    assert writer.stats.applied == len(events)
    assert writer.stats.duplicates == len(events)


def test_the_consumer_runner_keeps_the_views_from_the_event_log(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    from services.common.runner.embedded import EmbeddedSource
    from services.common.runner.loop import ConsumerRunner

    events = synthetic_events(scripts(120))
    log: list[EventEnvelope] = []
    wake = threading.Event()

    def read(after: int, limit: int) -> list[EventEnvelope]:
        return [e for e in log if e.position > after][:limit]

    source = EmbeddedSource(read, wake, poll_seconds=0.05, batch=50)
    runner = ConsumerRunner(consumer_spec(container), source, poll_timeout=0.05).start()
    try:
        for chunk in batches(events, 37):
            log.extend(chunk)
            wake.set()
        deadline = time.monotonic() + 30  # min_position waits 1 s here; the box may be busy
        while True:
            response = api.get(
                "/views/stats",
                params={"min_position": events[-1].position},
                headers=token("a", "auditor"),
            )
            if response.status_code != 503 or time.monotonic() > deadline:
                break
        assert response.status_code == 200, response.text
    finally:
        runner.stop()
        runner.join(10)
    assert_views_equal_reference(api, token, events, details=20)


def test_a_gap_is_applied_flagged_counted_and_filled_when_the_event_arrives(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    events = synthetic_events([Script(0, "job-g", "c1", "f1", ("accept", "start", "offer"))])
    invited, accepted, started, offered = events
    feed(container, [invited, started])
    auditor = token("audit", "auditor")
    view = api.get(f"/views/interviews/{invited.interview_id}", headers=auditor).json()
    assert (view["status"], view["version"], view["missing_versions"]) == ("in_progress", 3, [2])
    stats = api.get("/views/stats", headers=auditor).json()
    assert stats["gaps"] == {
        "interviews_with_gaps": 1,
        "versions_skipped": 1,
        "versions_still_missing": 1,
    }
    assert "projection_version_gaps_total 1.0" in api.get("/metrics").text
    with container.engine().begin() as conn:
        generation = current_generation(conn)
        assert generation is not None and generation.gaps_detected == 1
        gap = conn.execute(sa.select(schema.view_tables(generation.number).gaps)).one()
        assert (gap.version, gap.detected_by_version, gap.filled_at) == (2, 3, None)
    feed(container, [accepted, offered])
    view = api.get(f"/views/interviews/{invited.interview_id}", headers=auditor).json()
    assert (view["status"], view["missing_versions"]) == ("offer_extended", [])
    assert [t["version"] for t in view["timeline"]] == [1, 2, 3, 4]
    assert view["time_to_accept_seconds"] is not None
    stats = api.get("/views/stats", headers=auditor).json()
    assert stats["gaps"]["versions_still_missing"] == 0


def with_data(event: EventEnvelope, **data: Any) -> EventEnvelope:
    return event.model_copy(update={"data": {**event.data, **data}})


def test_the_views_show_the_schedule_who_acts_next_and_the_next_deadline(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    plays = [
        Script(0, "job-s", "c1", "f1", ("accept", "start", "reschedule")),
        Script(1, "job-s", "c1", "f2", ("accept", "offer", "withdraw_offer")),
        Script(2, "job-s", "c1", "f3", ()),
    ]
    events = synthetic_events(plays)
    mine = {p.index: [e for e in events if e.interview_id == p.interview_id] for p in plays}
    start, move = mine[0][2], mine[0][3]
    fixed = {
        start.id: with_data(start, scheduled_at="2026-03-10T14:00:00+00:00", duration_minutes=45),
        move.id: with_data(
            move,
            scheduled_at="2026-03-11T16:30:00+01:00",
            duration_minutes=60,
            previous_scheduled_at="2026-03-10T14:00:00+00:00",
        ),
        mine[2][0].id: with_data(mine[2][0], expires_at="2026-03-20T09:00:00Z"),
    }
    feed(container, [fixed.get(e.id, e) for e in events])
    client = token("c1", "client")

    def view(index: int) -> dict[str, Any]:
        response = api.get(f"/views/interviews/{plays[index].interview_id}", headers=client)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    moved = view(0)
    assert moved["status"] == "in_progress" and moved["reschedules"] == 1
    assert (moved["scheduled_at"], moved["duration_minutes"]) == ("2026-03-11T15:30:00Z", 60)
    assert (moved["next_actor"], moved["next_deadline_at"]) == ("client", None)
    assert moved["timeline"][-1]["type"] == "interview.rescheduled"
    assert moved["timeline"][-1]["data"]["previous_scheduled_at"] == "2026-03-10T14:00:00+00:00"

    withdrawn = view(1)
    assert withdrawn["status"] == "accepted", "back to the state before the offer"
    assert withdrawn["started_at"] is None and withdrawn["scheduled_at"] is None
    assert withdrawn["offer"]["offers_withdrawn"] == 1
    assert withdrawn["next_actor"] == "client"

    waiting = view(2)
    assert (waiting["next_actor"], waiting["next_deadline_at"]) == (
        "freelancer",
        "2026-03-20T09:00:00Z",
    )

    stats = api.get("/views/stats", headers=client).json()
    funnel = {stage["stage"]: stage for stage in stats["funnel"]}
    assert [funnel[s]["count"] for s in ("invited", "accepted", "started", "offer", "hired")] == [
        3,
        2,
        1,
        1,
        0,
    ], "the interview offered without a start is not counted as started"
    assert funnel["offer"]["rate_from_previous"] == 0.5, "offers are relative to acceptances"
    assert stats["by_status"]["accepted"] == 1 and stats["by_status"]["in_progress"] == 1


def test_a_batch_s_rows_are_written_by_its_apply_call_in_the_caller_s_transaction(
    container: ProjectionsContainer,
) -> None:
    events = synthetic_events(scripts(5))
    spec = consumer_spec(container)
    with spec.engine.connect() as conn:
        transaction = conn.begin()
        spec.apply(conn, Batch(events))
        generation = current_generation(conn)
        assert generation is not None
        interviews = schema.view_tables(generation.number).interviews
        count = sa.select(sa.func.count()).select_from(interviews)
        assert conn.execute(count).scalar() == 5, "written by the call, before any commit"
        transaction.rollback()
        assert conn.execute(count).scalar() == 0, "and undone with the caller's transaction"


def test_a_failing_write_rolls_back_with_the_batch(
    container: ProjectionsContainer, api: TestClient, token: Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.projections.adapters import live

    events = synthetic_events(scripts(10))
    spec = consumer_spec(container)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    side = sa.Table("runner_side_effect", sa.MetaData(), sa.Column("x", sa.Integer))
    side.create(spec.engine)
    monkeypatch.setattr(live, "apply_events", broken)
    with pytest.raises(RuntimeError, match="disk on fire"), spec.engine.begin() as conn:
        conn.execute(side.insert().values(x=1))  # e.g. the runner's offsets
        spec.apply(conn, Batch(events))
    with spec.engine.connect() as conn:
        assert conn.execute(sa.select(side)).all() == []
    monkeypatch.undo()
    feed(container, events)
    assert len(all_interviews(api, token("a", "admin"))) == 10


# ---------------------------------------------------------------- the API


def test_callers_see_only_what_is_theirs(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    events = synthetic_events(scripts(60))
    feed(container, events)
    expected = reference_interviews(events)
    client = "client-2"
    mine = {i for i, v in expected.items() if v["client_id"] == client}
    assert {i["id"] for i in all_interviews(api, token(client, "client"))} == mine
    assert all_interviews(api, token(client, "client"), client_id="client-3") == []
    freelancer = next(iter(expected.values()))["freelancer_id"]
    theirs = {i for i, v in expected.items() if v["freelancer_id"] == freelancer}
    assert {i["id"] for i in all_interviews(api, token(freelancer, "freelancer"))} == theirs
    other = next(i for i, v in expected.items() if v["client_id"] != client)
    response = api.get(f"/views/interviews/{other}", headers=token(client, "client"))
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    job = expected[other]["job_id"]
    assert (
        api.get(f"/views/jobs/{job}/candidates", headers=token(client, "client")).status_code == 404
    )
    board = api.get(
        f"/views/jobs/{job}/candidates",
        headers=token(expected[other]["freelancer_id"], "freelancer"),
    ).json()
    assert [c["freelancer_id"] for c in board["candidates"]] == [expected[other]["freelancer_id"]]
    stats = api.get("/views/stats", headers=token(client, "client")).json()
    assert stats["total"] == len(mine)
    assert api.get("/views/stats").status_code == 401
    assert api.get("/views/stats", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_service_token_sees_no_interview_even_named_like_a_party(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    events = synthetic_events(scripts(20))
    feed(container, events)
    some = next(iter(reference_interviews(events).values()))
    # A service whose id is a freelancer's still reads nobody's interviews.
    service = token(some["freelancer_id"], "service")

    assert all_interviews(api, service) == []
    assert api.get(f"/views/interviews/{some['id']}", headers=service).status_code == 404
    board = api.get(f"/views/jobs/{some['job_id']}/candidates", headers=service)
    assert board.status_code == 404
    assert api.get("/views/stats", headers=service).json()["total"] == 0
    assert all_interviews(api, token(some["freelancer_id"], "freelancer")) != []


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/views/interviews", {"status": "hiredd"}),
        ("/views/interviews", {"limit": 0}),
        ("/views/interviews", {"limit": 501}),
        ("/views/interviews", {"limit": "many"}),
        ("/views/interviews", {"cursor": "%%%"}),
        ("/views/interviews", {"cursor": "bm90LWEtY3Vyc29y"}),
        ("/views/interviews", {"job_id": "x" * 129}),
        ("/views/interviews", {"min_position": -1}),
        ("/views/interviews", {"min_position": "soon"}),
        ("/views/interviews/not-a-uuid", {}),
        ("/views/stats", {"min_position": 2**63}),
        ("/views/stream", {"max_events": 0}),
    ],
)
def test_bad_parameters_are_422_never_500(
    sqlite_api: TestClient, token: Token, path: str, params: dict[str, Any]
) -> None:
    response = sqlite_api.get(path, params=params, headers=token("a", "auditor"))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"


def test_cursor_pagination_is_stable_while_interviews_arrive(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    events = synthetic_events(scripts(80))
    first_half = [e for e in events if e.position <= events[len(events) // 2].position]
    feed(container, first_half)
    auditor = token("a", "auditor")
    page = api.get("/views/interviews", params={"limit": 10}, headers=auditor).json()
    seen = [i["id"] for i in page["items"]]
    feed(container, events[len(first_half) :])  # newer interviews arrive meanwhile
    cursor = page["next_cursor"]
    while cursor:
        page = api.get("/views/interviews", params={"limit": 10, "cursor": cursor}, headers=auditor)
        seen += [i["id"] for i in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    before = reference_interviews(first_half)
    order = sorted(before.values(), key=lambda i: (i["created_position"], i["id"]), reverse=True)
    assert seen == [i["id"] for i in order]


def test_filters(container: ProjectionsContainer, api: TestClient, token: Token) -> None:
    events = synthetic_events(scripts(100))
    feed(container, events)
    expected = reference_interviews(events)
    auditor = token("a", "auditor")
    for status in ("hired", "cancelled", "invited"):
        got = {i["id"] for i in all_interviews(api, auditor, status=status)}
        assert got == {i for i, v in expected.items() if v["status"] == status}
    everything = all_interviews(api, auditor, status="", job_id="", client_id="", cursor="")
    assert len(everything) == len(expected)  # empty filters, as a form sends them
    got = {i["id"] for i in all_interviews(api, auditor, job_id="job-3", status="cancelled")}
    assert got == {
        i for i, v in expected.items() if v["job_id"] == "job-3" and v["status"] == "cancelled"
    }


def test_min_position_waits_for_the_view_or_says_it_is_behind(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    events = synthetic_events(scripts(20))
    feed(container, events[:10])
    auditor = token("a", "auditor")
    target = events[15]
    timer = threading.Timer(0.3, feed, args=(container, events[10:]))
    timer.start()
    started = time.monotonic()
    response = api.get(
        f"/views/interviews/{target.interview_id}",
        params={"min_position": target.position},
        headers=auditor,
    )
    timer.join()
    assert response.status_code == 200, response.text
    assert response.json()["version"] >= target.version
    assert int(response.headers["X-View-Position"]) >= target.position
    far = events[-1].position + 1000
    started = time.monotonic()
    response = api.get("/views/stats", params={"min_position": far}, headers=auditor)
    assert 0.9 < time.monotonic() - started < 10
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "view_behind"
    assert body["position"] == events[-1].position and body["min_position"] == far
    assert response.headers["X-View-Position"] == str(events[-1].position)
    assert response.headers["Retry-After"] == "1"


def test_operational_endpoints(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    assert "projection_position" in api.get("/metrics").text
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/views/interviews",
        "/views/interviews/{interview_id}",
        "/views/jobs/{job_id}/candidates",
        "/views/stats",
        "/views/stream",
        "/dashboard",
    } <= set(paths)


# ------------------------------------------------------------------ rebuild


class GatedSource(LogSource):
    """A log source that stops after its first chunk until the test opens the gate."""

    def __init__(self, events: list[EventEnvelope]) -> None:
        self.log = events
        super().__init__(
            lambda after, limit: [e for e in self.log if e.position > after][:limit],
            lambda: self.log[-1].position,
        )
        self.reading = threading.Event()
        self.gate = threading.Event()
        self.chunks = 0

    def read(self, limit: int) -> list[EventEnvelope]:
        self.chunks += 1
        if self.chunks == 2:
            self.reading.set()
            assert self.gate.wait(30)
        return super().read(limit)


def test_rebuild_swaps_in_new_tables_while_the_api_answers_from_the_old(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    events = synthetic_events(scripts(150))
    feed(container, events[:300])
    auditor = token("a", "auditor")
    before = api.get("/views/stats", headers=auditor)
    assert before.headers["X-View-Generation"] == "1"
    source = GatedSource(events[:300])
    container.settings.rebuild_batch = 100
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(container.rebuild(source)))
    thread.start()
    assert source.reading.wait(10)
    # Mid-rebuild: generation 2 holds only its first chunk; the API still reads 1,
    # and the live consumer keeps writing generation 1.
    during = api.get("/views/stats", headers=auditor)
    assert during.headers["X-View-Generation"] == "1"
    assert during.json()["total"] == before.json()["total"]
    feed(container, events[300:])
    source.log = events  # what the live consumer applied is in the log by now
    source.gate.set()
    thread.join(30)
    report = done[0]
    assert (report.generation, report.replaced, report.events) == (2, 1, len(events))
    after = api.get("/views/stats", headers=auditor)
    assert after.headers["X-View-Generation"] == "2"
    assert_views_equal_reference(api, token, events, details=10)
    feed(container, events[-50:])  # live events after the swap: duplicates, no change
    assert_views_equal_reference(api, token, events, details=0)
    with container.engine().begin() as conn:
        states = {g.number: g.state for g in list_generations(conn)}
    assert states == {1: "retired", 2: "active"}


def test_a_changed_view_schema_rebuilds_on_start(
    settings: ProjectionsSettings, token: Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = synthetic_events(scripts(40))
    first = ProjectionsContainer(settings)
    feed(first, events)
    first.close()
    changed = schema.VIEW_SCHEMAS["interview_summary"] + 1
    monkeypatch.setitem(schema.VIEW_SCHEMAS, "interview_summary", changed)
    second = ProjectionsContainer(
        settings,
        log_reader=lambda after, limit: [e for e in events if e.position > after][:limit],
    )
    # While the rebuild is due, live events are not written to the outdated tables.
    feed(second, events[:5])
    assert second.writer().stats.skipped_outdated == 5
    with TestClient(create_app(second)) as api:
        assert second.rebuild_thread is not None
        second.rebuild_thread.join(30)
        response = api.get("/views/stats", headers=token("a", "auditor"))
        assert response.headers["X-View-Generation"] == "2"
        assert_views_equal_reference(api, token, events, details=5)
    with second.engine().begin() as conn:
        generation = current_generation(conn)
        assert generation is not None and generation.schemas["interview_summary"] == changed


NEW_COLUMNS = (
    "duration_minutes",
    "schedule_version",
    "reschedules",
    "status_version",
    "next_actor",
    "next_deadline_at",
    "offers_withdrawn",
)


def test_views_of_the_previous_release_answer_until_the_rebuild_swaps_in_the_new_ones(
    settings: ProjectionsSettings, token: Token
) -> None:
    """A database of the previous release: its generation has none of the new columns
    and the old schema versions. The API answers from it (new fields null) while the
    rebuild runs, then from the rebuilt generation with every new field."""
    plays = [Script(0, "job-u", "c1", "f1", ("accept", "offer", "decline_offer"))]
    events = synthetic_events(plays)
    old = ProjectionsContainer(settings)
    feed(old, events)
    with old.engine().begin() as conn:
        generation = current_generation(conn)
        assert generation is not None
        table = schema.view_tables(generation.number).interviews.name
        for name in NEW_COLUMNS:
            conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "{name}"')
        conn.execute(
            sa.update(schema.pv_generations)
            .where(schema.pv_generations.c.generation == generation.number)
            .values(schemas={**schema.VIEW_SCHEMAS, "interview_summary": 1, "stats": 1})
        )
    old.close()

    upgraded = ProjectionsContainer(
        settings.model_copy(update={"rebuild_on_start": False}),
        log_reader=lambda after, limit: [e for e in events if e.position > after][:limit],
    )
    auditor = token("a", "auditor")
    try:
        with TestClient(create_app(upgraded)) as api:
            assert upgraded.needs_rebuild()
            path = f"/views/interviews/{plays[0].interview_id}"
            before = api.get(path, headers=auditor)
            assert before.status_code == 200, before.text
            assert before.json()["next_actor"] is None and before.json()["reschedules"] == 0
            assert api.get("/views/stats", headers=auditor).status_code == 200

            upgraded.rebuild()
            after = api.get(path, headers=auditor).json()
            assert after["status"] == "accepted", "the declined offer returned to accepted"
            assert after["next_actor"] == "client"
            assert after["offer"]["offers_declined"] == 1
            assert not upgraded.needs_rebuild()
    finally:
        upgraded.close()


def test_another_rebuild_cannot_run_at_the_same_time(container: ProjectionsContainer) -> None:
    from services.projections.rebuild import RebuildRunningError, rebuild_lock

    container.ensure_schema()
    with rebuild_lock(container.engine()), pytest.raises(RebuildRunningError):
        container.rebuild(GatedSource(synthetic_events(scripts(2))))


# ----------------------------------------------------------- live stream


def test_the_stream_sends_an_update_when_the_views_move(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    events = synthetic_events(scripts(30))
    feed(container, events[:20])
    # The rest in one commit: the views move once, from events[19] to the last.
    later = threading.Thread(target=feed, args=(container, events[20:], len(events)))
    updates = []
    with api.stream(
        "GET", "/views/stream", params={"max_events": 2}, headers=token("a", "auditor")
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                updates.append(json.loads(line[6:]))
                if len(updates) == 1:
                    later.start()  # the views move while the stream is open
    later.join()
    assert [u["position"] for u in updates] == [events[19].position, events[-1].position]
    assert updates[1]["stats"]["total"] == len(reference_interviews(events))
    assert updates[1]["recent"][0]["position"] == events[-1].position


def test_a_live_update_is_read_at_one_position_even_when_batches_commit_while_it_reads(
    container: ProjectionsContainer, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.projections.adapters import queries
    from services.projections.entrypoints.api import live_payload

    events = synthetic_events(scripts(30))
    feed(container, events[:20])
    real = queries.stats
    moved: list[bool] = []

    def commits_meanwhile(*args: Any, **kwargs: Any) -> Any:
        stats = real(*args, **kwargs)
        if not moved:  # read at events[19]; the consumer commits the rest now
            moved.append(True)
            feed(container, events[20:])
        return stats

    monkeypatch.setattr(queries, "stats", commits_meanwhile)
    payload = live_payload(container.views(), queries.Scope(), None)
    assert moved, "the rest committed between the payload's reads"
    # Everything as of events[19], where the stats were read: not the stats of
    # one position beside the activity of another.
    assert payload["position"] == payload["stats"]["position"] == events[19].position
    assert payload["stats"]["total"] == len(reference_interviews(events[:20]))
    assert payload["recent"][0]["position"] == events[19].position
    assert live_payload(container.views(), queries.Scope(), None)["position"] == (
        events[-1].position
    )


def test_the_dashboard_renders_the_callers_figures_and_logs_in_by_cookie(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    events = synthetic_events(scripts(30))
    feed(container, events)
    assert api.get("/dashboard").status_code == 401
    assert "access_token" in api.get("/dashboard").text
    raw = token("audit", "auditor")["Authorization"].split()[1]
    response = api.get("/dashboard", params={"access_token": raw}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    assert "httponly" in response.headers["set-cookie"].lower()
    page = api.get("/dashboard", cookies={"interviews_token": raw})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    hired = reference_stats(reference_interviews(events).values())["by_status"]["hired"]
    boot = json.loads(page.text.split('<script id="initial" type="application/json">')[1]
                      .split("</script>")[0])  # fmt: skip
    assert boot["role"] == "auditor" and boot["payload"]["stats"]["by_status"]["hired"] == hired
    assert 'new EventSource("/views/stream")' in page.text
    assert "<script src=" not in page.text and "http" not in page.text.split("<script>")[1]
    bad = api.get("/dashboard", params={"access_token": "forged"})
    assert bad.status_code == 401


def _first_update(api: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    with api.stream("GET", "/views/stream", params={"max_events": 1}, headers=headers) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                return dict(json.loads(line[6:]))
    raise AssertionError("no update")


def test_the_live_payload_carries_the_callers_own_interviews_and_readers_get_the_consumer(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    demo = demo_log(datetime.now(UTC))
    feed(container, demo.events())
    client = _first_update(api, token("northwind", "client"))
    assert len(client["interviews"]) == 13
    assert {i["client_id"] for i in client["interviews"]} == {"northwind"}
    assert "consumer" not in client
    freelancer = _first_update(api, token("ana.souza", "freelancer"))
    assert {(i["client_id"], i["status"]) for i in freelancer["interviews"]} == {
        ("northwind", "invited"),
        ("acme-studio", "offer_extended"),
        ("globex", "in_progress"),
        ("globex", "declined"),
    }
    auditor = _first_update(api, token("audit", "auditor"))
    assert "interviews" not in auditor
    assert auditor["consumer"]["group"] == "projections" and auditor["consumer"]["parked"] == 0


def test_the_consumers_health_is_for_auditors_and_admins_and_counts_parked_events(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    from services.common.migrations import migrate
    from services.common.runner.tables import RUNNER_HISTORY, parked_events

    feed(container, synthetic_events(scripts(3)))
    for role in ("client", "freelancer"):
        refused = api.get("/views/consumer", headers=token("someone", role))
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert api.get("/views/consumer").status_code == 401
    migrate(container.engine(), [RUNNER_HISTORY])
    with container.engine().begin() as conn:
        conn.execute(
            parked_events.insert().values(
                group="projections",
                interview_id="i-1",
                event_id="e-1",
                type="interview.accepted",
                version=2,
                position=9,
                payload="{}",
                error="boom",
                attempts=5,
                parked_at=datetime.now(UTC),
            )  # fmt: skip
        )
    health = api.get("/views/consumer", headers=token("root", "admin"))
    assert health.status_code == 200
    # No runner in this process and no event store to compare with: lag unknown.
    assert health.json() == {
        "group": "projections",
        "source": "event store",
        "lag": None,
        "parked": 1,
        "dead_lettered": None,
    }
    assert "/views/consumer" in api.get("/openapi.json").json()["paths"]


def test_an_interview_page_is_for_its_parties_and_readers_only(
    container: ProjectionsContainer, api: TestClient, token: Token
) -> None:
    demo = demo_log(datetime.now(UTC))
    feed(container, demo.events())
    omar = next(str(i) for _, i, _, _, c, f, _ in demo.steps if f == "omar.haddad")
    path = f"/dashboard/interviews/{omar}"
    for user, role in (("northwind", "client"), ("omar.haddad", "freelancer"), ("a", "auditor")):
        page = api.get(path, headers=token(user, role))
        assert page.status_code == 200, (user, role)
        assert '"type":"interview.offer_extended"' in page.text
    for user, role in (("acme-studio", "client"), ("ana.souza", "freelancer")):
        page = api.get(path, headers=token(user, role))
        assert page.status_code == 404 and "omar.haddad" not in page.text
    assert api.get("/dashboard/interviews/nope", headers=token("a", "admin")).status_code == 404
    assert api.get(path).status_code == 401


def test_a_bad_time_zone_is_refused_and_a_good_one_survives_the_sign_in(
    api: TestClient, container: ProjectionsContainer, token: Token
) -> None:
    container.ensure_schema()
    bad = api.get("/dashboard", params={"tz": "Mars/Olympus"}, headers=token("a", "auditor"))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"
    raw = token("a", "auditor")["Authorization"].split()[1]
    response = api.get(
        "/dashboard", params={"access_token": raw, "tz": "Europe/Berlin"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard?tz=Europe%2FBerlin"


def test_wait_helper_is_async_safe() -> None:
    from services.projections.watch import PositionWatch

    watch = PositionWatch()

    async def scenario() -> bool:
        threading.Timer(0.05, watch.advance, args=(7,)).start()
        return await watch.changed(2)

    assert asyncio.run(scenario()) is True
    assert watch.position == 7


def test_two_replicas_answer_the_same_stats_after_events_below_the_highest_position(
    settings: ProjectionsSettings, token: Token
) -> None:
    """Kafka partitions deliver out of position order: a batch below the highest
    applied position must refresh every replica's cached statistics."""
    events = synthetic_events(scripts(40))
    cut = events[len(events) // 2].position
    high = [e for e in events if e.position > cut]
    low = [e for e in events if e.position <= cut]
    first, second = ProjectionsContainer(settings), ProjectionsContainer(settings)
    auditor = token("a", "auditor")
    try:
        with TestClient(create_app(first)) as one, TestClient(create_app(second)) as two:
            feed(first, high)
            assert one.get("/views/stats", headers=auditor).status_code == 200  # cached
            feed(second, low)  # all below the highest position already applied
            expected = reference_stats(reference_interviews(events).values())["total"]
            totals = [
                api.get("/views/stats", headers=auditor).json()["total"] for api in (one, two)
            ]
            assert totals == [expected, expected]
    finally:
        first.close()
        second.close()
