"""A consumer that cannot do its work says so: readiness, always-exported gauges,
a schema it does not know stops it, and the operator's tools reach every group."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from services.cli import app as cli_app
from services.common.runner import create_tables, list_parked, parked_events
from services.contracts import EventEnvelope
from services.projections.bootstrap import ProjectionsContainer, consumer_spec
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET
from tests.unit.test_projections_reference import scripts, synthetic_events

pytestmark = pytest.mark.integration


def park(engine: sa.Engine, group: str, event: EventEnvelope, error: str = "boom") -> None:
    with engine.begin() as conn:
        conn.execute(
            parked_events.insert().values(
                group=group,
                interview_id=str(event.interview_id),
                event_id=str(event.id),
                type=event.type,
                version=event.version,
                position=event.position,
                source=None,
                payload=event.model_dump_json(),
                error=error,
                attempts=3,
                parked_at=datetime.now(UTC),
            )
        )


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
    create_tables(spec.engine, spec.metadata)
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
    """PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against a concurrent one."""
    import threading

    from services.common.db import create_engine

    engines = [create_engine(postgres_url, Path("unused")) for _ in range(6)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def create(engine: sa.Engine) -> None:
        start.wait()
        try:
            create_tables(engine)
        except BaseException as error:  # noqa: BLE001 - the test reports it
            errors.append(error)

    threads = [threading.Thread(target=create, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for engine in engines:
        engine.dispose()
    assert errors == []
