"""SIGTERM stops a server within a few seconds, even with a dashboard stream
open, and lets a request in flight finish."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from services.common.auth import mint_token
from tests.conftest import TEST_SECRET
from tests.e2e.servers import embedded_env, running_cli

pytestmark = pytest.mark.e2e

# Well inside the 30 s grace period of a common orchestrator.
STOPS_WITHIN_S = 10.0
HEADERS = {"Authorization": "Bearer " + mint_token(TEST_SECRET, "client-1", "client", 3600)}


@contextmanager
def serving(
    command: list[str], tmp_path: Path, **env_extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """``interviewctl COMMAND`` on the embedded default, answering on a free port."""
    env = embedded_env(tmp_path / "data", "LOG_FORMAT", AUTH_SECRET=TEST_SECRET, **env_extra)
    with running_cli(command, env, ready="/healthz", timeout=30) as running:
        yield running


def stop(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """SIGTERM; the exit code and the seconds it took."""
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=STOPS_WITHIN_S + 20)
    return code, time.monotonic() - sent


@pytest.mark.parametrize(
    "command,stream",
    [
        (["up"], True),
        (["serve", "projections"], True),
        (["serve", "interviews"], False),
        (["serve", "notifications"], False),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else ("stream" if value else ""),
)
def test_sigterm_ends_open_dashboard_streams_and_the_process_exits_cleanly(
    command: list[str], stream: bool, tmp_path: Path
) -> None:
    with serving(command, tmp_path) as (process, http):
        opened = threading.Event()
        ended: list[str] = []

        def watch() -> None:
            with http.stream("GET", "/views/stream", headers=HEADERS) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line.startswith("event: update"):
                        opened.set()
            ended.append("ended")

        reader = threading.Thread(target=watch, daemon=True)
        if stream:
            reader.start()
            assert opened.wait(30), "the stream sent no update"
        code, took = stop(process)
        if stream:
            reader.join(5)

    print(f"{' '.join(command)}: SIGTERM to exit (stream open: {stream}): {took:.2f}s")
    assert took < STOPS_WITHIN_S
    assert code == 0, process.stderr.read()  # type: ignore[union-attr]
    if stream:
        assert ended == ["ended"]  # the stream ended cleanly rather than being cut


def test_a_request_in_flight_when_sigterm_arrives_gets_its_answer(tmp_path: Path) -> None:
    # min_position beyond the log makes the request wait its full bound (2 s), then 503.
    with serving(["serve", "projections"], tmp_path, MIN_POSITION_TIMEOUT_S="2") as (process, http):
        answers: list[httpx.Response] = []
        started = time.monotonic()

        def ask() -> None:
            answers.append(
                http.get("/views/interviews", params={"min_position": 10**9}, headers=HEADERS)
            )

        request = threading.Thread(target=ask)
        request.start()
        time.sleep(0.5)  # the request is now waiting inside the server
        code, _ = stop(process)
        request.join(10)

    assert code == 0
    (answer,) = answers
    assert answer.status_code == 503 and answer.json()["code"] == "view_behind"
    assert time.monotonic() - started >= 2  # it was answered after its wait, not cut short
