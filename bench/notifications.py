"""Notifications (issue 5): consumer throughput and command-to-inbox latency.

* ``notifications_consumer_inbox_only``: events/s the notifications consumer
  (the shared runner on a ``KafkaSource``, group of its own, fresh PostgreSQL
  database, no webhooks, no e-mail) applies from a pre-filled topic, next to
  B5 (``bench.baselines``: a raw ``kafka-python`` consumer draining a topic of
  the same kind of events in the same run, no decoding, no database). Both
  rates are counted from the first batch each one saw, so the group join is
  left out of both. Goal: at least half of B5.
* ``notifications_vs_projections_live`` and ``notifications_live_two_processes_vs_one``
  are measured in ``bench.projections``, on the projections' own topic.
* ``command_to_inbox_latency_p50/p99``: invitations sent at 100 commands/s
  (open loop) to ``interviewctl serve interviews`` on PostgreSQL; the relay
  publishes them to Kafka; a notifications worker process records the inbox
  entries in its own database. Latency runs from sending the HTTP command to
  the inbox entry being committed (seen by a 2 ms poll of the inbox table).
  ``command_to_kafka_latency_*`` (command sent to event on the topic, seen by
  a plain consumer tailing it) shows how much of that is the relay's share.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import baselines
from .common import (
    Context,
    command_to_effect,
    delete_topics,
    figure,
    fresh_database,
    print_figure,
    split_quantile,
)

PARTITIONS = 6
RATE = 100.0  # commands/s for the latency figure


def run(ctx: Context) -> list[dict[str, Any]]:
    admin_url = ctx.require_database()
    if not ctx.kafka_bootstrap:
        raise SystemExit("this bench needs KAFKA_BOOTSTRAP_SERVERS; run `make bench`")
    figures: list[dict[str, Any]] = []
    # The consumer handles some hundreds of events/s: a quick run drains fewer.
    events = 60_000 if ctx.full else 6_000
    raw_fig = baselines.kafka_drain(ctx)
    ours = consumer_throughput(admin_url, ctx.kafka_bootstrap, events, ctx.repetitions)
    ours_fig = figure(
        "notifications_consumer_inbox_only",
        ours,
        "events/s",
        baseline=raw_fig["name"],
        baseline_value=raw_fig["value"],
        goal=0.5,
        goal_text="≥ 50% of B5",
    )
    print_figure(ours_fig)
    figures.append(ours_fig)

    seconds = ctx.seconds * ctx.repetitions
    latencies, to_kafka, lost = command_to_inbox(admin_url, ctx.kafka_bootstrap, seconds)
    for stage, values in (("inbox", latencies), ("kafka", to_kafka)):
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            f = figure(
                f"command_to_{stage}_latency_{name}_at_{RATE:.0f}rps",
                [v * 1000 for v in split_quantile(values, q, ctx.repetitions)],
                "ms",
            )
            print_figure(f)
            figures.append(f)
    lost_fig = figure(
        "command_to_inbox_missing", [lost], "commands", goal=0, higher_is_better=False
    )
    print_figure(lost_fig)
    figures.append(lost_fig)
    return figures


# ------------------------------------------------------------------ events


def _envelopes(n: int) -> list[tuple[bytes, bytes]]:
    """``n`` events (keys, values): hiring flows of 5 events, 6 notifications each."""
    from services.contracts import EventEnvelope

    flow = [
        ("interview.invited", "client", {"message": "interested?"}),
        ("interview.accepted", "freelancer", {}),
        ("interview.started", "client", {"scheduled_at": "2026-12-01T10:00:00+00:00"}),
        (
            "interview.offer_extended",
            "client",
            {"amount": "1200", "currency": "EUR", "rate_type": "fixed"},
        ),
        ("interview.offer_accepted", "freelancer", {}),
    ]
    out = []
    now = datetime.now(UTC)
    for k in range(n):
        i, step = divmod(k, len(flow))
        interview_id = uuid.UUID(int=i + 1)
        type_, role, data = flow[step]
        client, freelancer = f"c-{i % 97}", f"f-{i}"
        envelope = EventEnvelope.model_validate(
            {
                "id": uuid.uuid4(),
                "type": type_,
                "schema_version": 1,
                "interview_id": interview_id,
                "version": step + 1,
                "position": k + 1,
                "occurred_at": now,
                "actor": {"id": client if role == "client" else freelancer, "role": role},
                "job_id": f"job-{i}",
                "client_id": client,
                "freelancer_id": freelancer,
                "correlation_id": "bench",
                "causation_id": "bench",
                "data": data,
            }
        )
        out.append((str(interview_id).encode(), envelope.to_bytes()))
    return out


def _fill_topic(bootstrap: str, topic: str, n: int) -> None:
    from kafka import KafkaProducer

    from services.common.kafka import ensure_topics, producer_settings

    ensure_topics(bootstrap, {topic: (PARTITIONS, {})})
    producer = KafkaProducer(**producer_settings(bootstrap, client_id="bench-fill", linger_ms=20))
    for key, value in _envelopes(n):
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


# ------------------------------------------------------------------ throughput


def consumer_throughput(admin_url: str, bootstrap: str, n: int, repetitions: int) -> list[float]:
    topic = f"bench-notifications-{uuid.uuid4().hex[:8]}"
    _fill_topic(bootstrap, topic, n)
    print(f"  ({n:,} events on {topic}, {PARTITIONS} partitions)", flush=True)
    try:
        return [_notifications_drain(admin_url, bootstrap, topic, n) for _ in range(repetitions)]
    finally:
        delete_topics(bootstrap, [topic])


def _notifications_drain(admin_url: str, bootstrap: str, topic: str, n: int) -> float:
    from services.common.kafka import TopicLayout
    from services.common.runner.kafka_source import kafka_runner
    from services.notifications.bootstrap import NotificationsContainer, consumer_spec
    from services.notifications.settings import NotificationsSettings

    marks: list[tuple[float, int]] = []
    done = threading.Event()
    with fresh_database(admin_url, "bench_notif") as url, tempfile.TemporaryDirectory() as tmp:
        container = NotificationsContainer(
            NotificationsSettings(
                notifications_database_url=url,
                data_dir=Path(tmp),
                auth_secret="bench",
                notifications_consumer_group=f"bench-notifications-{uuid.uuid4().hex[:8]}",
            )
        )
        runner: Any = None

        def committed(_: int) -> None:
            processed = runner.stats.processed
            marks.append((time.perf_counter(), processed))
            if processed >= n:
                done.set()

        runner = kafka_runner(
            consumer_spec(container, committed),
            bootstrap,
            topic,
            layout=TopicLayout(PARTITIONS, -1),
        )
        runner.start()
        try:
            if not done.wait(600):
                raise RuntimeError(f"notifications consumer applied {runner.stats.processed}/{n}")
        finally:
            runner.stop()
            runner.join(30)
            container.close()
    (t_first, first_count), (t_last, last_count) = marks[0], marks[-1]
    return (last_count - first_count) / (t_last - t_first)


# ------------------------------------------------------------------ latency


def command_to_inbox(
    admin_url: str, bootstrap: str, seconds: float
) -> tuple[list[float], list[float], int]:
    import sqlalchemy as sa

    from services.notifications.adapters.tables import notifications

    def new_rows(conn: sa.Connection, after: int) -> Sequence[Any]:
        return conn.execute(
            sa.select(notifications.c.seq, notifications.c.interview_id)
            .where(notifications.c.seq > after)
            .order_by(notifications.c.seq)
        ).all()

    return command_to_effect(
        admin_url,
        bootstrap,
        seconds,
        rate=RATE,
        service="notifications",
        worker=["-m", "services.notifications.entrypoints.worker", "--no-delivery"],
        effect="inbox entry",
        new_rows=new_rows,
    )
