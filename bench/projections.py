"""Projections (issues 4 and 8): live apply rate, rebuild rate, command-to-view latency.

* ``projections_live_apply``: events/s the projections consumer (the shared
  runner on a ``KafkaSource``, a group of its own, a fresh PostgreSQL
  database) applies to the views from a pre-filled topic, next to B5 (a raw
  ``kafka-python`` consumer draining a topic of the same kind of events in
  the same run, no decoding, no database; ``bench.baselines``). Both count
  from the first batch each saw, so the group join is left out of both.
  Goal: at least 40% of B5.
* ``notifications_vs_projections_live``: the notifications consumer drains the
  same topic in each repetition, right after the projections consumer, into a
  fresh database; its rate against ``projections_live_apply``. Goal: ≥ 1.0.
* ``projections_live_two_processes_vs_one`` (and the same for notifications):
  1, then 2 consumer processes of one new group on the same topic (6
  partitions), each run into a fresh database (``bench.scale_out``); the rate
  of the two together against one, both counted in their steady state only
  (every process applying the partitions it keeps after the group settled;
  ``scale_out.window_rate``; ``ratios`` holds each repetition's). Goal ≥ 1.8,
  and the two runs' views must be identical, or the figure fails (met false,
  ``views_identical`` false, a ``!!`` line). The load average at the end is kept with the figure.
* ``projections_rebuild_from_topic``: ``interviewctl replay`` in Kafka mode on
  100,000 events: a fresh consumer reads the topic from its beginning, folds
  into fresh tables and swaps them in. Goals: at least 10,000 events/s, and
  at least half of min(B6, B7), B6 being raw batched upserts of the same
  100,000 events into one bare table (the least any view write costs) and B7
  raw paged reads of a 100,000-event events table (the least reading costs).
  ``projections_rebuild_in_memory`` is the same fold and write path fed from
  memory, against B6.
* ``command_to_view_latency_p50/p99``: invitations sent at 100 commands/s
  (open loop) to ``interviewctl serve interviews`` on PostgreSQL; the relay
  publishes to Kafka; a projections consumer process writes the views in its
  own database. Latency runs from sending the HTTP command to the event's
  timeline row being committed (seen by a 2 ms poll). Goal p99 under 250 ms.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import baselines, scale_out
from .common import (
    Context,
    command_to_effect,
    delete_topics,
    figure,
    fresh_database,
    print_figure,
    split_quantile,
)
from .notifications import _notifications_drain

PARTITIONS = 6
RATE = 100.0  # commands/s for the latency figure
REBUILD_EVENTS = 100_000
LIVE_GOAL = 0.4
REBUILD_GOAL = 10_000.0
LATENCY_GOAL_MS = 250.0
NOTIFICATIONS_GOAL = 1.0  # the notifications consumer keeps up with the projections'
SCALE_OUT_GOAL = 1.8  # two processes of one group against one


def run(ctx: Context) -> list[dict[str, Any]]:
    admin_url = ctx.require_database()
    if not ctx.kafka_bootstrap:
        raise SystemExit("this bench needs KAFKA_BOOTSTRAP_SERVERS; run `make bench`")
    bootstrap = ctx.kafka_bootstrap
    figures: list[dict[str, Any]] = []

    def add(f: dict[str, Any]) -> None:
        print_figure(f)
        figures.append(f)

    # -- live apply rate against B5, a raw drain of the same kind of topic
    n = 60_000 if ctx.full else 20_000
    raw_fig = baselines.kafka_drain(ctx)
    topic = f"bench-projections-{uuid.uuid4().hex[:8]}"
    try:
        _fill_topic(bootstrap, topic, _envelopes(n))
        print(f"  ({n:,} events on {topic}, {PARTITIONS} partitions)", flush=True)
        # Each repetition drains the topic with both consumers, one after the other,
        # so the machine's load weighs on both alike.
        ours: list[float] = []
        notified: list[float] = []
        for _ in range(ctx.repetitions):
            ours.append(_projections_drain(admin_url, bootstrap, topic, n))
            notified.append(_notifications_drain(admin_url, bootstrap, topic, n))
        add(
            figure(
                "projections_live_apply",
                ours,
                "events/s",
                baseline=raw_fig["name"],
                baseline_value=raw_fig["value"],
                goal=LIVE_GOAL,
                goal_text="≥ 40% of B5",
            )
        )
        add(
            figure(
                "notifications_vs_projections_live",
                notified,
                "events/s",
                baseline="projections_live_apply",
                baseline_value=statistics.median(ours),
                goal=NOTIFICATIONS_GOAL,
                goal_text="≥ 1.0x projections_live_apply",
            )
        )
        for service in ("projections", "notifications"):
            add(_two_processes_vs_one(ctx, service, admin_url, bootstrap, topic, n))
    finally:
        delete_topics(bootstrap, [topic])

    # -- rebuild of 100,000 events, against B6 (raw upserts) and B7 (raw reads)
    events = _envelopes(REBUILD_EVENTS)
    base_fig = baselines.view_upserts(ctx)
    in_memory = [_rebuild_in_memory(admin_url, events) for _ in range(ctx.repetitions)]
    add(
        figure(
            "projections_rebuild_in_memory_100k",
            in_memory,
            "events/s",
            baseline=base_fig["name"],
            baseline_value=base_fig["value"],
        )
    )
    topic = f"bench-rebuild-{uuid.uuid4().hex[:8]}"
    try:
        _fill_topic(bootstrap, topic, events)
        from_topic = [
            _rebuild_from_topic(admin_url, bootstrap, topic) for _ in range(ctx.repetitions)
        ]
        add(
            figure(
                "projections_rebuild_from_topic_100k",
                from_topic,
                "events/s",
                goal=REBUILD_GOAL,
                goal_text="≥ 10,000 events/s",
            )
        )
        floor = min((base_fig, baselines.paged_reads(ctx)), key=lambda f: f["value"])
        add(
            figure(
                "projections_rebuild_from_topic_100k_vs_min_B6_B7",
                from_topic,
                "events/s",
                baseline=floor["name"],
                baseline_value=floor["value"],
                goal=0.5,
                goal_text="≥ 50% of min(B6, B7)",
            )
        )
    finally:
        delete_topics(bootstrap, [topic])

    # -- command to view latency at 100 commands/s, over the repetitions' time
    seconds = ctx.seconds * ctx.repetitions
    latencies, to_kafka, lost = _command_to_view(admin_url, bootstrap, seconds)
    for stage, values in (("view", latencies), ("kafka", to_kafka)):
        if len(values) < 2:
            print(f"  (no {stage} latencies measured)", flush=True)
            continue
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            goal = LATENCY_GOAL_MS if (stage, name) == ("view", "p99") else None
            add(
                figure(
                    f"command_to_{stage}_latency_{name}_at_{RATE:.0f}rps",
                    [v * 1000 for v in split_quantile(values, q, ctx.repetitions)],
                    "ms",
                    goal=goal,
                    higher_is_better=False,
                )
            )
    add(figure("command_to_view_missing", [lost], "commands", goal=0, higher_is_better=False))
    return figures


# ------------------------------------------------------------------ events

FLOW = (
    ("interview.invited", "client", {"message": "interested?"}),
    ("interview.accepted", "freelancer", {}),
    ("interview.started", "client", {"scheduled_at": "2026-12-01T10:00:00+00:00"}),
    (
        "interview.offer_extended",
        "client",
        {"amount": "1200", "currency": "EUR", "rate_type": "fixed"},
    ),
    ("interview.offer_accepted", "freelancer", {}),
)


def _envelopes(n: int) -> list[Any]:
    """``n`` events: hiring flows of 5 events, interleaved over 1,000 interviews
    at a time (so a batch touches many interviews, as in real traffic)."""
    from services.contracts import EventEnvelope

    out = []
    start = datetime(2026, 11, 1, tzinfo=UTC)
    window = 1000
    k = 0
    for block in range(0, n // len(FLOW) + window, window):
        for step, (type_, role, data) in enumerate(FLOW):
            for i in range(block, block + window):
                if k >= n or i >= n // len(FLOW) + (1 if n % len(FLOW) else 0):
                    break
                client, freelancer = f"c-{i % 97}", f"f-{i}"
                k += 1
                out.append(
                    EventEnvelope.model_validate(
                        {
                            "id": uuid.uuid4(),
                            "type": type_,
                            "schema_version": 1,
                            "interview_id": uuid.UUID(int=i + 1),
                            "version": step + 1,
                            "position": k,
                            "occurred_at": start + timedelta(seconds=k),
                            "actor": {
                                "id": client if role == "client" else freelancer,
                                "role": role,
                            },
                            "job_id": f"job-{i % 2000}",
                            "client_id": client,
                            "freelancer_id": freelancer,
                            "correlation_id": "bench",
                            "causation_id": "bench",
                            "data": data,
                        }
                    )
                )
    return out


def _fill_topic(bootstrap: str, topic: str, events: list[Any]) -> None:
    from kafka import KafkaProducer

    from services.common.kafka import ensure_topics, producer_settings

    ensure_topics(bootstrap, {topic: (PARTITIONS, {})})
    producer = KafkaProducer(**producer_settings(bootstrap, client_id="bench-fill", linger_ms=20))
    for e in events:
        producer.send(topic, key=str(e.interview_id).encode(), value=e.to_bytes())
    producer.flush()
    producer.close()


def _container(url: str, tmp: str, bootstrap: str | None, topic: str | None = None) -> Any:
    from services.projections.bootstrap import ProjectionsContainer
    from services.projections.settings import ProjectionsSettings

    settings = ProjectionsSettings(
        database_url=url,
        projections_database_url=url,
        kafka_bootstrap_servers=bootstrap,
        data_dir=Path(tmp),
        auth_secret="bench",
        projections_consumer_group=f"bench-projections-{uuid.uuid4().hex[:8]}",
    )
    if topic is not None:
        settings = settings.model_copy(update={"topic": topic})
    return ProjectionsContainer(settings)


# ------------------------------------------------------------------ live apply


def _projections_drain(admin_url: str, bootstrap: str, topic: str, n: int) -> float:
    from services.common.kafka import TopicLayout
    from services.common.runner.kafka_source import kafka_runner
    from services.projections.bootstrap import consumer_spec

    marks: list[tuple[float, int]] = []
    done = threading.Event()
    with fresh_database(admin_url, "bench_views") as url, tempfile.TemporaryDirectory() as tmp:
        container = _container(url, tmp, bootstrap, topic)
        spec = consumer_spec(container)
        runner: Any = None
        notify = spec.on_committed

        def committed(position: int) -> None:
            if notify is not None:
                notify(position)
            processed = runner.stats.processed
            marks.append((time.perf_counter(), processed))
            if processed >= n:
                done.set()

        spec.on_committed = committed
        runner = kafka_runner(spec, bootstrap, topic, layout=TopicLayout(PARTITIONS, -1))
        runner.start()
        try:
            if not done.wait(600):
                raise RuntimeError(f"projections consumer applied {runner.stats.processed}/{n}")
        finally:
            runner.stop()
            runner.join(30)
            applied = container.writer().stats.applied
            container.close()
        if applied != n:
            raise RuntimeError(f"the views applied {applied} of {n} events")
    (t_first, first_count), (t_last, last_count) = marks[0], marks[-1]
    return (last_count - first_count) / (t_last - t_first)


def _two_processes_vs_one(
    ctx: Context, service: str, admin_url: str, bootstrap: str, topic: str, n: int
) -> dict[str, Any]:
    """``{service}_live_two_processes_vs_one``: two processes of one consumer group
    against one, on the same preloaded topic, each run into a fresh database; the
    figure fails (met false, a loud line) unless both runs wrote identical views
    and the two processes applied side by side.

    Both rates are ``scale_out.window_rate``: the steady state only, from when every
    process had committed a batch on the partitions it kept (after the group's
    last rebalance) to the first one's last batch, counts interpolated within a
    batch; a repetition with a rebalance inside that window fails the figure."""
    ones: list[float] = []
    twos: list[float] = []
    loads: list[float] = []
    differ: list[str] = []
    failed: list[str] = []
    for _ in range(ctx.repetitions):
        loads.append(round(os.getloadavg()[0], 2))
        one_run: dict[str, Any] = {}
        two_run: dict[str, Any] = {}
        one, alone = scale_out.drain(service, admin_url, bootstrap, topic, n, 1, one_run)
        two, together = scale_out.drain(service, admin_url, bootstrap, topic, n, 2, two_run)
        differ += scale_out.differences(alone, together)
        try:
            rates = (
                scale_out.window_rate(one, one_run["rebalances"]),
                scale_out.window_rate(two, two_run["rebalances"]),
            )
        except RuntimeError as error:  # e.g. one process drained the topic alone
            failed.append(str(error))
            continue
        ones.append(rates[0])
        twos.append(rates[1])
    f = figure(
        f"{service}_live_two_processes_vs_one",
        twos or [0.0],
        "events/s",
        baseline=f"{service}_live_one_process",
        baseline_value=statistics.median(ones or [1.0]),
        goal=SCALE_OUT_GOAL,
        goal_text=f"≥ {SCALE_OUT_GOAL:g}x one process, identical views",
    )
    if ones:
        f["one_process_spread"] = [round(min(ones), 1), round(max(ones), 1)]
        # Each repetition's two against the one measured just before it.
        f["ratios"] = [round(two / one, 2) for one, two in zip(ones, twos, strict=True)]
    # Two processes need two idle cores: the ratio says as much about the machine.
    f["load_average"] = round(os.getloadavg()[0], 2)
    f["load_average_per_repetition"] = loads
    f["views_identical"] = not differ
    if differ or failed:
        f["met"] = False
        f["problems"] = differ + failed
        print(f"  !! {service}, two processes against one: " + "; ".join(differ + failed))
    return f


# ------------------------------------------------------------------ rebuild


def _rebuild_in_memory(admin_url: str, events: list[Any]) -> float:
    from services.projections.adapters.sources import LogSource

    def read(after: int, limit: int) -> list[Any]:
        # events are in position order 1..n
        return events[after : after + limit]

    with fresh_database(admin_url, "bench_rebuild") as url, tempfile.TemporaryDirectory() as tmp:
        container = _container(url, tmp, None)
        try:
            container.ensure_schema()
            report = container.rebuild(LogSource(read, lambda: events[-1].position))
        finally:
            container.close()
    assert report.events == len(events), report
    return report.rate


def _rebuild_from_topic(admin_url: str, bootstrap: str, topic: str) -> float:
    with fresh_database(admin_url, "bench_rebuild") as url, tempfile.TemporaryDirectory() as tmp:
        container = _container(url, tmp, bootstrap, topic)
        try:
            container.ensure_schema()
            report = container.rebuild()
        finally:
            container.close()
    assert report.events == REBUILD_EVENTS, report
    return report.rate


# ------------------------------------------------------------------ latency


def _command_to_view(
    admin_url: str,
    bootstrap: str,
    seconds: float,
    stages: dict[str, dict[str, float]] | None = None,
) -> tuple[list[float], list[float], int]:
    import sqlalchemy as sa

    from services.projections.adapters.schema import view_tables

    timeline = view_tables(1).timeline
    columns = (timeline.c.position, timeline.c.interview_id)

    # New rows by position; and, since Kafka partitions commit out of position
    # order, every 50 ms the answered invitations not seen yet.
    def new_rows(conn: sa.Connection, after: int) -> Sequence[Any]:
        return conn.execute(
            sa.select(*columns)
            .where(timeline.c.position > after, timeline.c.version == 1)
            .order_by(timeline.c.position)
        ).all()

    def missed_rows(conn: sa.Connection, ids: list[str]) -> Sequence[Any]:
        return conn.execute(
            sa.select(*columns).where(timeline.c.interview_id.in_(ids), timeline.c.version == 1)
        ).all()

    return command_to_effect(
        admin_url,
        bootstrap,
        seconds,
        rate=RATE,
        service="projections",
        worker=["-m", "services.projections.entrypoints.worker"],
        effect="view row",
        new_rows=new_rows,
        missed_rows=missed_rows,
        stages=stages,
        effect_table=timeline.name,
    )
