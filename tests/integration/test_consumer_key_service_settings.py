"""A consumer run as its own process on Kafka needs KEY_SERVICE_URL: it refuses to
start without it, in one line, before anything listens or consumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET
from tests.key_service_double import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", ["projections", "notifications"])
def test_serve_without_key_service_url_on_kafka_refuses_to_start(
    service: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.pop("KEY_SERVICE_URL", None)
    env.update(DATA_DIR=str(tmp_path), AUTH_SECRET=TEST_SECRET,
               KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "serve", service, "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "KEY_SERVICE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / f"{service}.sqlite").exists()  # refused before touching anything
