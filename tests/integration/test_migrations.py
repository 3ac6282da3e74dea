"""Migrations: every table the project owns comes from one Alembic history per
database; the models and the migrations agree; a database newer than the code,
or behind it with AUTO_MIGRATE=false, stops a service with one line; processes
starting together migrate once; ``interviewctl migrate`` says what it did."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common.db import create_engine
from services.common.migrations import (
    DatabaseNewerThanCodeError,
    History,
    SchemaBehindError,
    SchemaError,
    compare,
    migrate,
)
from services.common.runner.tables import RUNNER_HISTORY
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.migrations import HISTORY as INTERVIEWS
from services.interviews.migrations import check_event_store
from services.interviews.settings import InterviewsSettings
from services.notifications.migrations import HISTORY as NOTIFICATIONS
from services.projections.migrations import HISTORY as PROJECTIONS
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.integration

HISTORIES = [INTERVIEWS, PROJECTIONS, NOTIFICATIONS, RUNNER_HISTORY]
INTERVIEWCTL = str(Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "interviewctl")


@pytest.fixture
def engine(database_url: str | None, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(database_url, tmp_path / "one.sqlite")
    yield engine
    engine.dispose()


def version_of(engine: sa.Engine, history: History) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(sa.text(f"SELECT version_num FROM {history.version_table}")).scalar()
        )


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.name)
def test_the_models_and_the_migrations_agree(engine: sa.Engine, history: History) -> None:
    report = migrate(engine, [history])

    assert [s.after for s in report.steps] == [history.head()]
    assert compare(engine, history) == []


def test_the_comparison_sees_a_table_that_drifted_from_its_model(engine: sa.Engine) -> None:
    migrate(engine, [NOTIFICATIONS])
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE notification_preferences ADD COLUMN stray INTEGER"))

    differences = compare(engine, NOTIFICATIONS)

    assert [(d[0], d[2], d[3].name) for d in differences] == [
        ("remove_column", "notification_preferences", "stray")
    ]


def test_histories_share_one_database_each_with_its_own_version(engine: sa.Engine) -> None:
    migrate(engine, HISTORIES, after=check_event_store)
    again = migrate(engine, HISTORIES, after=check_event_store)

    assert not again.changed
    assert {h.name: version_of(engine, h) for h in HISTORIES} == {
        h.name: h.head() for h in HISTORIES
    }
    for history in HISTORIES:
        assert compare(engine, history) == [], history.name


def test_a_database_newer_than_the_code_is_refused_and_left_alone(engine: sa.Engine) -> None:
    migrate(engine, [NOTIFICATIONS])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version_notifications SET version_num = '0099'"))

    for auto in (True, False):
        with pytest.raises(DatabaseNewerThanCodeError, match="'0099', which this code does not"):
            migrate(engine, [NOTIFICATIONS], auto=auto)
    assert version_of(engine, NOTIFICATIONS) == "0099"


def test_with_auto_migrate_off_a_database_behind_is_refused_and_not_changed(
    engine: sa.Engine,
) -> None:
    with engine.connect() as conn:
        from alembic import command

        command.upgrade(NOTIFICATIONS.config(conn), "0001")
        conn.commit()

    with pytest.raises(SchemaBehindError, match="run `interviewctl migrate`"):
        migrate(engine, [NOTIFICATIONS], auto=False)

    assert version_of(engine, NOTIFICATIONS) == "0001"
    assert not sa.inspect(engine).has_table("notification_preferences")


def test_an_event_store_of_a_newer_eventsourcing_is_refused(engine: sa.Engine) -> None:
    migrate(engine, [INTERVIEWS], after=check_event_store)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE event_store_schema SET version = '99.0.0'"))

    with pytest.raises(DatabaseNewerThanCodeError, match="eventsourcing 99.0.0"):
        migrate(engine, [INTERVIEWS], after=check_event_store)


def test_the_event_store_records_the_eventsourcing_version(engine: sa.Engine) -> None:
    from importlib.metadata import version

    report = migrate(engine, [INTERVIEWS], after=check_event_store)

    assert report.notes == [
        f"database: event store: recorded eventsourcing {version('eventsourcing')}"
    ]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT library, version FROM event_store_schema")).all()
    assert [tuple(r) for r in rows] == [("eventsourcing", version("eventsourcing"))]


def test_processes_starting_together_migrate_once(database_url: str | None, tmp_path: Path) -> None:
    engines = [create_engine(database_url, tmp_path / "one.sqlite") for _ in range(4)]
    reports: list[object] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def start(engine: sa.Engine) -> None:
        barrier.wait()
        try:
            reports.append(migrate(engine, HISTORIES, after=check_event_store))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        created = [r for r in reports if r.changed]  # type: ignore[attr-defined]
        assert len(created) == 1, "one process migrated, the others found it current"
    finally:
        for engine in engines:
            engine.dispose()


def test_a_service_refuses_to_open_a_database_newer_than_the_code(
    database_url: str | None, tmp_path: Path
) -> None:
    settings = InterviewsSettings(
        database_url=database_url, data_dir=tmp_path, auth_secret=TEST_SECRET
    )
    engine = create_engine(database_url, tmp_path / "interviews.sqlite")
    try:
        migrate(engine, [INTERVIEWS])
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version_interviews SET version_num = 'f00d'"))
    finally:
        engine.dispose()

    container = InterviewsContainer(settings)
    with pytest.raises(SchemaError, match="a newer release migrated it"):
        container.interviews()


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INTERVIEWCTL, *args], env=env, capture_output=True, text=True, timeout=120
    )


def cli_env(tmp_path: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update(DATA_DIR=str(tmp_path), AUTH_SECRET=TEST_SECRET, **extra)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def test_interviewctl_migrate_brings_every_database_current_and_says_so(
    database_url: str | None, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, database_url)

    first = run_cli("migrate", env=env)
    second = run_cli("migrate", env=env)

    assert first.returncode == 0, first.stderr
    for line in (
        "interviews database: interviews created at 0003",
        "interviews database: event store: recorded eventsourcing",
        "projections database: projections created at 0002",
        "projections database: runner created at 0001",
        "notifications database: notifications created at 0003",
    ):
        assert line in first.stdout
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and "upgraded" not in second.stdout
    assert "notifications database: notifications is current (0003)" in second.stdout


def test_serve_refuses_a_newer_database_in_one_line_with_exit_2(
    database_url: str | None, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, database_url)
    assert run_cli("migrate", env=env).returncode == 0
    engine = create_engine(database_url, tmp_path / "notifications.sqlite")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version_notifications SET version_num = 'f00d'"))
    finally:
        engine.dispose()

    for args in (("serve", "notifications", "--port", free_port()), ("migrate",)):
        result = run_cli(*args, env=env)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "'f00d', which this code does not know" in lines[0]


def test_serve_with_auto_migrate_off_refuses_a_database_behind(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "projections",
        "--port",
        free_port(),
        env=cli_env(tmp_path, None, AUTO_MIGRATE="false"),
    )

    assert result.returncode == 2
    assert "AUTO_MIGRATE is false: run `interviewctl migrate`" in result.stderr


def test_migrate_says_in_one_line_when_a_database_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens once the probe closes
    env = cli_env(tmp_path, f"postgresql://someone:secret@127.0.0.1:{closed_port}/nowhere")

    result = run_cli("migrate", env=env)

    assert result.returncode == 3, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "secret" not in result.stderr
