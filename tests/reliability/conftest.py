"""Fixtures of the reliability suite, and its one-line summary at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .harness import TALLY, Platform


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
