"""Helpers for the relay and consumer-runner tests: a workload, a recording consumer,
unique topics, and the checks every delivery test makes."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from services.common.consumer import Batch, BatchHandler, ConsumerSpec
from services.common.db import create_engine
from services.common.kafka import TopicLayout
from services.contracts import EventEnvelope
from services.interviews.adapters.envelope import event_id
from services.interviews.application import InterviewsApplication
from services.interviews.domain import Actor, CommandContext
from tests.jobs import ensure_job

# How a test consumer creates its topic if it is first (the broker's replication).
TEST_LAYOUT = TopicLayout(partitions=6, replication_factor=-1)


def each_event(handle: Callable[[sa.Connection, EventEnvelope], None]) -> BatchHandler:
    """A ``ConsumerSpec.apply`` that applies a batch's events one by one with ``handle``
    (each in its log context, as the services' consumers do)."""

    def apply(conn: sa.Connection, batch: Batch) -> None:
        batch.map(lambda event: handle(conn, event))

    return apply


# ------------------------------------------------------------------ workload


@dataclass
class Workload:
    """Issues a random mix of valid commands straight to the application."""

    app: InterviewsApplication
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    open: dict[UUID, tuple[str, str, str]] = field(default_factory=dict)  # id -> (state, c, f)
    started: set[UUID] = field(default_factory=set)
    before_offer: dict[UUID, str] = field(default_factory=dict)  # where an open offer returns
    moves: int = 0
    commands: int = 0
    counter: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    def ctx(self, actor: str, role: str) -> CommandContext:
        request = uuid.uuid4().hex
        return CommandContext(Actor(actor, role), datetime.now(UTC), request, request)  # type: ignore[arg-type]

    def step(self) -> UUID:
        """One command; returns the interview it touched."""
        self.commands += 1
        if len(self.open) < 20 or self.rng.random() < 0.3:
            self.counter += 1
            client, freelancer = f"c{self.counter % 17}", f"f{self.counter}"
            ensure_job(self.app, f"job-{self.counter}", client)
            result = self.app.invite(
                self.ctx(client, "client"),
                job_id=f"job-{self.counter}",
                freelancer_id=freelancer,
                message="interested?",
            )
            self.open[result.id] = ("invited", client, freelancer)
            return result.id
        interview_id = self.rng.choice(list(self.open))
        state, client, freelancer = self.open[interview_id]
        as_client, as_freelancer = self.ctx(client, "client"), self.ctx(freelancer, "freelancer")
        roll = self.rng.random()
        if roll < 0.08:
            self.app.cancel(as_client, interview_id, reason="position filled")
            state = "closed"
        elif state == "invited":
            if roll < 0.15:
                self.app.decline(as_freelancer, interview_id, reason="busy")
                state = "closed"
            else:
                self.app.accept(as_freelancer, interview_id)
                state = "accepted"
        elif interview_id in self.started and state != "accepted" and roll < 0.2:
            self.moves += 1
            when = datetime.now(UTC) + timedelta(days=1, minutes=self.moves)
            self.app.reschedule(as_freelancer, interview_id, scheduled_at=when, reason="a clash")
        elif state == "accepted" and roll < 0.85:
            self.app.start(as_client, interview_id)
            self.started.add(interview_id)
            state = "in_progress"
        elif state in ("accepted", "in_progress"):
            self.app.extend_offer(
                as_client,
                interview_id,
                amount=Decimal("1200.50"),
                currency="EUR",
                rate_type="fixed",
            )
            self.before_offer[interview_id] = state
            state = "offer_extended"
        elif state == "offer_extended":
            if roll < 0.4:
                self.app.decline_offer(as_freelancer, interview_id, reason="too low")
                state = self.before_offer[interview_id]
            elif roll < 0.5:
                self.app.withdraw_offer(as_client, interview_id, reason="re-scoped")
                state = self.before_offer[interview_id]
            else:
                self.app.accept_offer(as_freelancer, interview_id)
                state = "closed"
        if state == "closed":
            del self.open[interview_id]
        else:
            self.open[interview_id] = (state, client, freelancer)
        return interview_id

    def in_background(self, n: int, per_second: float | None = None) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(n, per_second), daemon=True)
        thread.start()
        return thread

    def stop(self, thread: threading.Thread | None = None) -> None:
        self.stopped.set()
        if thread is not None:
            thread.join(30)

    def run(self, n: int, per_second: float | None = None) -> None:
        started = time.monotonic()
        for i in range(n):
            if self.stopped.is_set():
                return
            if per_second:
                due = started + i / per_second
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.step()


