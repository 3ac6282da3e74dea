"""Fixtures of the reliability suite, and its one-line summary at the end of the run."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import create_database, drop_database, require_postgres

from .harness import TALLY, Platform


@pytest.fixture
def databases() -> Iterator[Callable[[str], str]]:
    """``databases("views")`` -> the URL of a fresh PostgreSQL database, dropped afterwards
    (each service owns its database, as in production)."""
    admin = require_postgres()
    names: list[str] = []

    def make(prefix: str) -> str:
        name = f"rel_{prefix}_{uuid.uuid4().hex[:10]}"
        names.append(name)
        return create_database(admin, name)

    yield make
    for name in names:
        # PostgreSQL may be down after a failed outage test.
        with contextlib.suppress(Exception):
            drop_database(admin, name)


@pytest.fixture
def platform(
    tmp_path: Path, kafka_bootstrap: str, databases: Callable[[str], str]
) -> Iterator[Platform]:
    """Real service processes on loopback for one test, on their own topic and databases;
    every process is stopped and the topics deleted afterwards."""
    with Platform(tmp_path, kafka_bootstrap, databases) as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.touched:
        terminalreporter.write_line(TALLY.line())
