"""A notifications database of the previous release (SQLite file and PostgreSQL)
gets the new table and columns when the service starts on it, keeps its rows, and
goes on sending the reminders it had pending."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from services.common.db import create_engine
from services.notifications.adapters.tables import reminder_deadlines
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.migrations import HISTORY
from tests.conftest import FakeClock
from tests.integration.first_release import first_release_schema
from tests.support.notifications import Interview, inbox_of

pytestmark = pytest.mark.integration

Make = Callable[..., NotificationsContainer]


def test_an_old_database_gets_the_new_table_and_column_and_keeps_its_reminders(
    make_container: Make, clock: FakeClock
) -> None:
    probe = make_container()
    settings = probe.settings
    engine = create_engine(settings.resolved_database_url(), settings.sqlite_path)
    try:
        first_release_schema(engine, [HISTORY])
        deadline = clock.now + timedelta(hours=72)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO reminder_deadlines (interview_id, what, version, status, "
                    "due_at, expires_at, recipient_id, job_id, client_id, freelancer_id, "
                    "updated_at) VALUES (:id, 'invitation', 1, 'pending', :due, :exp, 'f-1', "
                    "'job-old', 'c-1', 'f-1', :now)"
                ),
                {
                    "id": "00000000-0000-0000-0000-00000000000a",
                    "due": (deadline - timedelta(hours=24)).replace(tzinfo=None),
                    "exp": deadline.replace(tzinfo=None),
                    "now": clock.now.replace(tzinfo=None),
                },
            )
        names = {c["name"] for c in sa.inspect(engine).get_columns("reminder_deadlines")}
        assert "duration_minutes" not in names
        assert not sa.inspect(engine).has_table("notification_preferences")
    finally:
        engine.dispose()

    c = make_container()  # the new release starts on it
    inspector = sa.inspect(c.engine())
    assert "duration_minutes" in {c["name"] for c in inspector.get_columns("reminder_deadlines")}
    assert inspector.has_table("notification_preferences")
    assert not c.migrate().changed, "a second start changes nothing"

    c.preferences().set_time_zone("f-1", "Europe/Berlin")
    clock.now = deadline - timedelta(hours=23)
    assert c.reminder_worker().run_once() == 1
    (old,) = [n for n in inbox_of(c, "f-1") if n["job_id"] == "job-old"]
    assert old["message"].endswith("It expires on Saturday 28 November 2026 at 13:00 CET.")

    interview = Interview("job-new")
    meeting = clock.now + timedelta(days=1)
    with c.engine().begin() as conn:
        c.reminder_index.apply(
            conn,
            [
                interview.event(
                    "interview.started",
                    "client",
                    {"scheduled_at": meeting.isoformat(), "duration_minutes": 90},
                )
            ],
        )
    with c.engine().connect() as conn:
        row = conn.execute(
            sa.select(reminder_deadlines).where(reminder_deadlines.c.what == "meeting")
        ).one()
    assert (row.status, row.duration_minutes) == ("pending", 90)
