"""Fixtures of the reliability suite, and its one-line summary at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from .harness import TALLY, Platform

FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture
def platform(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    kafka_bootstrap: str,
    databases: Callable[[str], str],
) -> Iterator[Platform]:
    """Real service processes on loopback for one test, on their own topic and databases;
    every process is stopped and the topics deleted afterwards. When the test failed,
    the end of every service's log is printed (a fixture is not told the test's
    exception, so ``Platform.__exit__`` cannot)."""
    with Platform(tmp_path, kafka_bootstrap, databases) as running:
        yield running
        if request.node.stash.get(FAILED, False):
            print(running.logs(lines=80))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.touched:
        terminalreporter.write_line(TALLY.line())
