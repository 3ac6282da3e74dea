"""The deadline scheduler's metrics come from one collector per registry, read at
scrape time, under the names the alerts and the README use."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.interviews.bootstrap import InterviewsContainer
from services.interviews.scheduler import Scheduler
from services.interviews.settings import InterviewsSettings
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.unit


@pytest.fixture
def container(tmp_path: Path) -> InterviewsContainer:
    return InterviewsContainer(
        InterviewsSettings(database_url=None, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )


def test_a_scheduler_given_a_registry_reports_every_metric_there(
    container: InterviewsContainer,
) -> None:
    registry = CollectorRegistry()
    scheduler = Scheduler(container, registry=registry)
    scheduler.is_leader = True
    scheduler.expired_total = 4
    scheduler.failed_total, scheduler.tick_failures_total = 2, 1
    scheduler.failed_by_stage.update({"index": 1, "expire": 2})
    scheduler.isolated_count = 1

    assert sorted(family.name for family in registry.collect()) == [
        "scheduler_expired",
        "scheduler_failed_deadlines",
        "scheduler_failures",
        "scheduler_isolated_deadlines",
        "scheduler_leader",
    ]
    value = registry.get_sample_value
    assert value("scheduler_leader") == 1
    assert value("scheduler_expired_total") == 4
    assert value("scheduler_failures_total") == 3
    assert value("scheduler_failed_deadlines_total", {"stage": "index"}) == 1
    assert value("scheduler_failed_deadlines_total", {"stage": "expire"}) == 2
    assert value("scheduler_isolated_deadlines") == 1


def test_schedulers_sharing_a_registry_are_added_up_once(container: InterviewsContainer) -> None:
    registry = CollectorRegistry()
    standby, leader = (Scheduler(container, registry=registry) for _ in range(2))
    leader.is_leader = True
    standby.failed_by_stage["expire"] += 1
    leader.failed_by_stage["expire"] += 2
    standby.isolated_count, standby.isolated_counted_at = 5, 1.0
    leader.isolated_count, leader.isolated_counted_at = 2, 2.0  # counted last

    names = [family.name for family in registry.collect()]

    assert len(names) == len(set(names)) == 5
    assert registry.get_sample_value("scheduler_leader") == 1
    assert registry.get_sample_value("scheduler_failed_deadlines_total", {"stage": "expire"}) == 3
    assert registry.get_sample_value("scheduler_isolated_deadlines") == 2
