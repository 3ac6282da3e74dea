"""Upgrades that lose nothing: data written by the FIRST release (6a515ff), by
that release's own code, is served by this one after ``interviewctl migrate``,
on SQLite and on PostgreSQL.

The first release's ``services`` package is taken from git (``git archive``) and
run in a subprocess (``first_release_writer.py``): it invites, hires, registers
a webhook and lets its consumers fill the views and the inbox, exactly as a
user of it would. Then this release migrates the databases (each is adopted at
its baseline: that release had no version tables) and serves the data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from services.common.auth import mint_token
from services.common.db import create_engine
from services.common.migrations import compare
from services.common.runner.tables import RUNNER_HISTORY
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain.job import Job
from services.interviews.migrations import HISTORY as INTERVIEWS
from services.interviews.settings import InterviewsSettings
from services.notifications.migrations import HISTORY as NOTIFICATIONS
from services.notifications.webhook_urls import normalised_url
from services.projections.migrations import HISTORY as PROJECTIONS
from tests.conftest import TEST_SECRET
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FIRST_RELEASE = "6a515ff"
REPO = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("first_release_writer.py")
INTERVIEWCTL = str(Path(sys.executable).with_name("interviewctl"))


@pytest.fixture(scope="module")
def first_release_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first release's ``services`` package, extracted from git."""
    where = tmp_path_factory.mktemp("first-release")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", FIRST_RELEASE, "services"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.skip(f"the first release ({FIRST_RELEASE}) is not in this clone's history")
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def env_for(data_dir: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update(DATA_DIR=str(data_dir), AUTH_SECRET=TEST_SECRET, **extra)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def bearer(sub: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(TEST_SECRET, sub, role)}"}


CLIENT, ALICE, BOB = (
    bearer("c-1", "client"),
    bearer("f-1", "freelancer"),
    bearer("f-2", "freelancer"),
)


@pytest.fixture
def old_data(
    first_release_code: Path, database_url: str | None, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """Databases as the first release leaves them, with what it wrote."""
    for _attempt in range(3):
        written = subprocess.run(
            [sys.executable, str(WRITER)],
            env=env_for(tmp_path, database_url, PYTHONPATH=str(first_release_code)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if written.returncode >= 0 or database_url is not None:
            break
        # The first release could die of SIGSEGV while stopping `up` on SQLite (it
        # closed its event store under its embedded consumer; this release stops the
        # apps in the right order): write its data again from scratch.
        for leftover in tmp_path.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
    assert written.returncode == 0, written.stderr[-3000:]
    ids = json.loads(written.stdout.strip().splitlines()[-1])
    notifications = engine_of(database_url, tmp_path / "notifications.sqlite")
    with notifications.begin() as conn:
        assert not sa.inspect(conn).has_table("notification_preferences"), "the old schema"
        # What that release kept of a receiver's answer (this one never keeps it).
        conn.execute(
            sa.text(
                "INSERT INTO notification_delivery_attempts (delivery_id, attempt, started_at, "
                "outcome, status_code, error) VALUES ('d-old', 1, :now, 'failed', 500, "
                '\'HTTP 500: {"echo": "private words"}\')'
            ),
            {"now": datetime.now(UTC).replace(tzinfo=None)},
        )
        ids["processed"] = conn.execute(sa.text("SELECT count(*) FROM processed_events")).scalar()
    notifications.dispose()
    yield ids


def engine_of(database_url: str | None, sqlite_path: Path) -> sa.Engine:
    return create_engine(database_url, sqlite_path)


def test_data_of_the_first_release_is_served_after_migrating(
    old_data: dict[str, Any],
    database_url: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hired, pending = old_data["hired"], old_data["pending"]

    migrated = subprocess.run(
        [INTERVIEWCTL, "migrate"],
        env=env_for(tmp_path, database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert migrated.returncode == 0, migrated.stderr
    for history in ("interviews", "projections", "notifications", "runner"):
        assert f"{history} had the first release's tables and no version" in migrated.stdout
    # The adopted databases are exactly what the models describe.
    for path, histories in (
        ("interviews.sqlite", (INTERVIEWS,)),
        ("projections.sqlite", (PROJECTIONS, RUNNER_HISTORY)),
        ("notifications.sqlite", (NOTIFICATIONS, RUNNER_HISTORY)),
    ):
        engine = engine_of(database_url, tmp_path / path)
        for history in histories:
            assert compare(engine, history) == [], (path, history.name)
        engine.dispose()

    for name, value in env_for(tmp_path, database_url).items():
        monkeypatch.setenv(name, value)
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        if name not in env_for(tmp_path, database_url):
            monkeypatch.delenv(name, raising=False)
    from services.platform import create_platform_app

    with TestClient(create_platform_app()) as http:
        # Interviews load, and their history still verifies.
        interview = http.get(f"/interviews/{hired}", headers=CLIENT)
        assert interview.status_code == 200, interview.text
        assert (interview.json()["status"], interview.json()["version"]) == ("hired", 5)
        verified = http.get(f"/audit/interviews/{hired}/verify", headers=CLIENT)
        assert verified.status_code == 200, verified.text
        verified = verified.json()
        assert (verified["ok"], verified["checked"]) == (True, 5)

        # Views answer: the first release's generation at once, then the one rebuilt
        # in the background with this release's view schemas (who acts next, ...).
        def summaries() -> dict[str, Any]:
            page = http.get("/views/interviews", headers=CLIENT)
            assert page.status_code == 200, page.text
            return {i["id"]: i for i in page.json()["items"]}

        assert set(summaries()) == {hired, pending}
        views = wait_until(
            summaries,
            60,
            0.1,
            what="the rebuilt views",
            until=lambda views: views[pending]["next_actor"] is not None,
        )
        assert views[hired]["status"] == "hired"
        assert (views[pending]["status"], views[pending]["next_actor"]) == ("invited", "freelancer")

        # The inbox lists what the first release delivered, nothing twice.
        inbox = http.get("/notifications", headers=BOB)
        assert inbox.status_code == 200, inbox.text
        assert [n["id"] for n in inbox.json()["items"]] == old_data["bob_inbox"]

        webhooks = http.get("/webhooks", headers=CLIENT)
        assert webhooks.status_code == 200, webhooks.text
        assert [w["id"] for w in webhooks.json()] == [old_data["webhook"]]

        # The old pending invitation goes on: Bob accepts it.
        accepted = http.post(f"/interviews/{pending}/accept", headers=BOB)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["version"] == 2

    notifications = engine_of(database_url, tmp_path / "notifications.sqlite")
    with notifications.connect() as conn:
        webhook = conn.execute(
            sa.text("SELECT url, normalized_url, dead_in_a_row FROM notification_webhooks")
        ).one()
        url = "https://hooks.example.com/in"
        assert tuple(webhook) == (url, normalised_url(url), 0), "filled for duplicate checks"
        error = conn.execute(
            sa.text("SELECT error FROM notification_delivery_attempts WHERE delivery_id = 'd-old'")
        ).scalar()
        assert error == "HTTP 500", "a receiver's answer is never kept"
        reminder = conn.execute(
            sa.text(
                "SELECT what, recipient_id, duration_minutes FROM reminder_deadlines "
                "WHERE interview_id = :id"
            ),
            {"id": pending},
        ).one()
        assert tuple(reminder) == ("invitation", "f-2", None)
        assert (
            conn.execute(sa.text("SELECT count(*) FROM processed_events")).scalar()
            >= (old_data["processed"])
        )
    notifications.dispose()

    interviews_db = engine_of(database_url, tmp_path / "interviews.sqlite")
    with interviews_db.connect() as conn:
        relay = conn.execute(sa.text("SELECT topic, position FROM relay_position")).one()
    interviews_db.dispose()
    assert tuple(relay) == ("interviews.events", 7)

    # The job of interviews created before jobs had their own API: owned by its client.
    container = InterviewsContainer(
        InterviewsSettings(database_url=database_url, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )
    try:
        job = container.interviews().repository.get(Job.id_for("job-1"))
        assert (job.job_id, job.client_id) == ("job-1", "c-1")
        assert set(job.candidates) == {"f-1", "f-2"}
    finally:
        container.close()
