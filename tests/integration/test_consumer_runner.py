"""The consumer runner: exactly-once effects, poison to the DLQ, parking, positions.

Kafka tests run against the real broker (``make test`` starts it); the
embedded ones follow a real SQLite event store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from services.cli import app as cli_app
from services.common.db import SMALL_BATCH, create_engine
from services.common.kafka import TopicLayout, ensure_topics
from services.common.migrations import migrate
from services.common.runner import loop
from services.common.runner.embedded import EmbeddedSource, SharedLog
from services.common.runner.kafka_source import KafkaSource
from services.common.runner.loop import ConsumerRunner
from services.common.runner.parked import list_parked, prune_processed
from services.common.runner.source import SourceRecord
from services.common.runner.tables import (
    RUNNER_HISTORY,
    consumer_offsets,
    migrate_consumer_database,
    processed_events,
)
from services.contracts import SCHEMA_VERSIONS, EventEnvelope
from services.interviews.adapters.envelope import event_id
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.feed import InterviewEventFeed, wake_on_interview_events
from services.interviews.settings import InterviewsSettings
from services.platform import embedded_feed
from tests.conftest import TEST_SECRET
from tests.support.waiting import wait_until

from .eventflow import (
    Workload,
    check_exactly_once_in_order,
    effects,
    expected_events,
    read_topic,
    recording_spec,
    set_failing,
    topic_cleanup,
    unique_topic,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STEPS = [
    ("interview.invited", {"message": "hi", "expires_at": None}),
    ("interview.accepted", {}),
    ("interview.started", {"scheduled_at": None}),
    (
        "interview.offer_extended",
        {
            "amount": "900",
            "currency": "USD",
            "rate_type": "hourly",
            "start_date": None,
            "message": None,
            "expires_at": None,
        },
    ),
    ("interview.offer_accepted", {}),
]


def history(interview_id: UUID, first_position: int, length: int = 5) -> list[EventEnvelope]:
    """A well-formed event history of one interview, as the relay would publish it."""
    return [
        EventEnvelope(
            id=event_id(interview_id, version),
            type=event_type,  # type: ignore[arg-type]
            schema_version=SCHEMA_VERSIONS[event_type],
            interview_id=interview_id,
            version=version,
            position=first_position + version,
            occurred_at=datetime.now(UTC),
            actor={"id": "c1", "role": "client"},  # type: ignore[arg-type]
            job_id="job-1",
            client_id="c1",
            freelancer_id="f1",
            correlation_id="r",
            causation_id="r",
            data=data,
        )
        for version, (event_type, data) in enumerate(STEPS[:length], start=1)
    ]


def expected_of(events: list[EventEnvelope]) -> dict[str, tuple[str, int]]:
    return {str(e.id): (str(e.interview_id), e.version) for e in events}


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush(30)
    producer.close()


def as_messages(events: list[EventEnvelope]) -> list[tuple[bytes | None, bytes]]:
    return [(str(e.interview_id).encode(), e.to_bytes()) for e in events]


@pytest.fixture
def consumer_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(None, tmp_path / "consumer.sqlite")
    yield engine
    engine.dispose()


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    name = unique_topic("runner")
    ensure_topics(kafka_bootstrap, {name: (3, {})})
    yield from topic_cleanup(kafka_bootstrap, name)


def kafka_runner(spec, bootstrap: str, topic: str, **options) -> ConsumerRunner:  # type: ignore[no-untyped-def]
    options.setdefault("retry_backoff", 0.05)
    return ConsumerRunner(spec, KafkaSource(bootstrap, topic, layout=TopicLayout(3, -1)), **options)


def stop(*runners: ConsumerRunner) -> None:
    for runner in runners:
        runner.stop()
    for runner in runners:
        runner.join(15)


# ------------------------------------------------------------------ embedded (SQLite)


def test_embedded_consumer_follows_an_sqlite_store_once_in_order_without_busy_polling(
    tmp_path: Path, consumer_engine: sa.Engine
) -> None:
    container = InterviewsContainer(
        InterviewsSettings(database_url=None, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )
    app = container.interviews()
    read, wake = embedded_feed(app)
    naps: list[float] = []  # how long the source let itself sleep each time it found nothing
    nap = wake.wait

    def recorded_nap(timeout: float | None = None) -> bool:
        naps.append(float("inf") if timeout is None else timeout)
        return nap(timeout)

    wake.wait = recorded_nap  # type: ignore[method-assign]
    source = EmbeddedSource(read, wake, poll_seconds=30.0)  # only the wake-up can be quick
    runner = ConsumerRunner(recording_spec(consumer_engine, "embedded"), source).start()
    try:
        assert runner.wait_opened(10)
        Workload(app).run(300)
        expected = expected_events(app)
        assert wait_until(lambda: len(effects(consumer_engine, "embedded")) >= len(expected), 60)
        check_exactly_once_in_order(effects(consumer_engine, "embedded"), expected)

        # Idle, it sleeps on the wake-up flag for its whole poll interval: no busy loop.
        wait_until(lambda: naps, what="the idle source to sleep on its wake-up flag")
        assert min(naps) >= 30.0, "an idle embedded consumer must not poll in a loop"

        started = time.monotonic()
        Workload(app, counter=10_000).step()
        assert wait_until(
            lambda: len(effects(consumer_engine, "embedded")) == len(expected) + 1, 10, 0.01
        )
        assert time.monotonic() - started < 3.0, "woken by the commit, not by the 30 s poll"
    finally:
        stop(runner)

    # A new runner resumes from the stored position: nothing is applied twice.
    Workload(app, counter=20_000).run(40)
    read, wake = embedded_feed(app)
    again = ConsumerRunner(
        recording_spec(consumer_engine, "embedded"), EmbeddedSource(read, wake)
    ).start()
    try:
        expected = expected_events(app)
        assert wait_until(lambda: len(effects(consumer_engine, "embedded")) >= len(expected), 60)
        check_exactly_once_in_order(effects(consumer_engine, "embedded"), expected)
        assert again.stats.duplicates == 0
    finally:
        stop(again)
        container.close()


def test_two_embedded_consumers_on_one_reading_of_the_log_each_apply_every_event_once(
    tmp_path: Path, consumer_engine: sa.Engine
) -> None:
    container = InterviewsContainer(
        InterviewsSettings(database_url=None, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )
    app = container.interviews()
    feed = InterviewEventFeed(app)
    converted: list[int] = []

    def read_from_head(after: int, limit: int) -> tuple[int, list[EventEnvelope]]:
        head, envelopes = feed.read_from_head(after, limit)
        converted.extend(e.position for e in envelopes)
        return head, envelopes

    log = SharedLog(read_from_head)
    runners = [
        ConsumerRunner(
            recording_spec(consumer_engine, group),
            EmbeddedSource(log.read, wake_on_interview_events(app), max_position=lambda: log.head),
        ).start()
        for group in ("projections", "notifications")
    ]
    try:
        Workload(app).run(300)
        expected = expected_events(app)
        for group in ("projections", "notifications"):
            assert wait_until(lambda g=group: len(effects(consumer_engine, g)) >= len(expected), 60)
            check_exactly_once_in_order(effects(consumer_engine, group), expected)
        # One conversion per event for both consumers, and their lag read from it.
        assert sorted(converted) == sorted(e.position for e in feed.read(0, 10_000))
        assert [r.source.update_lag(r.metrics, r.group) for r in runners] == [0, 0]
    finally:
        stop(*runners)
        container.close()


# ------------------------------------------------------------------ Kafka


@pytest.mark.kafka
def test_each_event_takes_effect_once_even_when_kafka_delivers_it_twice(
    kafka_bootstrap: str, topic: str, consumer_engine: sa.Engine
) -> None:
    events = [e for _ in range(4) for e in history(uuid4(), 0)]
    produce(kafka_bootstrap, topic, as_messages(events) + as_messages(events[:7]))
    runner = kafka_runner(recording_spec(consumer_engine, "dupes"), kafka_bootstrap, topic).start()
    try:
        assert wait_until(lambda: runner.stats.processed + runner.stats.duplicates >= 27, 60)
        check_exactly_once_in_order(effects(consumer_engine, "dupes"), expected_of(events))
        assert runner.stats.processed == 20 and runner.stats.duplicates >= 7
    finally:
        stop(runner)


@pytest.mark.kafka
def test_poison_messages_go_to_the_dlq_with_their_bytes_and_the_consumer_goes_on(
    kafka_bootstrap: str, topic: str, consumer_engine: sa.Engine
) -> None:
    good = history(uuid4(), 0)
    valid = json.loads(good[1].to_bytes())
    poison = [
        b"\xff not json",
        json.dumps(valid | {"type": "interview.teleported"}).encode(),
        json.dumps(valid | {"schema_version": 99}).encode(),
        json.dumps(valid | {"version": "two"}).encode(),
        json.dumps(valid | {"type": "interview.expired", "data": {"what": "lunch"}}).encode(),
    ]
    key = str(good[0].interview_id).encode()
    messages = as_messages(good[:2]) + [(key, p) for p in poison] + as_messages(good[2:])
    produce(kafka_bootstrap, topic, messages)
    runner = kafka_runner(recording_spec(consumer_engine, "poison"), kafka_bootstrap, topic).start()
    try:
        assert wait_until(lambda: runner.stats.processed >= len(good), 60)
        check_exactly_once_in_order(effects(consumer_engine, "poison"), expected_of(good))
        dead = read_topic(kafka_bootstrap, f"{topic}.dlq", expect=len(poison))
        assert [m.value for m in dead] == poison
        headers = dict(dead[0].headers)
        assert headers["error"].startswith(b"not JSON")
        assert headers["source_topic"] == topic.encode()
        assert headers["group"] == b"poison"
        assert {"source_partition", "source_offset"} <= set(headers)
        assert b"schema_version 99" in dict(dead[2].headers)["error"]
        assert runner.stats.dead_letters == len(poison)
    finally:
        stop(runner)


@pytest.mark.kafka
def test_a_failing_handler_parks_its_interview_others_go_on_and_dlq_resolves_it(
    kafka_bootstrap: str, topic: str, consumer_engine: sa.Engine, tmp_path: Path
) -> None:
    group = "parking"
    broken, healthy, doomed = uuid4(), uuid4(), uuid4()
    set_failing(consumer_engine, group, str(broken), True)
    set_failing(consumer_engine, group, str(doomed), True)
    first = history(broken, 0, 2) + history(healthy, 100, 2) + history(doomed, 200, 3)
    later = history(broken, 0, 4)[2:] + history(healthy, 100, 4)[2:]
    produce(kafka_bootstrap, topic, as_messages(first))
    runner = kafka_runner(recording_spec(consumer_engine, group), kafka_bootstrap, topic).start()
    try:
        assert wait_until(lambda: runner.stats.parked >= 5, 60)
        # The bug is fixed for one interview, but its later events still wait in order.
        set_failing(consumer_engine, group, str(broken), False)
        produce(kafka_bootstrap, topic, as_messages(later))
        assert wait_until(lambda: runner.stats.parked >= 7 and runner.stats.processed >= 4, 60)
        applied = effects(consumer_engine, group)
        assert {r.interview_id for r in applied} == {str(healthy)}
        assert [r.version for r in applied] == [1, 2, 3, 4]

        parked = list_parked(consumer_engine, group)
        assert [(p.interview_id, p.version) for p in parked if p.interview_id == str(broken)] == [
            (str(broken), v) for v in (1, 2, 3, 4)
        ]
        assert "handler bug" in parked[0].error and parked[0].attempts == 3
        assert "parked behind" in parked[1].error
    finally:
        stop(runner)

    cli = CliRunner()
    env = {
        "EVENTFLOW_DB_URL": "",
        "EVENTFLOW_SQLITE": str(tmp_path / "consumer.sqlite"),
        "EVENTFLOW_GROUP": group,
    }
    spec = ["--group", group, "--spec", "tests.integration.eventflow:spec_from_env"]
    listed = cli.invoke(cli_app, ["dlq", "list", *spec], env=env)
    assert listed.exit_code == 0, listed.output
    assert str(broken) in listed.output and "7 parked" in listed.output

    retried = cli.invoke(cli_app, ["dlq", "retry", *spec], env=env)
    assert retried.exit_code == 0, retried.output
    assert "applied 4" in retried.output and "still parked: 1 interview" in retried.output
    skipped = cli.invoke(cli_app, ["dlq", "skip", *spec, "--interview", str(doomed)], env=env)
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 3" in skipped.output

    assert list_parked(consumer_engine, group) == []
    check_exactly_once_in_order(
        effects(consumer_engine, group),
        expected_of(history(broken, 0, 4) + history(healthy, 100, 4)),
    )
    # A redelivery after all this changes nothing.
    with consumer_engine.begin() as conn:
        conn.execute(consumer_offsets.delete())
    again = kafka_runner(recording_spec(consumer_engine, group), kafka_bootstrap, topic).start()
    try:
        assert wait_until(lambda: again.stats.duplicates >= len(first + later), 60)
        assert len(effects(consumer_engine, group)) == 8
    finally:
        stop(again)


@pytest.mark.kafka
def test_offsets_live_in_the_consumer_database_across_restarts_and_rebalances(
    kafka_bootstrap: str, topic: str, consumer_engine: sa.Engine
) -> None:
    group = "rebalance"
    batch1 = [e for i in range(6) for e in history(uuid4(), 1000 * i)]
    produce(kafka_bootstrap, topic, as_messages(batch1))
    first = kafka_runner(recording_spec(consumer_engine, group), kafka_bootstrap, topic).start()
    try:
        assert wait_until(lambda: first.stats.processed >= len(batch1), 60)
    finally:
        stop(first)
    with consumer_engine.connect() as conn:
        stored = sum(
            conn.execute(
                sa.select(consumer_offsets.c.next_offset).where(consumer_offsets.c.group == group)
            ).scalars()
        )
    assert stored == len(batch1)

    # Two members share the group (a rebalance hands partitions over) while more arrives.
    a = kafka_runner(recording_spec(consumer_engine, group), kafka_bootstrap, topic).start()
    assert wait_until(lambda: bool(a.source.consumer and a.source.consumer.assignment()), 20)  # type: ignore[attr-defined]
    b = kafka_runner(recording_spec(consumer_engine, group), kafka_bootstrap, topic).start()
    assert wait_until(lambda: bool(b.source.consumer and b.source.consumer.assignment()), 20)  # type: ignore[attr-defined]
    batch2 = [e for i in range(6, 18) for e in history(uuid4(), 1000 * i)]
    try:
        for chunk in range(0, len(batch2), 10):
            produce(kafka_bootstrap, topic, as_messages(batch2[chunk : chunk + 10]))
            time.sleep(0.2)
        assert wait_until(lambda: len(effects(consumer_engine, group)) >= len(batch1 + batch2), 40)
        check_exactly_once_in_order(effects(consumer_engine, group), expected_of(batch1 + batch2))
        assert a.stats.duplicates + b.stats.duplicates == 0
        assert a.stats.processed > 0 and b.stats.processed > 0, "both members took partitions"
    finally:
        stop(a, b)


class CountedRebalances(KafkaSource):
    """A source that remembers every assignment and revocation the group made."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.moves: list[tuple[str, list[int]]] = []

    def on_assigned(self, partitions: Any) -> None:
        self.moves.append(("assigned", sorted(p.partition for p in partitions)))
        super().on_assigned(partitions)

    def on_revoked(self, partitions: Any) -> None:
        if partitions:
            self.moves.append(("revoked", sorted(p.partition for p in partitions)))
        super().on_revoked(partitions)


