"""Notifications (issue 5): consumer throughput and command-to-inbox latency.

* ``notifications_consumer_inbox_only``: events/s the notifications consumer
  (the shared runner on a ``KafkaSource``, group of its own, fresh PostgreSQL
  database, no webhooks, no e-mail) applies from a pre-filled topic, next to
  B5 (``bench.baselines``: a raw ``kafka-python`` consumer draining a topic of
  the same kind of events in the same run, no decoding, no database). Both
  rates are counted from the first batch each one saw, so the group join is
  left out of both. Goal: at least half of B5.
* ``command_to_inbox_latency_p50/p99``: invitations sent at 100 commands/s
  (open loop) to ``interviewctl serve interviews`` on PostgreSQL; the relay
  publishes them to Kafka; a notifications worker process records the inbox
  entries in its own database. Latency runs from sending the HTTP command to
  the inbox entry being committed (seen by a 2 ms poll of the inbox table).
  ``command_to_kafka_latency_*`` (command sent to event on the topic, seen by
  a plain consumer tailing it) shows how much of that is the relay's share.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import baselines
from .common import (
    ROOT,
    Context,
    figure,
    free_port,
    fresh_database,
    print_figure,
    python,
    server,
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
        _delete_topic(bootstrap, topic)


def _delete_topic(bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        if topic in set(admin.list_topics()):
            admin.delete_topics([topic])
    finally:
        admin.close()


def _notifications_drain(admin_url: str, bootstrap: str, topic: str, n: int) -> float:
    from services.common.runner import kafka_runner
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

        runner = kafka_runner(consumer_spec(container, committed), bootstrap, topic)
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
    import httpx
    import sqlalchemy as sa

    from services.common.auth import mint_token
    from services.common.db import create_engine
    from services.notifications.adapters.tables import notifications

    secret = secrets.token_urlsafe(32)
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        stack.callback(_delete_topic, bootstrap, topic)
        events_url = stack.enter_context(fresh_database(admin_url, "bench_events"))
        inbox_url = stack.enter_context(fresh_database(admin_url, "bench_inbox"))
        env = {
            "DATABASE_URL": events_url,
            "NOTIFICATIONS_DATABASE_URL": inbox_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EVENTS_TOPIC": topic,
            "NOTIFICATIONS_CONSUMER_GROUP": f"bench-latency-{uuid.uuid4().hex[:8]}",
            "AUTH_SECRET": secret,
            "DATA_DIR": tmp,
            "LOG_LEVEL": "WARNING",
            "RELAY_METRICS_PORT": "0",
        }
        stack.enter_context(
            server(
                [python(), "-m", "services.cli", "serve", "interviews", "--port", str(port)],
                port,
                env | {"KAFKA_BOOTSTRAP_SERVERS": ""},
                Path(tmp) / "interviews.log",
                ready_path="/readyz",
            )
        )
        for name, args in (
            ("relay", ["-m", "services.cli", "relay"]),
            ("worker", ["-m", "services.notifications.entrypoints.worker", "--no-delivery"]),
        ):
            log = stack.enter_context(open(Path(tmp) / f"{name}.log", "wb"))
            proc = subprocess.Popen(
                [python(), *args],
                env=os.environ | env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop, proc)

        engine = create_engine(inbox_url, Path(tmp) / "unused.sqlite")
        stack.callback(engine.dispose)
        seen: dict[str, float] = {}
        stop = threading.Event()

        def watch() -> None:  # when each inbox entry became visible (committed)
            last = 0
            while not stop.is_set():
                try:
                    with engine.connect() as conn:
                        rows = conn.execute(
                            sa.select(notifications.c.seq, notifications.c.interview_id)
                            .where(notifications.c.seq > last)
                            .order_by(notifications.c.seq)
                        ).all()
                except sa.exc.ProgrammingError:  # the consumer has not created its tables yet
                    rows = []
                now = time.perf_counter()
                for row in rows:
                    seen.setdefault(row.interview_id, now)
                    last = row.seq
                time.sleep(0.002)

        on_kafka: dict[str, float] = {}

        def tail() -> None:  # when each event reached the topic (the relay's share)
            from kafka import KafkaConsumer

            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap.split(","),
                group_id=f"bench-tail-{uuid.uuid4().hex[:8]}",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            consumer.subscribe([topic])
            try:
                while not stop.is_set():
                    for messages in consumer.poll(timeout_ms=200).values():
                        now = time.perf_counter()
                        for m in messages:
                            on_kafka.setdefault(m.key.decode(), now)
            finally:
                consumer.close(autocommit=False)

        watcher = threading.Thread(target=watch, daemon=True)
        tailer = threading.Thread(target=tail, daemon=True)
        watcher.start()
        tailer.start()
        stack.callback(tailer.join, 10)
        stack.callback(watcher.join, 5)
        stack.callback(stop.set)

        local = threading.local()
        headers = {
            c: {"Authorization": f"Bearer {mint_token(secret, f'c-{c}', 'client')}"}
            for c in range(20)
        }

        def invite(k: int) -> tuple[str, float] | None:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=f"http://127.0.0.1:{port}")
            sent = time.perf_counter()
            answer = client.post(
                "/interviews",
                json={"job_id": f"job-{k}", "freelancer_id": f"f-{k}"},
                headers=headers[k % 20],
                timeout=10,
            )
            if answer.status_code != 201:
                return None
            return str(answer.json()["id"]), sent

        # Warm up the whole path (the consumer joins its group, tables exist).
        warm = invite(-1)
        assert warm is not None, "the interview service refused the warm-up command"
        deadline = time.monotonic() + 90
        while warm[0] not in seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no inbox entry after 90 s; see the logs in {tmp}")
            time.sleep(0.05)

        count = int(RATE * seconds)
        print(f"  ({count} invitations at {RATE:.0f}/s, open loop)", flush=True)
        sent: list[tuple[str, float] | None] = []
        with ThreadPoolExecutor(16) as pool:
            start = time.perf_counter()
            futures = []
            for k in range(count):
                delay = start + k / RATE - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(invite, k))
            sent = [f.result() for f in futures]
        deadline = time.monotonic() + 30
        ok = [s for s in sent if s is not None]
        while any(i not in seen for i, _ in ok) and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies = [seen[i] - t for i, t in ok if i in seen]
        to_kafka = [on_kafka[i] - t for i, t in ok if i in on_kafka]
        lost = len(sent) - len(latencies)
    return latencies, to_kafka, lost


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
