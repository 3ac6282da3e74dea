"""The projections end to end on real Kafka and PostgreSQL, over HTTP.

500 scripted interviews go through every transition as HTTP commands to the
interviews service; the relay publishes the event store's log to a topic; the
projections consumer runs as its own process (killed with SIGKILL mid-stream
and restarted); the query API is read over HTTP. Every view must equal an
independent fold of the event store's events: after the kill, after a
rebuild from the topic, and on a second topic carrying the same events
duplicated and reordered across interviews. A client that reads with the
``position`` of its command (``min_position``) always sees its own write.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.privacy import KeyService, reveal
from services.contracts import EventEnvelope
from services.interviews.bootstrap import InterviewsContainer, RelayProcess
from services.interviews.bootstrap import create_app as create_interviews_app
from services.interviews.feed import InterviewEventFeed
from services.interviews.settings import InterviewsSettings, RelaySettings
from services.projections.bootstrap import ProjectionsContainer, consumer_spec
from services.projections.bootstrap import create_app as create_projections_app
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET, create_database, drop_database, require_postgres
from tests.e2e.servers import serving
from tests.integration.eventflow import topic_cleanup, unique_topic
from tests.jobs import register_job
from tests.support.projections_reference import (
    Script,
    assert_views_equal_reference,
    scripts,
    shuffled_across_interviews,
)
from tests.support.waiting import holds_within, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
Token = Callable[[str, str], dict[str, str]]


@pytest.fixture
def views_db() -> Iterator[Callable[[], str]]:
    """Fresh PostgreSQL databases for projections (each service owns its database)."""
    admin = require_postgres()
    names: list[str] = []

    def make() -> str:
        name = f"pv_{uuid.uuid4().hex[:10]}"
        names.append(name)
        return create_database(admin, name)

    yield make
    for name in names:
        drop_database(admin, name)


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    yield from topic_cleanup(kafka_bootstrap, unique_topic("projections"))


# The steps ``Commands`` plays over HTTP. Closing a job (which cancels every open
# interview of the job, not one script's) is folded by the reference but not
# played here.
HTTP_STEPS = frozenset(
    {
        "accept",
        "decline",
        "start",
        "reschedule",
        "offer",
        "accept_offer",
        "decline_offer",
        "withdraw_offer",
        "cancel_client",
        "cancel_freelancer",
        "expire_invitation",
        "expire_offer",
    }
)


class Commands:
    """Plays scripts as HTTP commands; remembers each command's answer."""

    def __init__(self, api: TestClient, token: Token, container: InterviewsContainer) -> None:
        self.api = api
        self.token = token
        self.container = container
        self.answers: list[tuple[Script, dict[str, Any], str]] = []

    def post(
        self, script: Script, path: str, role: str, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        who = script.client_id if role == "client" else script.freelancer_id
        response = self.api.post(path, json=body, headers=self.token(who, role))
        assert response.status_code in (200, 201), (path, response.text)
        return response.json()  # type: ignore[no-any-return]

    def step(self, script: Script, step: str) -> None:
        if step == "invite":
            register_job(self.api, script.job_id, script.client_id)
            answer = self.post(
                script,
                "/interviews",
                "client",
                {"job_id": script.job_id, "freelancer_id": script.freelancer_id, "message": "hi"},
            )
            script.interview_id = uuid.UUID(answer["id"])
        else:
            base = f"/interviews/{script.interview_id}"
            if step.startswith("expire"):
                later = datetime.now(UTC) + timedelta(days=30)
                assert script.interview_id is not None
                answer = self.container.interviews().expire(script.interview_id, at=later).as_dict()
            elif step == "accept":
                answer = self.post(script, f"{base}/accept", "freelancer", None)
            elif step == "decline":
                answer = self.post(script, f"{base}/decline", "freelancer", {"reason": "busy"})
            elif step == "start":
                answer = self.post(script, f"{base}/start", "client", {})
            elif step == "reschedule":
                # A new time every time (the same time and length again is refused).
                later = datetime.now(UTC) + timedelta(days=1, minutes=len(self.answers))
                body = {
                    "scheduled_at": later.isoformat(),
                    "duration_minutes": random.choice([15, 30, 90]),
                    "reason": random.choice(["a clash", None]),
                }
                who = random.choice(["client", "freelancer"])
                answer = self.post(script, f"{base}/reschedule", who, body)
            elif step == "offer":
                amount = random.choice(["500", "1200.50", "3000"])
                terms = {"amount": amount, "currency": "EUR", "rate_type": "fixed"}
                answer = self.post(script, f"{base}/offer", "client", terms)
            elif step == "accept_offer":
                answer = self.post(script, f"{base}/offer/accept", "freelancer", None)
            elif step == "decline_offer":
                answer = self.post(script, f"{base}/offer/decline", "freelancer", {"reason": "low"})
            elif step == "withdraw_offer":
                body = random.choice([{}, {"reason": "budget frozen"}])
                answer = self.post(script, f"{base}/offer/withdraw", "client", body)
            else:
                role = "client" if step == "cancel_client" else "freelancer"
                reason = random.choice(["budget cut", "position filled", "no show"])
                answer = self.post(script, f"{base}/cancel", role, {"reason": reason})
        self.answers.append((script, answer, step))

    def play(self, plays: list[Script], between: Callable[[int], None] | None = None) -> None:
        """Round by round, every interview's next step in a random order."""
        rng = random.Random(17)
        queues = {s.index: ["invite", *s.steps] for s in plays}
        by_index = {s.index: s for s in plays}
        round_no = 0
        while queues:
            order = list(queues)
            rng.shuffle(order)
            for index in order:
                self.step(by_index[index], queues[index].pop(0))
                if not queues[index]:
                    del queues[index]
            round_no += 1
            if between is not None:
                between(round_no)


def opened(events: list[EventEnvelope], keys: KeyService) -> list[EventEnvelope]:
    """The events with their sealed texts in clear: what the views show."""
    return [e.model_copy(update={"data": reveal(e.type, e.data, keys)[0]}) for e in events]


def store_events(container: InterviewsContainer) -> list[EventEnvelope]:
    feed = InterviewEventFeed(container.interviews())
    out: list[EventEnvelope] = []
    while batch := feed.read(out[-1].position if out else 0, 1000):
        out.extend(batch)
    return out


def start_consumer(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.projections.entrypoints.worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_position(
    api: TestClient, headers: dict[str, str], position: int, timeout: float
) -> None:
    """Until the event at ``position`` is in the views (with Kafka partitions,
    earlier events of other interviews may still be on their way)."""

    def applied() -> bool:
        response = api.get("/views/stats", params={"min_position": position}, headers=headers)
        return response.status_code == 200

    assert wait_until(applied, timeout, interval=0.2), f"views never reached {position}"


def wait_for_views(api: TestClient, token: Token, events: list[EventEnvelope]) -> None:
    """Until every view equals the fold of ``events`` (then asserts it once more)."""

    def equal() -> bool:
        try:
            assert_views_equal_reference(api, token, events, details=0)
        except AssertionError:
            return False
        return True

    holds_within(equal, 60, 0.5, what="the views to equal the reference", ignoring=())
    assert_views_equal_reference(api, token, events, details=60)


def test_views_equal_the_fold_of_the_event_store_through_kafka_kills_rebuilds_and_reordering(
    postgres_url: str,
    views_db: Callable[[], str],
    tmp_path: Path,
    kafka_bootstrap: str,
    topic: str,
    token: Token,
) -> None:
    interviews = InterviewsContainer(
        InterviewsSettings(database_url=postgres_url, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )
    relay = RelayProcess(
        interviews.interviews(),
        RelaySettings(
            database_url=postgres_url,
            data_dir=tmp_path,
            kafka_bootstrap_servers=kafka_bootstrap,
            EVENTS_TOPIC=topic,
        ),
    ).start()
    group = f"projections-{uuid.uuid4().hex[:8]}"
    views_url = views_db()
    settings = ProjectionsSettings(
        database_url=views_url,
        projections_database_url=views_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        EVENTS_TOPIC=topic,
        data_dir=tmp_path,
        auth_secret=TEST_SECRET,
        projections_consumer_group=group,
        min_position_timeout_s=15.0,  # bounded; generous for a busy CI box
    )
    # The consumer process opens the events' sealed texts through the interviews
    # service's internal key API (KEY_SERVICE_URL), served here on a real port.
    keys_server = contextlib.ExitStack()
    key_service_url = keys_server.enter_context(serving(create_interviews_app(interviews)))
    env = {
        **os.environ,
        "KEY_SERVICE_URL": key_service_url,
        "DATABASE_URL": views_url,
        "PROJECTIONS_DATABASE_URL": views_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "EVENTS_TOPIC": topic,
        "AUTH_SECRET": TEST_SECRET,
        "DATA_DIR": str(tmp_path),
        "PROJECTIONS_CONSUMER_GROUP": group,
        "LOG_LEVEL": "WARNING",
    }
    views = ProjectionsContainer(settings, key_service=interviews.key_store())
    consumer = start_consumer(env)
    auditor = token("audit-1", "auditor")
    try:
        with (
            TestClient(create_interviews_app(interviews)) as commands_api,
            TestClient(create_projections_app(views)) as api,
        ):
            commands = Commands(commands_api, token, interviews)
            plays = scripts(500, seed=21, steps=HTTP_STEPS)
            first, repeats = plays[:450], plays[450:]
            extra = Script(500, "job-x", "client-x", "fl-x", ())

            def kill_mid_stream(round_no: int) -> None:
                nonlocal consumer
                if round_no != 2:
                    return
                # The consumer is applying: kill it without warning, carry on, restart it.
                reached = commands.answers[len(commands.answers) // 2][1]["position"]
                wait_for_position(api, auditor, reached, 60)
                consumer.send_signal(signal.SIGKILL)
                assert consumer.wait(10) == -signal.SIGKILL
                commands.step(extra, "invite")  # a write while nobody consumes
                consumer = start_consumer(env)

            commands.play(first, between=kill_mid_stream)

            # Read-your-writes: each command's position, asked of the views at once.
            sampled = 0
            for script in repeats:
                for step in ["invite", *script.steps]:
                    commands.step(script, step)
                    _, answer, _ = commands.answers[-1]
                    if script.index % 2 == 0:
                        who = (script.client_id, "client")
                        view = api.get(
                            f"/views/interviews/{answer['id']}",
                            params={"min_position": answer["position"]},
                            headers=token(*who),
                        )
                        assert view.status_code == 200, view.text
                        assert view.json()["version"] >= answer["version"]
                        assert view.json()["status"] == answer["status"]
                        sampled += 1
            assert sampled > 50

            events = store_events(interviews)
            assert len({e.interview_id for e in events}) == 501
            assert {e.type for e in events} == {
                "interview.invited", "interview.accepted", "interview.declined",
                "interview.started", "interview.offer_extended", "interview.offer_accepted",
                "interview.offer_declined", "interview.cancelled", "interview.expired",
                "interview.rescheduled", "interview.offer_withdrawn",
            }  # fmt: skip
            plain = opened(events, interviews.key_store())
            wait_for_views(api, token, plain)
            relay.stop()  # everything is published (the views have it all)

            # Rebuild from the topic while the consumer runs and the API answers.
            report = views.rebuild()
            assert report.generation == 2 and report.events >= len(events)
            assert api.get("/views/stats", headers=auditor).headers["X-View-Generation"] == "2"
            assert_views_equal_reference(api, token, plain, details=40)

            # The same events duplicated and reordered across interviews, on another topic.
            reordered_topic = unique_topic("projections-mixed")
            try:
                publish(kafka_bootstrap, reordered_topic, events)
                other_url = views_db()
                other = ProjectionsContainer(
                    settings.model_copy(
                        update={
                            "database_url": other_url,
                            "projections_database_url": other_url,
                            "topic": reordered_topic,
                            "projections_consumer_group": group + "-mixed",
                        }
                    ),
                    key_service=interviews.key_store(),
                )
                from services.common.runner.kafka_source import kafka_runner

                runner = kafka_runner(
                    consumer_spec(other),
                    kafka_bootstrap,
                    reordered_topic,
                    layout=other.settings.topic_layout(),
                    poll_timeout=0.2,
                ).start()
                try:
                    with TestClient(create_projections_app(other)) as other_api:
                        wait_for_views(other_api, token, plain)
                finally:
                    runner.stop()
                    runner.join(15)
                    other.close()
            finally:
                from tests.integration.eventflow import delete_topics

                delete_topics(kafka_bootstrap, reordered_topic)
    finally:
        if consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
            try:
                consumer.wait(20)
            except subprocess.TimeoutExpired:
                consumer.kill()
                consumer.wait(5)
        relay.stop()
        views.close()
        keys_server.close()
        interviews.close()


def publish(bootstrap: str, topic: str, events: list[EventEnvelope]) -> None:
    """Every event once or twice, interviews interleaved differently than in the log."""
    from kafka import KafkaProducer

    from services.common.kafka import ensure_topics

    ensure_topics(bootstrap, {topic: (6, {})})
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), linger_ms=5)
    try:
        for e in shuffled_across_interviews(events, seed=5, duplicate=0.3):
            producer.send(topic, key=str(e.interview_id).encode(), value=e.to_bytes())
        producer.flush(30)
    finally:
        producer.close(5)
