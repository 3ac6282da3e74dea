"""Real HTTP servers for browser, socket and process tests: each service's app,
the whole platform as ``interviewctl up`` builds it, and ``interviewctl`` itself
run as a process, on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.interviews.bootstrap import InterviewsContainer
from services.interviews.bootstrap import create_app as create_interviews_app
from services.interviews.settings import InterviewsSettings
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.bootstrap import create_app as create_notifications_app
from services.notifications.settings import NotificationsSettings
from services.projections.bootstrap import ProjectionsContainer
from services.projections.bootstrap import create_app as create_projections_app
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET
from tests.support.waiting import wait_until

SERVICES = ("interviews", "projections", "notifications", "platform")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 20, 0.02, what="uvicorn to start")
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def build_app(service: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """One service's app on SQLite under ``data_dir``, or the whole platform."""
    common: dict[str, Any] = {
        "database_url": None,
        "kafka_bootstrap_servers": None,
        "data_dir": data_dir,
        "auth_secret": TEST_SECRET,
    }
    if service == "interviews":
        return create_interviews_app(InterviewsContainer(InterviewsSettings(**common)))
    if service == "projections":
        return create_projections_app(ProjectionsContainer(ProjectionsSettings(**common)))
    if service == "notifications":
        return create_notifications_app(NotificationsContainer(NotificationsSettings(**common)))
    from services.platform import create_platform_app

    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("AUTH_SECRET", TEST_SECRET)
    return create_platform_app()


def embedded_env(data_dir: Path, *dropped: str, **extra: str) -> dict[str, str]:
    """This process's environment for ``interviewctl`` on the embedded default:
    no database URL, no broker and none of ``dropped``; ``DATA_DIR`` is ``data_dir``."""
    unset = {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", *dropped}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return env | {"DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"} | extra


def cli(*args: str, env: dict[str, str]) -> str:
    """``interviewctl ARGS`` to completion; its standard output (it must succeed)."""
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


@contextmanager
def running_cli(
    command: list[str], env: dict[str, str], *, ready: str = "/readyz", timeout: float = 10
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """``interviewctl COMMAND --port P`` as a process, once it answers 200 on
    ``ready``; a client on its base URL. Stopped (SIGTERM, then kill) afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", *command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout)

    def answers() -> bool:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else b""
            raise AssertionError(f"interviewctl {' '.join(command)} exited: {stderr!r}")
        return client.get(ready).status_code == 200

    try:
        wait_until(
            answers,
            60,
            0.2,
            what=f"interviewctl {' '.join(command)} to answer {ready}",
            ignoring=(httpx.TransportError,),
        )
        yield process, client
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
