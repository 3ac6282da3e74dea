"""Every ``curl`` example of the README, run as a reader would paste it.

``interviewctl up`` starts as ``make up`` starts it (its own folder, the default
``./data``, no ``AUTH_SECRET``), and must print its ``ready:`` line; then each
fenced ``sh`` block that calls ``curl`` runs in bash from that same folder
(``set -euo pipefail``, ``PORT`` set), with ``.venv/bin/interviewctl`` there as
in a clone, so the tokens are signed with the secret ``up`` generated. Every
curl must answer 2xx, except one followed by a ``# expect NNN`` comment, which
must answer exactly that.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.readme import README, ROOT, Block, curl_commands, fenced_blocks

pytestmark = pytest.mark.e2e

STATUS_MARK = "README-HTTP-STATUS"
BLOCKS = [b for b in fenced_blocks(README.read_text(encoding="utf-8")) if b.has_curl]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(workdir: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "AUTH_SECRET", "DATA_DIR")
        and not k.endswith("_DATABASE_URL")
    }
    env.update(PORT=str(port), LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder like a clone after ``make up PORT=…``: ``.venv/bin/interviewctl`` and
    the platform serving from it, ready."""
    folder = tmp_path_factory.mktemp("clone")
    cli = folder / ".venv" / "bin" / "interviewctl"
    cli.parent.mkdir(parents=True)
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m services.cli "$@"\n')
    cli.chmod(0o755)
    port = _free_port()
    env = _environment(folder, port)
    process = subprocess.Popen(
        [str(cli), "up", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    lines: list[str] = []
    ready = threading.Event()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("ready: "):
                ready.set()

    def drain_stderr() -> None:
        assert process.stderr is not None
        for _ in process.stderr:
            pass

    threading.Thread(target=read_stdout, daemon=True).start()
    threading.Thread(target=drain_stderr, daemon=True).start()
    try:
        started = time.monotonic()
        while not ready.wait(0.2):
            assert process.poll() is None, f"interviewctl up exited: {lines}"
            assert time.monotonic() - started < 90, f"no ready line within 90 s: {lines}"
        ready_line = next(line for line in lines if line.startswith("ready: "))
        assert re.match(rf"ready: http://127\.0\.0\.1:{port}\b", ready_line), ready_line
        yield folder, env
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_readme_has_curl_examples_for_each_part() -> None:
    text = "".join(b.text for b in BLOCKS)
    for path in ("/jobs", "/interviews", "/accept", "/start", "/offer/accept", "/reschedule"):
        assert f'"$BASE{path}' in text or f'{path}"' in text or f"{path} " in text, path
    for path in ("/calendar.ics", "/views/interviews/", "/notifications", "/me/preferences"):
        assert path in text, path
    assert '"$BASE/webhooks"' in text


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"README-line-{b.line}")
def test_the_example_runs_as_written(block: Block, workdir: tuple[Path, dict[str, str]]) -> None:
    folder, env = workdir
    expected = curl_commands(block.text)
    assert expected, "a block with curl but no curl command"
    # Each curl also writes its status to stderr (a README example never sets -w).
    script = (
        "set -euo pipefail\n"
        f"curl() {{ command curl -w '%{{stderr}}{STATUS_MARK} %{{http_code}}\\n' \"$@\"; }}\n"
        + block.text
    )
    run = subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = f"README line {block.line}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.returncode == 0, report
    statuses = [int(s) for s in re.findall(rf"{STATUS_MARK} (\d+)", run.stderr)]
    assert len(statuses) == len(expected), report
    for (command, status), got in zip(expected, statuses, strict=True):
        if status is None:
            assert 200 <= got < 300, f"{command}\n answered {got}\n{report}"
        else:
            assert got == status, f"{command}\n answered {got}, not {status}\n{report}"
