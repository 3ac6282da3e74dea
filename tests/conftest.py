"""Shared fixtures: real databases (SQLite file and PostgreSQL), tokens, clocks;
the notifications fixtures (``make_container``, ``receiver``, ``smtp``) come from
``tests/support/notifications.py``, and the suite's one ``wait_until`` from
``tests/support/waiting.py``.

PostgreSQL tests need ``DATABASE_URL`` (``make test`` starts a local server and
sets it). Outside CI they are skipped without it; in CI (``CI=true``) a missing
database is an error, so a green run always means they ran.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest
from fastapi.testclient import TestClient

from services.common.auth import mint_token
from services.interviews.bootstrap import InterviewsContainer, create_app
from services.interviews.settings import InterviewsSettings
from tests.support.waiting import Ticks, WaitTimeout, wait_until

__all__ = ["TEST_SECRET", "FakeClock", "Ticks", "WaitTimeout", "wait_until"]

pytest_plugins = ["tests.support.notifications"]

TEST_SECRET = "test-secret-" + "x" * 32


def _admin_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")


def require_postgres() -> str:
    url = _admin_url()
    if not url:
        if os.environ.get("CI"):
            pytest.fail("DATABASE_URL is not set in CI: PostgreSQL tests cannot run")
        pytest.skip("PostgreSQL tests need DATABASE_URL (run `make test`)")
    return url


def require_kafka() -> str:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        if os.environ.get("CI"):
            pytest.fail("KAFKA_BOOTSTRAP_SERVERS is not set in CI: Kafka tests cannot run")
        pytest.skip("Kafka tests need KAFKA_BOOTSTRAP_SERVERS (run `make test`)")
    return servers


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return require_kafka()


def create_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlparse(admin_url)
    return urlunparse(parts._replace(path="/" + name))


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin = require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = create_database(admin, name)
    try:
        yield url
    finally:
        drop_database(admin, name)


@pytest.fixture
def databases() -> Iterator[Callable[[str], str]]:
    """``databases("views")`` -> the URL of a fresh PostgreSQL database, dropped
    afterwards (for tests that run the services as processes)."""
    from tests.reliability.harness import fresh_databases

    with fresh_databases() as make:
        yield make


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Runs a test on both event stores: None means an SQLite file under DATA_DIR."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")  # type: ignore[no-any-return]


class FakeClock:
    """A clock tests move by hand instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def interviews_settings(database_url: str | None, tmp_path: Path) -> InterviewsSettings:
    """The interviews service's settings on the test's event store (SQLite or PostgreSQL)."""
    return InterviewsSettings(database_url=database_url, data_dir=tmp_path, auth_secret=TEST_SECRET)


@pytest.fixture
def interviews_container(
    interviews_settings: InterviewsSettings, clock: FakeClock
) -> Iterator[InterviewsContainer]:
    container = InterviewsContainer(interviews_settings, clock=clock)
    yield container
    container.close()


@pytest.fixture
def api(interviews_container: InterviewsContainer) -> Iterator[TestClient]:
    with TestClient(create_app(interviews_container)) as client:
        yield client


@pytest.fixture
def token() -> Callable[[str, str], dict[str, str]]:
    """``token("c1", "client")`` -> an Authorization header for that user."""

    def make(sub: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(TEST_SECRET, sub, role)}"}

    return make


@pytest.fixture
def client(token: Callable[[str, str], dict[str, str]]) -> dict[str, str]:
    """The Authorization header of client-1."""
    return token("client-1", "client")


@pytest.fixture
def freelancer(token: Callable[[str, str], dict[str, str]]) -> dict[str, str]:
    """The Authorization header of freelancer-1."""
    return token("freelancer-1", "freelancer")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``runs_last`` (they stop shared infrastructure) run after all others."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


# A W3C traceparent a caller sends: the tracing tests check spans continue it.
GIVEN_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
_SPAN_EXPORTER: list[Any] = []


@pytest.fixture
def spans() -> Iterator[Any]:
    """Every span this process ends from now on (an InMemorySpanExporter): the
    process's tracer provider, set up once, plus a processor that keeps them."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from services.common.tracing import export_spans, setup_tracing

    if not _SPAN_EXPORTER:
        assert setup_tracing("tests") is not None
        _SPAN_EXPORTER.append(InMemorySpanExporter())
        export_spans(SimpleSpanProcessor(_SPAN_EXPORTER[0]))
    _SPAN_EXPORTER[0].clear()
    yield _SPAN_EXPORTER[0]
    _SPAN_EXPORTER[0].clear()
