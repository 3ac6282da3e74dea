"""The relay (issue 3): publishing rate against raw kafka-python, and end-to-end latency.

* ``relay_publish_rate``: events/s the relay publishes from a PostgreSQL event
  store holding N interview events (read from the log, converted to envelopes,
  sent idempotent with acks=all, acknowledged, position recorded), next to
  ``B4_kafka_python_raw_produce``: a plain ``KafkaProducer`` with the same
  settings sending the same N messages (same keys, values and headers, so the
  same sizes) to a topic with the same partitions, to the same broker, in the
  same run. Both timings include creating the producer and its first metadata
  fetch; the two alternate, and ``relay_to_raw_ratio_paired`` is the median of
  the per-repetition ratios (robust to a machine whose load changes between
  repetitions). Goal: the relay reaches at least half of raw.
  ``relay_to_raw_cpu_ratio_paired``: the same pairs by process CPU per event
  (raw's / the relay's), what the rates compare on a machine nobody else loads.
* ``command_to_consumer_latency_p50/p99``: commands at 100/s (open loop)
  straight to the application on PostgreSQL; the relay (woken by LISTEN/NOTIFY)
  publishes; a consumer runner (``KafkaSource``, its own PostgreSQL database)
  commits the effect. Latency runs from the command returning to the consumer's
  commit of that event. Goal: p99 under 250 ms. All in one process, so the
  three share one GIL (a pessimistic set-up).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.interviews.application import InterviewsApplication
    from services.interviews.bootstrap import RelayProcess

from .common import (
    Context,
    delete_topics,
    figure,
    fresh_database,
    print_figure,
    register_job_in,
    split_quantile,
)

PARTITIONS = 6
RATE = 100.0


def run(ctx: Context) -> list[dict[str, Any]]:
    admin_url = ctx.require_database()
    if not ctx.kafka_bootstrap:
        raise SystemExit("this bench needs KAFKA_BOOTSTRAP_SERVERS; run `make bench`")
    figures: list[dict[str, Any]] = []
    events = 60_000 if ctx.full else 20_000
    relay_rates, raw_rates, relay_cpu, raw_cpu = publish_rates(
        admin_url, ctx.kafka_bootstrap, events, ctx.repetitions
    )
    # B4 of the suite is this raw producer: the relay's settings, the very same
    # messages, alternating with the relay (bench.baselines.kafka_produce is the
    # stand-alone version when this module does not run).
    raw = ctx.once("B4", lambda: figure("B4_kafka_python_raw_produce", raw_rates, "events/s"))
    ours = figure(
        "relay_publish_rate",
        relay_rates,
        "events/s",
        baseline=raw["name"],
        baseline_value=raw["value"],
        goal=0.5,
        goal_text="≥ 50% of B4",
    )
    paired = figure(
        "relay_to_raw_ratio_paired",
        [r / b for r, b in zip(relay_rates, raw_rates, strict=True)],
        "ratio",
        goal=0.5,
    )
    # What the rates above measure when the machine is not shared: CPU per event.
    cpu_paired = figure(
        "relay_to_raw_cpu_ratio_paired",
        [b / r for r, b in zip(relay_cpu, raw_cpu, strict=True)],
        "ratio",
    )
    figures += [ours, paired, cpu_paired]
    peak = ctx.cache.get("peak_command_rate")
    if peak:  # measured by bench.commands in this run
        figures.append(
            figure(
                "relay_publish_rate_vs_peak_commands",
                relay_rates,
                "events/s",
                baseline="http_commands_16clients_pg",
                baseline_value=peak,
                goal=2.0,
                goal_text="≥ 2x the peak command rate",
            )
        )
    for f in figures:
        print_figure(f)

    latencies, missing = end_to_end(admin_url, ctx.kafka_bootstrap, ctx.seconds * ctx.repetitions)
    for name, q, goal in (("p50", 0.5, None), ("p99", 0.99, 250.0)):
        f = figure(
            f"command_to_consumer_latency_{name}_at_{RATE:.0f}rps",
            [v * 1000 for v in split_quantile(latencies, q, ctx.repetitions)],
            "ms",
            goal=goal,
            higher_is_better=False,
        )
        print_figure(f)
        figures.append(f)
    f = figure("command_to_consumer_missing", [missing], "events", goal=0, higher_is_better=False)
    print_figure(f)
    figures.append(f)
    return figures


# ------------------------------------------------------------------ helpers


def _ctx(actor: str, role: str) -> Any:
    from services.interviews.domain import Actor, CommandContext

    request = uuid.uuid4().hex
    return CommandContext(Actor(actor, role), datetime.now(UTC), request, request)  # type: ignore[arg-type]


def _application(database_url: str, data_dir: Path) -> Any:
    from services.interviews.bootstrap import InterviewsContainer
    from services.interviews.settings import InterviewsSettings

    return InterviewsContainer(
        InterviewsSettings(database_url=database_url, data_dir=data_dir, auth_secret="b" * 32)
    )


def _fill(app: Any, events: int) -> None:
    """``events`` interview events: invitations, each accepted (2 events per interview),
    with their jobs' events between them in the log, as the commands would record
    them; built with the domain and saved 500 interviews a transaction, so the
    fill takes seconds rather than the commands' half minute."""
    from services.interviews.domain import Interview, Job

    batch: list[Any] = []
    for i in range(events // 2):
        invite = _ctx(f"c{i % 50}", "client")
        job = Job.create(f"job-{i}", invite.actor, invite.at, None)
        interview = Interview.invite(
            invite,
            interview_id=uuid.uuid4(),
            job_id=f"job-{i}",
            freelancer_id=f"f{i}",
            expires_at=invite.at + timedelta(days=7),
        )
        job.record_invitation(f"f{i}", interview.id, invite.at)
        interview.accept(_ctx(f"f{i}", "freelancer"))
        batch += [job, interview]
        if len(batch) >= 1000:
            app.save(*batch)
            batch.clear()
    if batch:
        app.save(*batch)


# ------------------------------------------------------------------ publish rate


def publish_rates(
    admin_url: str, bootstrap: str, events: int, repetitions: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Events/s of the relay and of the raw producer, and the process CPU (µs) per
    event of each, one of each per repetition."""
    from kafka import KafkaProducer

    from services.common.kafka import ensure_topics, producer_settings
    from services.interviews.adapters.kafka_publisher import headers_for
    from services.interviews.feed import InterviewEventFeed

    relay_rates: list[float] = []
    raw_rates: list[float] = []
    relay_cpu: list[float] = []
    raw_cpu: list[float] = []
    topics: list[str] = []
    with fresh_database(admin_url, "bench_relay") as url, TemporaryDirectory() as tmp:
        container = _application(url, Path(tmp))
        app = container.interviews()
        try:
            _fill(app, events)
            # The raw producer sends exactly what the relay sends.
            feed = InterviewEventFeed(app)
            messages = []
            after = 0
            while batch := feed.read(after, 5000):
                after = batch[-1].position
                messages += [
                    (str(e.interview_id).encode(), e.to_bytes(), headers_for(e)) for e in batch
                ]
            assert len(messages) == events, (len(messages), events)

            def relay_once() -> None:
                topic = f"bench.relay.{uuid.uuid4().hex[:8]}"
                topics.extend([topic, f"{topic}.dlq"])
                process = relay_process(app, url, Path(tmp), bootstrap, topic)
                started, cpu = time.perf_counter(), time.process_time()
                process.start()
                while process.relay.stats.published < events:
                    time.sleep(0.002)
                relay_rates.append(events / (time.perf_counter() - started))
                relay_cpu.append((time.process_time() - cpu) * 1e6 / events)
                process.stop()

            def raw_once() -> None:
                raw_topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
                topics.append(raw_topic)
                ensure_topics(bootstrap, {raw_topic: (PARTITIONS, {"retention.ms": "-1"})})
                started, cpu = time.perf_counter(), time.process_time()
                producer = KafkaProducer(**producer_settings(bootstrap, client_id="bench-raw"))
                for key, value, headers in messages:
                    producer.send(raw_topic, key=key, value=value, headers=headers)
                producer.flush()
                raw_rates.append(events / (time.perf_counter() - started))
                raw_cpu.append((time.process_time() - cpu) * 1e6 / events)
                producer.close()

            for repetition in range(repetitions):
                # Alternate the order, so neither side always runs on a warmer machine.
                for once in (
                    (relay_once, raw_once) if repetition % 2 == 0 else (raw_once, relay_once)
                ):
                    once()
                print(
                    f"  .. relay {relay_rates[-1]:,.0f}/s ({relay_cpu[-1]:.0f} µs CPU an event),"
                    f" raw {raw_rates[-1]:,.0f}/s ({raw_cpu[-1]:.0f} µs)",
                    flush=True,
                )
        finally:
            container.close()
            delete_topics(bootstrap, topics)
    return relay_rates, raw_rates, relay_cpu, raw_cpu


# ------------------------------------------------------------------ end-to-end latency


def end_to_end(admin_url: str, bootstrap: str, seconds: float) -> tuple[list[float], int]:
    """Latencies (s) from a command returning to the consumer committing its event."""
    import sqlalchemy as sa

    from services.common.consumer import Batch, ConsumerSpec
    from services.common.db import create_engine
    from services.common.kafka import TopicLayout
    from services.common.runner.kafka_source import KafkaSource
    from services.common.runner.loop import ConsumerRunner
    from services.interviews.adapters.envelope import event_id
    from services.interviews.bootstrap import RelayProcess
    from services.interviews.settings import RelaySettings

    topic = f"bench.e2e.{uuid.uuid4().hex[:8]}"
    accepted: dict[str, float] = {}
    handled: dict[str, float] = {}
    in_batch: list[str] = []
    with (
        fresh_database(admin_url, "bench_e2e") as url,
        fresh_database(admin_url, "bench_e2e_consumer") as consumer_url,
        TemporaryDirectory() as tmp,
    ):
        container = _application(url, Path(tmp))
        app = container.interviews()
        engine = create_engine(consumer_url, Path(tmp) / "unused.sqlite")
        metadata = sa.MetaData()
        effects = sa.Table(
            "bench_effects",
            metadata,
            sa.Column("event_id", sa.String(36), primary_key=True),
            sa.Column("position", sa.BigInteger),
        )

        def handle(conn: sa.Connection, event: Any) -> None:
            conn.execute(effects.insert().values(event_id=str(event.id), position=event.position))
            in_batch.append(str(event.id))

        def committed(_: int) -> None:
            now = time.perf_counter()
            for eid in in_batch:
                handled.setdefault(eid, now)
            in_batch.clear()

        metadata.create_all(engine)

        def apply(conn: sa.Connection, batch: Batch) -> None:
            for event in batch.events:
                handle(conn, event)

        spec = ConsumerSpec("bench-e2e", engine, apply, committed)
        relay = RelayProcess(
            app,
            RelaySettings(
                database_url=url,
                data_dir=Path(tmp),
                kafka_bootstrap_servers=bootstrap,
                EVENTS_TOPIC=topic,
                KAFKA_TOPIC_PARTITIONS=PARTITIONS,
            ),
        )
        runner = ConsumerRunner(
            spec, KafkaSource(bootstrap, topic, layout=TopicLayout(PARTITIONS, -1))
        )
        try:
            relay.relay.connect().close()  # topic first, so the consumer finds it
            relay.start()
            runner.start()
            runner.wait_opened(30)
            _warm_up(app, runner)
            handled.clear()
            in_batch.clear()
            open_interviews: list[Any] = []
            total = int(seconds * RATE)
            started = time.perf_counter()
            for i in range(total):
                due = started + i / RATE
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                if open_interviews and i % 2:
                    interview_id, freelancer = open_interviews.pop()
                    result = app.accept(_ctx(freelancer, "freelancer"), interview_id)
                else:
                    freelancer = f"f{i}"
                    register_job_in(app, f"e2e-{i}", "c1")
                    result = app.invite(
                        _ctx("c1", "client"), job_id=f"e2e-{i}", freelancer_id=freelancer
                    )
                    open_interviews.append((result.id, freelancer))
                accepted[str(event_id(result.id, result.version))] = time.perf_counter()
            deadline = time.monotonic() + 30
            while len(set(accepted) & set(handled)) < len(accepted) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            runner.stop()
            relay.stop()
            runner.join(15)
            engine.dispose()
            container.close()
            delete_topics(bootstrap, [topic, f"{topic}.dlq"])
    latencies = [handled[e] - t for e, t in accepted.items() if e in handled]
    return latencies, len(accepted) - len(latencies)


def _warm_up(app: Any, runner: Any) -> None:
    """A few commands until the consumer has joined its group and applied them."""
    target = runner.stats.processed + 5
    for i in range(5):
        register_job_in(app, f"warm-{i}", "c-warm")
        app.invite(_ctx("c-warm", "client"), job_id=f"warm-{i}", freelancer_id=f"fw{i}")
    deadline = time.monotonic() + 30
    while runner.stats.processed < target and time.monotonic() < deadline:
        time.sleep(0.05)


def relay_process(
    app: InterviewsApplication, url: str, data_dir: Path, bootstrap: str, topic: str
) -> RelayProcess:
    """A relay of ``app``'s log to ``topic`` (made now, outside any timing), not started."""
    from services.interviews.bootstrap import RelayProcess
    from services.interviews.settings import RelaySettings

    settings = RelaySettings(
        database_url=url,
        data_dir=data_dir,
        kafka_bootstrap_servers=bootstrap,
        EVENTS_TOPIC=topic,
        KAFKA_TOPIC_PARTITIONS=PARTITIONS,
    )
    process = RelayProcess(app, settings)
    process.relay.connect().close()
    return process