def expected_events(app: InterviewsApplication) -> dict[str, tuple[str, int]]:
    """event id -> (interview id, version) of every interview event in the store."""
    expected: dict[str, tuple[str, int]] = {}
    after = 0
    while True:
        batch = list(app.iter_interview_notifications(after, 1000))
        if not batch:
            return expected
        for position, event in batch:
            expected[str(event_id(event.originator_id, event.originator_version))] = (
                str(event.originator_id),
                event.originator_version,
            )
            after = position


# ------------------------------------------------------------------ recording consumer


def effects_table(group: str) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(
        f"effects_{group}",
        metadata,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("interview_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    sa.Table(
        f"failing_{group}",
        metadata,
        sa.Column("interview_id", sa.String(36), primary_key=True),
    )
    return metadata, table


def recording_spec(
    engine: sa.Engine,
    group: str,
    *,
    on_committed: Callable[[int], None] | None = None,
    on_handled: Callable[[EventEnvelope], None] | None = None,
) -> ConsumerSpec:
    """A consumer that writes one row per applied event (no uniqueness: a second
    effect would show as a second row). It fails on interviews listed in table
    ``failing_<group>``, so tests can make a handler fail and recover."""
    metadata, table = effects_table(group)
    metadata.create_all(engine)  # the test consumer's own tables (no migrations)
    failing = metadata.tables[f"failing_{group}"]

    def handle(conn: sa.Connection, event: EventEnvelope) -> None:
        broken = conn.execute(
            sa.select(failing.c.interview_id).where(
                failing.c.interview_id == str(event.interview_id)
            )
        ).first()
        if broken is not None:
            raise RuntimeError(f"handler bug for interview {event.interview_id}")
        conn.execute(
            table.insert().values(
                event_id=str(event.id),
                interview_id=str(event.interview_id),
                version=event.version,
                type=event.type,
                position=event.position,
            )
        )
        if on_handled is not None:
            on_handled(event)

    return ConsumerSpec(
        group=group,
        engine=engine,
        apply=each_event(handle),
        on_committed=on_committed,
    )


def spec_from_env() -> ConsumerSpec:
    """For ``interviewctl dlq ... --spec tests.integration.eventflow:spec_from_env``."""
    engine = create_engine(
        os.environ["EVENTFLOW_DB_URL"] or None, Path(os.environ["EVENTFLOW_SQLITE"])
    )
    return recording_spec(engine, os.environ["EVENTFLOW_GROUP"])


def effects(engine: sa.Engine, group: str) -> list[Any]:
    _, table = effects_table(group)
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(table.c.seq)).all())


def set_failing(engine: sa.Engine, group: str, interview_id: str, failing: bool) -> None:
    metadata, _ = effects_table(group)
    metadata.create_all(engine)
    table = metadata.tables[f"failing_{group}"]
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.interview_id == interview_id))
        if failing:
            conn.execute(table.insert().values(interview_id=interview_id))


def check_exactly_once_in_order(rows: list[Any], expected: dict[str, tuple[str, int]]) -> None:
    """Every expected event applied once, and per interview strictly by version."""
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row.event_id] += 1
    twice = {k: v for k, v in counts.items() if v > 1}
    assert not twice, f"{len(twice)} events took effect more than once"
    missing = set(expected) - set(counts)
    assert not missing, f"{len(missing)} of {len(expected)} events never took effect"
    unexpected = set(counts) - set(expected)
    assert not unexpected, f"{len(unexpected)} unexpected events"
    versions: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        versions[row.interview_id].append(row.version)
    for interview_id, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), f"{interview_id} applied as {seen}"


# ------------------------------------------------------------------ Kafka


def unique_topic(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def delete_topics(bootstrap: str, *topics: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        existing = set(admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            admin.delete_topics(doomed)
    except Exception:
        pass
    finally:
        admin.close()


def read_topic(bootstrap: str, topic: str, expect: int = 0, timeout: float = 20) -> list[Any]:
    """Every message of ``topic`` (waits until at least ``expect`` arrived)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1500,
    )
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            messages.extend(consumer)
            if len(messages) >= expect:
                break
    finally:
        consumer.close()
    return messages


def topic_cleanup(bootstrap: str, topic: str) -> Iterator[str]:
    try:
        yield topic
    finally:
        delete_topics(bootstrap, topic, f"{topic}.dlq")
