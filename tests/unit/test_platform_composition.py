"""``interviewctl up`` composes every service, or refuses to start: a part that
cannot be imported (the deadline scheduler, say) is never silently left out."""

from __future__ import annotations

import importlib
import socket
import sys
from pathlib import Path

import pytest

from services.cli import app as cli_app
from services.common.cli_errors import EXIT_INTERNAL, run

pytestmark = pytest.mark.unit

BROKEN = "services.interviews.scheduler"
# Modules that import the scheduler, directly or through the interviews bootstrap:
# forgotten here, they would be imported afresh with the broken scheduler.
IMPORTERS = ("services.platform", "services.interviews.bootstrap")


@pytest.fixture
def scheduler_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, BROKEN, None)  # "import of … halted": an ImportError
    for name in IMPORTERS:
        monkeypatch.delitem(sys.modules, name, raising=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.usefixtures("scheduler_cannot_be_imported")
def test_the_platform_does_not_load_without_its_scheduler() -> None:
    with pytest.raises(ImportError, match=BROKEN):
        importlib.import_module("services.platform")


@pytest.mark.usefixtures("scheduler_cannot_be_imported")
def test_up_refuses_to_start_without_its_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "INTERVIEWCTL_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))  # `up --data-dir` sets it: restored after

    code = run(cli_app, ["up", "--port", str(free_port()), "--data-dir", str(tmp_path)])

    printed = capsys.readouterr()
    assert code == EXIT_INTERNAL
    assert "ModuleNotFoundError" in printed.err and BROKEN in printed.err
    assert "starting the interview platform" not in printed.out
    assert list(tmp_path.iterdir()) == []  # no database was made for a platform that never ran
