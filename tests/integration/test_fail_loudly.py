"""A consumer that cannot do its work says so: readiness, always-exported gauges,
a schema it does not know stops it, and the operator's tools reach every group."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from services.cli import app as cli_app
from services.common.consumer import ConsumerSpec
from services.common.db import create_engine
from services.common.migrations import migrate
from services.common.readiness import NotReadyError, ReadinessRules
from services.common.runner.embedded import EmbeddedSource
from services.common.runner.kafka_source import KafkaSource
from services.common.runner.loop import ConsumerRunner
from services.common.runner.parked import list_parked
from services.common.runner.parked import park as park_event
from services.common.runner.tables import (
    RUNNER_HISTORY,
    consumer_positions,
    migrate_consumer_database,
)
from services.contracts import EventEnvelope
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.bootstrap import consumer_spec as notifications_spec
from services.projections.adapters.schema import VIEW_SCHEMAS, pv_generations, view_tables
from services.projections.adapters.store import current_generation
from services.projections.bootstrap import ProjectionsContainer, consumer_spec
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET
from tests.support.projections_reference import scripts, synthetic_events
from tests.support.waiting import wait_until

from .eventflow import TEST_LAYOUT, each_event

pytestmark = pytest.mark.integration


def park(engine: sa.Engine, group: str, event: EventEnvelope, error: str = "boom") -> None:
    with engine.begin() as conn:
        park_event(conn, group, event, where=None, error=error, attempts=3)


@pytest.fixture
def clean_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS") and not k.endswith("_DATABASE_URL")
    }
    yield {**keep, "AUTH_SECRET": TEST_SECRET, "DATA_DIR": str(tmp_path)}


def test_dlq_list_retry_and_skip_accept_a_configured_group_name(
    tmp_path: Path, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "PROJECTIONS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    group = "views-blue"
    settings = ProjectionsSettings(
        data_dir=tmp_path, auth_secret=TEST_SECRET, projections_consumer_group=group
    )
    container = ProjectionsContainer(settings)
    spec = consumer_spec(container)
    migrate_consumer_database(spec)
    first, second = synthetic_events(scripts(2))[:2]
    park(spec.engine, group, first)
    park(spec.engine, group, second)
    container.close()
    env = {**clean_env, "PROJECTIONS_CONSUMER_GROUP": group}
    cli = CliRunner()

    listed = cli.invoke(cli_app, ["dlq", "list", "--group", group], env=env)
    assert listed.exit_code == 0, listed.output
    assert f"2 parked event(s) in group {group}" in listed.output

    retried = cli.invoke(
        cli_app, ["dlq", "retry", "--group", group, "--interview", str(first.interview_id)],
        env=env,
    )  # fmt: skip
    assert retried.exit_code == 0, retried.output
    assert "applied 1" in retried.output

    skipped = cli.invoke(cli_app, ["dlq", "skip", "--group", group, "--event", str(second.id)],
                         env=env)  # fmt: skip
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 1" in skipped.output

    engine = ProjectionsContainer(settings).engine()
    assert list_parked(engine, group) == []
    unknown = cli.invoke(cli_app, ["dlq", "list", "--group", "views-green"], env=env)
    assert unknown.exit_code == 2 and "views-blue" in unknown.output


def test_consumers_starting_together_create_their_bookkeeping_tables_once(
    postgres_url: str,
) -> None:
    """PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against a concurrent one:
    the runner's tables are migrated under a lock."""
    import threading

    from services.common.db import create_engine

    engines = [create_engine(postgres_url, Path("unused")) for _ in range(6)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def create(engine: sa.Engine) -> None:
        start.wait()
        try:
            migrate(engine, [RUNNER_HISTORY])
        except BaseException as error:  # the test reports it
            errors.append(error)

    threads = [threading.Thread(target=create, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for engine in engines:
        engine.dispose()
    assert errors == []


# ------------------------------------------------------------------ readiness


class Log:
    """An event store's log in memory: what an embedded source reads."""

    def __init__(self, events: list[EventEnvelope] = ()) -> None:  # type: ignore[assignment]
        self.events = list(events)
        self.wake = threading.Event()

    def read(self, after: int, limit: int) -> list[EventEnvelope]:
        return [e for e in self.events if e.position > after][:limit]

    def head(self) -> int:
        return max((e.position for e in self.events), default=0)

    def runner(self, spec: ConsumerSpec, **options: Any) -> ConsumerRunner:
        source = EmbeddedSource(self.read, self.wake, poll_seconds=0.05, batch=10,
                                max_position=self.head)  # fmt: skip
        options.setdefault("registry", CollectorRegistry())
        return ConsumerRunner(spec, source, poll_timeout=0.05, **options)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def not_ready_reason(runner: ConsumerRunner) -> str | None:
    try:
        runner.check_ready()
    except NotReadyError as error:
        return str(error)
    return None


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(None, tmp_path / "consumer.sqlite")
    yield engine
    engine.dispose()


def failing_spec(engine: sa.Engine, group: str) -> ConsumerSpec:
    def broken(conn: sa.Connection, event: EventEnvelope) -> None:
        raise ValueError("cannot store this")

    return ConsumerSpec(group, engine, each_event(broken))


def test_the_consumer_gauges_are_exported_before_the_first_batch(engine: sa.Engine) -> None:
    registry = CollectorRegistry()
    Log().runner(failing_spec(engine, "quiet"), registry=registry)
    exported = generate_latest(registry).decode()
    assert 'consumer_parked_events{group="quiet"} 0.0' in exported
    assert 'consumer_lag{group="quiet",partition="none",topic="event-store"} 0.0' in exported


def test_a_consumer_that_parks_every_event_is_not_ready(engine: sa.Engine) -> None:
    events = synthetic_events(scripts(30))
    rules = ReadinessRules(parked_window=10)
    runner = (
        Log(events)
        .runner(failing_spec(engine, "parker"), readiness=rules, max_attempts=1, retry_backoff=0)
        .start()
    )
    try:
        assert wait_until(lambda: runner.stats.parked >= 10, 30)
        reason = not_ready_reason(runner)
        assert reason is not None and "parked each of the last 10 events" in reason
        assert wait_until(lambda: runner.metrics.parked.labels("parker")._value.get() > 0, 30)
    finally:
        runner.stop()
        runner.join(10)


def test_a_consumer_behind_for_longer_than_allowed_is_not_ready(engine: sa.Engine) -> None:
    events = synthetic_events(scripts(20))
    entered, release = threading.Event(), threading.Event()

    def slow(conn: sa.Connection, event: EventEnvelope) -> None:
        if event.position > events[9].position:  # the second batch hangs
            entered.set()
            release.wait(30)

    clock = Clock()
    spec = ConsumerSpec("slow", engine, each_event(slow))
    behind = events[-1].position - events[9].position
    rules = ReadinessRules(max_lag=behind - 1, lag_seconds=60)
    runner = Log(events).runner(spec, readiness=rules, clock=clock).start()
    try:
        assert entered.wait(30)
        assert not_ready_reason(runner) is None, "behind, but not for long yet"
        clock.now += 61
        reason = not_ready_reason(runner)
        assert reason is not None and f"{behind} events behind" in reason
        release.set()
        assert wait_until(lambda: runner.stats.processed == len(events), 30)
        assert wait_until(lambda: not_ready_reason(runner) is None, 30)
    finally:
        release.set()
        runner.stop()
        runner.join(10)


def test_a_consumer_whose_database_or_broker_is_gone_is_not_ready(postgres_url: str) -> None:
    from tests.conftest import drop_database, require_postgres

    engine = create_engine(postgres_url, Path("unused"), pool_pre_ping=False)
    runner = (
        Log(synthetic_events(scripts(2)))
        .runner(ConsumerSpec("db", engine, each_event(lambda conn, event: None)))
        .start()
    )
    try:
        assert wait_until(lambda: runner.stats.processed > 0, 30)
        assert not_ready_reason(runner) is None
        drop_database(require_postgres(), postgres_url.rsplit("/", 1)[1])
        reason = not_ready_reason(runner)
        assert reason is not None and "database does not answer" in reason
    finally:
        runner.stop()
        runner.join(10)
        engine.dispose()
    with pytest.raises(NotReadyError, match="broker"):
        KafkaSource("127.0.0.1:1", "interviews.events", layout=TEST_LAYOUT).check_reachable(
            timeout=1
        )


# -------------------------------------------------------- an unknown schema


def older_shape(container: ProjectionsContainer, column: str = "next_actor") -> None:
    with container.engine().begin() as conn:
        generation = current_generation(conn)
        assert generation is not None
        table = view_tables(generation.number).interviews.name
        conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')


def newer_generation(container: ProjectionsContainer) -> None:
    with container.engine().begin() as conn:
        generation = current_generation(conn)
        assert generation is not None
        conn.execute(
            sa.update(pv_generations)
            .where(pv_generations.c.generation == generation.number)
            .values(
                schemas={**VIEW_SCHEMAS, "interview_summary": VIEW_SCHEMAS["interview_summary"] + 1}
            )
        )


@pytest.mark.parametrize("change", [older_shape, newer_generation], ids=["older", "newer"])
def test_a_consumer_meeting_a_schema_it_does_not_know_stops_and_says_so(
    database_url: str | None, tmp_path: Path, change: Callable[[ProjectionsContainer], None]
) -> None:
    settings = ProjectionsSettings(
        database_url=database_url, projections_database_url=database_url,
        kafka_bootstrap_servers=None, data_dir=tmp_path, auth_secret=TEST_SECRET,
    )  # fmt: skip
    container = ProjectionsContainer(settings)
    events = synthetic_events(scripts(10))
    log = Log(events[:5])
    rules = ReadinessRules(halt_retry_seconds=0.2)
    runner = log.runner(consumer_spec(container), readiness=rules, max_attempts=1).start()
    try:
        assert wait_until(lambda: runner.stats.processed == 5, 30)
        change(container)
        log.events.extend(events[5:])
        log.wake.set()
        assert wait_until(lambda: runner.halted is not None, 30)
        reason = not_ready_reason(runner)
        assert reason is not None and "stopped consuming" in reason
        expected = "next_actor" if change is older_shape else "ViewNewerThanCodeError"
        assert expected in reason
        opened = runner.stats.errors
        assert wait_until(lambda: runner.stats.errors > opened, 30), "it tries again"
        assert list_parked(container.engine(), runner.group) == []
        with container.engine().connect() as conn:
            position = conn.execute(sa.select(consumer_positions.c.position)).scalar()
        assert position == events[4].position, "its position stays before the first unapplied"
    finally:
        runner.stop()
        runner.join(10)
        container.close()


def test_the_inbox_of_a_table_of_an_older_shape_answers_a_json_503(
    make_container: Callable[..., NotificationsContainer],
    token: Callable[[str, str], dict[str, str]],
) -> None:
    from fastapi.testclient import TestClient

    from services.notifications.bootstrap import create_app as notifications_app
    from tests.support.notifications import Interview

    container = make_container()
    with TestClient(notifications_app(container)) as api:
        with container.engine().begin() as conn:
            conn.exec_driver_sql('ALTER TABLE "notifications" DROP COLUMN "read_at"')
        interview = Interview()
        runner = (
            Log([interview.event("interview.invited", "client", {"message": None})])
            .runner(notifications_spec(container), readiness=ReadinessRules(halt_retry_seconds=30))
            .start()
        )
        try:
            assert wait_until(lambda: runner.halted is not None, 30)
            assert "read_at" in (not_ready_reason(runner) or "")
            assert runner.stats.parked == 0
        finally:
            runner.stop()
            runner.join(10)
        response = api.get("/notifications", headers=token("f-1", "freelancer"))
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "schema_mismatch"
