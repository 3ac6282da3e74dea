"""Two consumer processes of one group share a topic's partitions and write the
same views and inbox as one process alone (what ``make bench`` checks beside its
scale-out figures, here on a small topic)."""

from __future__ import annotations

import uuid

import pytest

from bench.common import delete_topics
from bench.projections import _envelopes, _fill_topic
from bench.scale_out import differences, drain
from tests.conftest import require_postgres

pytestmark = pytest.mark.integration

EVENTS = 3000


@pytest.mark.parametrize("service", ["projections", "notifications"])
def test_two_processes_of_one_group_write_what_one_process_writes(
    service: str, kafka_bootstrap: str
) -> None:
    admin_url = require_postgres()
    topic = f"test-scale-out-{uuid.uuid4().hex[:8]}"
    _fill_topic(kafka_bootstrap, topic, _envelopes(EVENTS))
    try:
        _, alone = drain(service, admin_url, kafka_bootstrap, topic, EVENTS, 1)
        _, together = drain(service, admin_url, kafka_bootstrap, topic, EVENTS, 2)
    finally:
        delete_topics(kafka_bootstrap, [topic])
    assert differences(alone, together) == []
    written = {name: len(rows) for name, rows in alone.items()}
    if service == "projections":
        assert written["interviews"] == EVENTS // 5 and written["timeline"] == EVENTS
    else:
        assert written["notifications"] == EVENTS * 6 // 5
