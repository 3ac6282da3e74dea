"""The summary line's ``poison accepted``: accepted commands whose events a worker
could not take, counted from the consumers' parked events, the dead-letter topic
and the scheduler's isolated deadlines (what ``check_everything`` adds up)."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services.common.db import create_engine
from services.common.migrations import migrate
from services.common.runner.parked import park as park_event
from services.common.runner.tables import RUNNER_HISTORY
from services.contracts import EventEnvelope
from services.interviews.migrations import HISTORY as INTERVIEWS_HISTORY
from services.interviews.scheduler import DeadlineIndex

from .checks import Findings, check_poison_accepted
from .harness import Ack, Tally, fresh_databases, unique_name

pytestmark = [pytest.mark.reliability, pytest.mark.kafka]


def envelope(interview_id: str, version: int, position: int) -> EventEnvelope:
    return EventEnvelope.model_validate(
        {
            "id": str(uuid.uuid4()),
            "type": "interview.accepted",
            "schema_version": 1,
            "interview_id": interview_id,
            "version": version,
            "position": position,
            "occurred_at": "2026-11-25T12:00:00Z",
            "actor": {"id": "f-1", "role": "freelancer"},
            "job_id": "job-1",
            "client_id": "c-1",
            "freelancer_id": "f-1",
            "correlation_id": "c",
            "causation_id": "c",
            "data": {},
        }
    )


def park(url: str, group: str, event: EventEnvelope) -> None:
    engine = create_engine(url, Path("unused.sqlite"))
    migrate(engine, [RUNNER_HISTORY])
    with engine.begin() as conn:
        park_event(conn, group, event, where=None, error="RuntimeError: handler bug", attempts=3)
    engine.dispose()


def test_an_accepted_command_whose_event_was_parked_counts_as_poison_accepted(
    kafka_bootstrap: str,
) -> None:
    parked_one, healthy, unacked = (str(uuid.uuid4()) for _ in range(3))
    store = [envelope(parked_one, 2, 10), envelope(healthy, 2, 11), envelope(unacked, 2, 12)]
    acks = [Ack("accept", i, 2, p, "accepted", 0.0) for i, p in ((parked_one, 10), (healthy, 11))]
    with fresh_databases() as databases:
        platform: Any = SimpleNamespace(
            views_db=databases("views"),
            notifications_db=databases("notifications"),
            interviews_db=databases("interviews"),
            projections_group="projections-t",
            notifications_group="notifications-t",
            bootstrap=kafka_bootstrap,
            topic=unique_name("poison-accepted"),
        )
        found = Findings()
        check_poison_accepted(platform, store, acks, found)
        assert found.poison_accepted == 0  # nothing parked, no table even

        park(platform.views_db, "projections-t", store[0])
        park(platform.notifications_db, "notifications-t", store[0])
        park(platform.views_db, "projections-t", store[2])  # not an acknowledged command
        engine = create_engine(platform.interviews_db, Path("unused.sqlite"))
        migrate(engine, [INTERVIEWS_HISTORY])  # the scheduler's tables, as a service makes them
        DeadlineIndex(engine).create()
        engine.dispose()
        found = Findings()
        check_poison_accepted(platform, store, acks, found)

    assert found.poison_accepted == 1
    assert "was parked, dead-lettered or isolated" in found.examples[0]
    with pytest.raises(AssertionError, match="poison accepted 1"):
        found.assert_clean()


def test_the_summary_line_reports_poison_accepted() -> None:
    tally = Tally()
    assert tally.line().endswith(", poison accepted 0")
    tally.add(poison_accepted=2)
    assert tally.line().endswith(", poison accepted 2")