@pytest.mark.kafka
def test_a_consumer_that_joins_its_group_keeps_its_first_assignment(
    kafka_bootstrap: str, topic: str, consumer_engine: sa.Engine
) -> None:
    """A group's start is one rebalance, not two: a second one right after the first
    batch stalls every other member of a larger group until its next heartbeat."""
    events = [e for i in range(6) for e in history(uuid4(), 1000 * i)]
    produce(kafka_bootstrap, topic, as_messages(events))
    source = CountedRebalances(kafka_bootstrap, topic, layout=TopicLayout(3, -1))
    runner = ConsumerRunner(recording_spec(consumer_engine, "one-join"), source).start()
    try:
        assert wait_until(lambda: runner.stats.processed >= len(events), 60)
        # The metadata that used to set off the second rebalance arrives within
        # a poll or two of the first batch; give it ample time to.
        more = [e for i in range(6, 9) for e in history(uuid4(), 1000 * i)]
        produce(kafka_bootstrap, topic, as_messages(more))
        assert wait_until(lambda: runner.stats.processed >= len(events + more), 60)
        time.sleep(1.5)
    finally:
        stop(runner)
    # One assignment, then the revocation of stopping; not assigned, revoked and
    # assigned again while it ran.
    assert source.moves == [("assigned", [0, 1, 2]), ("revoked", [0, 1, 2])], source.moves


