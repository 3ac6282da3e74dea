"""The relay announces every erasure on ``privacy.erasures`` (key = the subject's
id), from the event store's log like the interview events: once recorded, an
erasure is published even if the relay was not running when it happened."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.contracts.envelope import ERASURES_TOPIC
from services.interviews.adapters.tables import relay_position
from services.interviews.bootstrap import InterviewsContainer, RelayProcess
from services.interviews.domain import Actor, CommandContext
from services.interviews.erasures import ErasureService
from services.interviews.settings import InterviewsSettings, RelaySettings
from tests.conftest import TEST_SECRET
from tests.jobs import ensure_job
from tests.support.waiting import wait_until

from .eventflow import read_topic, topic_cleanup, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

WORDS = "Could we talk on Thursday about the data pipeline?"


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    yield from topic_cleanup(kafka_bootstrap, unique_topic("erasures"))


def test_every_recorded_erasure_is_announced_keyed_by_its_subject(
    database_url: str | None, tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    container = InterviewsContainer(
        InterviewsSettings(
            database_url=database_url,
            data_dir=tmp_path,
            auth_secret=TEST_SECRET,
            erasure_services="",
        )
    )
    app = container.interviews()
    erasures = ErasureService(app, container.key_store())
    admin = CommandContext(Actor("admin-1", "admin"), datetime.now(UTC), "corr", "cause")
    subjects = [f"subject-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    # Recorded before the relay runs: the log, not the request, is what it follows.
    before = erasures.request(admin, subjects[0], "asked in writing")
    settings = RelaySettings(
        database_url=database_url,
        data_dir=tmp_path,
        kafka_bootstrap_servers=kafka_bootstrap,
        EVENTS_TOPIC=topic,
    )
    relay = RelayProcess(app, settings).start()
    try:
        client = CommandContext(Actor("client-k", "client"), datetime.now(UTC), "c", "r")
        ensure_job(app, "job-k", "client-k", client.at)
        app.invite(client, job_id="job-k", freelancer_id="f-k", message=WORDS)
        after = erasures.request(admin, subjects[1], "asked in writing")
        ours = {before.id, after.id}

        def announced() -> list[dict[str, str]]:
            messages = read_topic(kafka_bootstrap, ERASURES_TOPIC, timeout=3)
            found = [(m, json.loads(m.value)) for m in messages]
            return [v | {"key": m.key.decode()} for m, v in found if v.get("id") in ours]

        assert wait_until(lambda: len(announced()) >= 2, 60, interval=0.5)
        got = sorted(announced(), key=lambda v: v["subject_id"])
        assert [v["id"] for v in got] == [
            r.id for r in sorted((before, after), key=lambda r: r.subject_id)
        ]
        for value in got:
            assert value["type"] == "subject.erased"
            assert value["key"] == value["subject_id"]
            assert set(value) == {"id", "type", "subject_id", "occurred_at", "key"}
            assert datetime.fromisoformat(value["occurred_at"]).tzinfo is not None
        head = app.max_position()

        def checkpoint() -> int:
            with relay.engine.connect() as conn:
                value = conn.execute(
                    sa.select(relay_position.c.position).where(
                        relay_position.c.topic == ERASURES_TOPIC
                    )
                ).scalar()
            return int(value or 0)

        # The interview event went out sealed: the topic never holds the words.
        (published,) = read_topic(kafka_bootstrap, topic, expect=1)
        assert WORDS.encode() not in published.value
        assert json.loads(published.value)["data"]["message"]["alg"] == "A256GCM"
        # Its own position, moved past the erasures once the broker acknowledged them.
        assert wait_until(lambda: checkpoint() >= head, 30, interval=0.2)
    finally:
        relay.stop()
        container.close()
