"""``interviewctl token`` mints a development token the API accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.interviews.bootstrap import InterviewsContainer, create_app
from services.interviews.settings import InterviewsSettings
from tests.conftest import TEST_SECRET, FakeClock

pytestmark = pytest.mark.integration


def interviewctl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("interviewctl")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "services.cli"]
    return subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LOG_LEVEL")}
    return {**env, "AUTH_SECRET": TEST_SECRET, "DATA_DIR": str(tmp_path / "cli")}


def test_a_minted_token_is_accepted_by_the_api(
    cli_env: dict[str, str], tmp_path: Path, clock: FakeClock
) -> None:
    client = interviewctl("token", "--sub", "X", "--role", "client", env=cli_env)
    freelancer = interviewctl("token", "--sub", "Y", "--role", "freelancer", env=cli_env)
    service = interviewctl("token", "--sub", "jobs", "--role", "service", env=cli_env)
    assert service.returncode == 0, service.stderr
    assert client.returncode == 0, client.stderr
    client_token = client.stdout.strip()
    assert client_token.count(".") == 2 and "\n" not in client_token

    settings = InterviewsSettings(database_url=None, data_dir=tmp_path, auth_secret=TEST_SECRET)
    container = InterviewsContainer(settings, clock=clock)
    with TestClient(create_app(container)) as api:
        registered = api.put(
            "/jobs/job-1",
            json={"client_id": "X"},
            headers={"Authorization": f"Bearer {service.stdout.strip()}"},
        )
        assert registered.status_code == 201, registered.text
        invited = api.post(
            "/interviews",
            json={"job_id": "job-1", "freelancer_id": "Y"},
            headers={"Authorization": f"Bearer {client_token}"},
        )
        assert invited.status_code == 201, invited.text
        accepted = api.post(
            f"/interviews/{invited.json()['id']}/accept",
            headers={"Authorization": f"Bearer {freelancer.stdout.strip()}"},
        )
        assert accepted.json()["status"] == "accepted"

        other = interviewctl(
            "token", "--sub", "X", "--role", "client", env={**cli_env, "AUTH_SECRET": "other" * 8}
        )
        wrong_secret = api.get(
            f"/interviews/{invited.json()['id']}",
            headers={"Authorization": f"Bearer {other.stdout.strip()}"},
        )
        assert wrong_secret.status_code == 401


def test_an_unknown_role_is_refused(cli_env: dict[str, str]) -> None:
    result = interviewctl("token", "--sub", "X", "--role", "superuser", env=cli_env)

    assert result.returncode != 0
    assert result.stdout.strip() == ""
    assert "role" in result.stderr