@pytest.mark.kafka
def test_sigterm_stops_a_consumer_process_cleanly(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    script = f"""
import signal
from pathlib import Path
from services.common.db import SMALL_BATCH, create_engine
from services.common.runner.kafka_source import KafkaSource
from services.common.runner import loop
from services.common.runner.loop import ConsumerRunner
from tests.integration.eventflow import TEST_LAYOUT, recording_spec
engine = create_engine(None, Path({str(tmp_path / "sig.sqlite")!r}))
source = KafkaSource({kafka_bootstrap!r}, {topic!r}, layout=TEST_LAYOUT)
runner = ConsumerRunner(recording_spec(engine, "sig"), source)
for stop_signal in (signal.SIGTERM, signal.SIGINT):
    signal.signal(stop_signal, lambda *_: runner.stop())
print("ready", flush=True)
runner.run()
print("stopped", flush=True)
"""
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        time.sleep(2)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
        assert process.returncode == 0
        assert "stopped" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_prune_forgets_old_processed_ids_of_one_group_only(
    database_url: str | None, tmp_path: Path
) -> None:
    engine = create_engine(database_url, tmp_path / "consumer.sqlite")
    try:
        migrate(engine, [RUNNER_HISTORY])
        rows = [
            {"group": group, "event_id": f"{group}-{p}", "position": p}
            for group in ("pruned", "other")
            for p in range(1, 3001)
        ]
        with engine.begin() as conn:
            conn.execute(processed_events.insert(), rows)

        assert prune_processed(engine, "pruned", keep_positions=1000) == 1999
        assert prune_processed(engine, "pruned", keep_positions=1000) == 0, "idempotent"
        with engine.connect() as conn:
            kept = conn.execute(
                sa.select(
                    processed_events.c.group, sa.func.min(processed_events.c.position)
                ).group_by(processed_events.c.group)
            ).all()
        assert dict(kept) == {"pruned": 2000, "other": 1}  # positions 2000..3000 remain
    finally:
        engine.dispose()


def test_the_prune_command_keeps_what_a_republish_could_still_bring(tmp_path: Path) -> None:
    engine = create_engine(None, tmp_path / "consumer.sqlite")
    migrate(engine, [RUNNER_HISTORY])
    with engine.begin() as conn:
        conn.execute(
            processed_events.insert(),
            [{"group": "cli", "event_id": str(uuid4()), "position": p} for p in range(1, 5001)],
        )
    engine.dispose()
    env = {
        "EVENTFLOW_DB_URL": "",
        "EVENTFLOW_SQLITE": str(tmp_path / "consumer.sqlite"),
        "EVENTFLOW_GROUP": "cli",
    }
    spec = ["--group", "cli", "--spec", "tests.integration.eventflow:spec_from_env"]
    cli = CliRunner()
    too_few = cli.invoke(cli_app, ["consumer", "prune", *spec, "--keep", "10"], env=env)
    assert too_few.exit_code == 2, "refuses to keep fewer than 1,000 positions"
    pruned = cli.invoke(cli_app, ["consumer", "prune", *spec, "--keep", "1000"], env=env)
    assert pruned.exit_code == 0, pruned.output
    assert "forgot 3999 processed event id(s) of group cli" in pruned.output


# ------------------------------------------------------------------ PostgreSQL


def test_a_runner_whose_connection_the_server_drops_reconnects_and_applies_each_event_once(
    postgres_url: str,
) -> None:
    """The runner keeps one connection from batch to batch: when PostgreSQL ends that
    session (a restart, a failover), the batch in hand is replayed on a new one."""
    engine = create_engine(postgres_url, Path("unused.sqlite"))
    log: list[EventEnvelope] = []
    wake = threading.Event()

    def read(after: int, limit: int) -> list[EventEnvelope]:
        return [e for e in log if e.position > after][:limit]

    source = EmbeddedSource(read, wake, poll_seconds=0.05, batch=10)
    runner = ConsumerRunner(
        recording_spec(engine, "held"), source, registry=CollectorRegistry(), max_backoff=0.2
    ).start()
    try:
        assert runner.wait_opened(30)
        log.extend(history(uuid4(), 0))
        wake.set()
        assert wait_until(lambda: len(effects(engine, "held")) == 5, 30)

        with engine.connect() as admin:
            ended = admin.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar()
        assert ended, "the runner held no session to end"
        log.extend(history(uuid4(), 5))
        wake.set()

        assert wait_until(lambda: len(effects(engine, "held")) == 10, 30)
        check_exactly_once_in_order(effects(engine, "held"), expected_of(log))
        assert runner.stats.errors >= 1, "the dropped session went unnoticed"
    finally:
        stop(runner)
        engine.dispose()


def test_a_light_batch_is_sent_with_its_commit_and_a_heavy_one_goes_by_copy(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Light traffic is applied as it arrives, a few events a batch: each such batch
    is one pipelined transaction (its writes go with the COMMIT instead of waiting
    one round trip each), while a backlog's large batches write by COPY, which a
    pipeline cannot carry. Both apply each event once, in order."""
    engine = create_engine(postgres_url, Path("unused.sqlite"))
    pipelined_batches: list[int] = []
    real_pipelined = loop.pipelined

    def spy(conn: sa.Connection) -> Any:
        pipelined_batches.append(len(effects(engine, "pipelined")))
        return real_pipelined(conn)

    monkeypatch.setattr(loop, "pipelined", spy)
    spec = recording_spec(engine, "pipelined")
    runner = ConsumerRunner(spec, EmbeddedSource(lambda after, limit: [], threading.Event()))
    migrate_consumer_database(spec)
    runner.source.open(spec.group, engine, runner.metrics)
    light = history(uuid4(), 0)
    heavy = [e for i in range(1, 13) for e in history(uuid4(), 10 * i)]
    assert len(light) <= SMALL_BATCH < len(heavy)
    try:
        runner.process([SourceRecord(envelope=e) for e in light])
        runner.process([SourceRecord(envelope=e) for e in heavy])
        assert pipelined_batches == [0], "only the light batch (the first) is pipelined"
        check_exactly_once_in_order(effects(engine, "pipelined"), expected_of(light + heavy))
    finally:
        engine.dispose()
