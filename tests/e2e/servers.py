"""Real HTTP servers for browser and socket tests: each service's app, and the
whole platform as ``interviewctl up`` builds it, on free loopback ports."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
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
