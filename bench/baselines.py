"""Baselines: what this machine can do at best, measured in the same run.

Every goal of the suite is a ratio to one of these, so a figure survives a
noisy machine. Each is measured once per run (``ctx.once``) by whichever
module asks first, and reported as the median of at least three repetitions:

* B0 ``pg_test_fsync``: syncs/s of the disk under PostgreSQL's data directory,
  with the server's ``wal_sync_method`` (one 8 kB write per sync);
* B1 a no-op FastAPI endpoint (``bench/noop_app.py``) served like the
  interviews API (same uvicorn, same number of worker processes) under the
  same load generator and client count as the command figure;
* B2 raw psycopg single-row ``INSERT`` + ``COMMIT`` (a uuid key and an
  event-sized bytea) at 1 and at 16 connections;
* B3 a bare ``Application.save()`` loop: the stock ``eventsourcing`` path,
  one new interview (one event) per transaction, one thread, no HTTP;
* B4 a raw ``kafka-python`` producer with the relay's settings
  (``producer_settings``: idempotent, acks=all, linger 5 ms) sending the
  relay's kind of messages (keys, envelope values, headers); measured by
  :mod:`bench.relay` on the relay's very messages, alternating with the relay;
* B5 a raw ``kafka-python`` consumer draining such a topic (no decoding, no
  database), counted from its first batch so the group join is left out;
* B6 raw batched ``INSERT .. ON CONFLICT DO UPDATE`` of 100,000 events into
  one bare view table (5,000 events per statement, latest row per interview);
* B7 raw paged reads (5,000 rows a page, nothing decoded) of an events table
  holding 100,000 interview events, in position order;
* B8 raw ``sqlite3`` single-row ``INSERT`` + ``COMMIT`` with the settings the
  ``eventsourcing`` SQLite recorder uses (WAL, synchronous=FULL, explicit BEGIN).

``run(ctx)`` measures them all up front, so a full run lists them first.
"""

from __future__ import annotations

import glob
import os
import re
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from .common import (
    ROOT,
    Context,
    cpu_budget,
    delete_topics,
    figure,
    free_port,
    fresh_database,
    process_cpu_seconds,
    python,
    server,
)
from .loadgen import Connection, run_load, window_rates

WARMUP = 2.0  # HTTP: the server's first requests are slow
RAW_WARMUP = 1.0
CLIENTS = 16
PAYLOAD = 512  # bytes: an interview event's stored state is about this size
PARTITIONS = 6
EVENTS_100K = 100_000


def run(ctx: Context) -> list[dict[str, Any]]:
    """Every baseline, measured now (they print and report themselves)."""
    fsync(ctx)
    noop_http(ctx)
    for conns in (1, CLIENTS):
        pg_commit(ctx, conns)
    app_save(ctx)
    sqlite_commit(ctx)
    if ctx.kafka_bootstrap:
        # B4 comes with bench.relay, which alternates it with the relay on the
        # very same messages; kafka_produce() stands in when that module does not run.
        kafka_drain(ctx)
    view_upserts(ctx)
    paged_reads(ctx)
    return []


# ------------------------------------------------------------------ shared fixtures


def raw_seconds(ctx: Context) -> float:
    """Windows of the raw database baselines: thousands of commits a second are
    steady within 3 s (a full run uses the suite's own window length)."""
    return ctx.seconds if ctx.full else min(ctx.seconds, 3.0)


def scratch_database(ctx: Context) -> str:
    """One fresh PostgreSQL database for the baselines, dropped when the run ends."""
    return ctx.once(
        "scratch_database",
        lambda: ctx.stack.enter_context(fresh_database(ctx.require_database(), "bench_base")),
    )


def scratch_dir(ctx: Context) -> Path:
    return ctx.once(
        "scratch_dir", lambda: Path(ctx.stack.enter_context(tempfile.TemporaryDirectory()))
    )


def event_store_100k(ctx: Context) -> Any:
    """An interviews container whose store holds 100,000 interview events
    (20,000 hiring flows of five events), built once per run; PostgreSQL when
    DATABASE_URL is set, else an SQLite file."""

    def build() -> Any:
        from services.interviews.bootstrap import InterviewsContainer
        from services.interviews.settings import InterviewsSettings

        from .audit import PER_INTERVIEW, fill

        url = (
            ctx.stack.enter_context(fresh_database(ctx.database_url, "bench_store"))
            if ctx.database_url
            else None
        )
        data_dir = Path(ctx.stack.enter_context(tempfile.TemporaryDirectory()))
        container = InterviewsContainer(
            InterviewsSettings(database_url=url, data_dir=data_dir, auth_secret="b" * 32)
        )
        ctx.stack.callback(container.close)
        started = time.perf_counter()
        fill(container.interviews(), EVENTS_100K // PER_INTERVIEW)
        print(
            f"  ({EVENTS_100K:,} events saved on {'pg' if url else 'sqlite'} "
            f"in {time.perf_counter() - started:.1f}s, shared by the run)",
            flush=True,
        )
        return container

    return ctx.once("event_store_100k", build)


# ------------------------------------------------------------------ B0 disk


def fsync(ctx: Context) -> dict[str, Any]:
    """B0: the disk's sync rate with PostgreSQL's wal_sync_method, by pg_test_fsync."""

    def measure() -> dict[str, Any]:
        import psycopg

        url = ctx.require_database()
        with psycopg.connect(url, autocommit=True) as conn:
            method = conn.execute("SHOW wal_sync_method").fetchone()[0]  # type: ignore[index]
            major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
            try:
                data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
            except psycopg.Error:
                data_dir = (ROOT / ".services" / "pg" / "data").resolve()
        binary = next(
            iter(sorted(glob.glob(f"/usr/lib/postgresql/{major}/bin/pg_test_fsync"))), None
        ) or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_test_fsync"))), None)
        if binary is None:
            raise RuntimeError("pg_test_fsync not found (Debian's postgresql package has it)")
        # Beside the data directory: the same disk, never inside the cluster's files.
        where = data_dir.parent if os.access(data_dir.parent, os.W_OK) else scratch_dir(ctx)
        rates = [
            _pg_test_fsync(binary, where / f"pg_test_fsync.{os.getpid()}", method)
            for _ in range(ctx.repetitions)
        ]
        print(f"  (pg_test_fsync on {where}, wal_sync_method={method})", flush=True)
        return figure(f"B0_pg_test_fsync_{method}", rates, "syncs/s")

    return ctx.once("B0", measure)


def _pg_test_fsync(binary: str, path: Path, method: str) -> float:
    """Runs pg_test_fsync until the first section reports ``method``, then stops it."""
    pattern = re.compile(rf"^\s+{re.escape(method)}\s+([\d.]+) ops/sec")
    proc = subprocess.Popen([binary, "-f", str(path), "-s", "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if match := pattern.match(line):
                return float(match.group(1))
        raise RuntimeError(f"pg_test_fsync printed no {method} line")
    finally:
        proc.terminate()
        proc.wait()
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------ B1 HTTP


def noop_http(ctx: Context) -> dict[str, Any]:
    """B1: a FastAPI endpoint doing nothing, served like the interviews API."""

    def measure() -> dict[str, Any]:
        port = free_port()
        body = {"job_id": "job-1"}

        async def scenario(conn: Connection, k: int, n: int) -> None:
            await conn.call("POST", "/noop", body)

        env = {"PORT": str(port), "WORKERS": str(ctx.workers)}
        log = scratch_dir(ctx) / "noop.log"
        with server([python(), "-m", "bench.noop_app"], port, env, log) as proc:
            before, client_before = process_cpu_seconds(proc.pid), time.process_time()
            rates, stats = run_load(
                "127.0.0.1", port, CLIENTS, scenario, WARMUP, ctx.seconds, ctx.repetitions
            )
            after, client = process_cpu_seconds(proc.pid), time.process_time() - client_before
        if before is not None and after is not None and stats.done:
            requests = len(stats.done)
            parties = {
                "server": (after - before) * 1000 / requests,
                "load generator": client * 1000 / requests,
            }
            print(cpu_budget("B1 budget", parties, "request"), flush=True)
        return figure(f"B1_http_noop_fastapi_{CLIENTS}clients_{ctx.workers}w", rates, "requests/s")

    return ctx.once("B1", measure)


# ------------------------------------------------------------------ B2 PostgreSQL


def pg_commit(ctx: Context, connections: int) -> dict[str, Any]:
    """B2: raw single-row INSERT + COMMIT, each connection in its own thread."""

    def measure() -> dict[str, Any]:
        rates = _insert_commit(
            scratch_database(ctx), connections, RAW_WARMUP, raw_seconds(ctx), ctx.repetitions
        )
        return figure(f"B2_raw_pg_insert_commit_{connections}conn", rates, "commits/s")

    return ctx.once(f"B2@{connections}", measure)


def _insert_commit(
    url: str, threads: int, warmup: float, seconds: float, windows: int
) -> list[float]:
    import psycopg

    table = f"bench_raw_{threads}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, payload bytea NOT NULL)")
    payload = os.urandom(PAYLOAD)
    done: list[list[float]] = [[] for _ in range(threads)]
    gate = threading.Barrier(threads + 1)
    until = [0.0]

    def worker(i: int) -> None:
        mine = done[i]
        with psycopg.connect(url) as conn:
            gate.wait()
            while time.monotonic() < until[0]:
                conn.execute(
                    f"INSERT INTO {table} (id, payload) VALUES (%s, %s)",
                    (uuid.uuid4(), payload),
                )
                conn.commit()
                mine.append(time.monotonic())

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start = time.monotonic()
    until[0] = start + warmup + seconds * windows
    gate.wait()
    for t in pool:
        t.join()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {table}")
    return window_rates([t for d in done for t in d], start + warmup, seconds, windows)


# ------------------------------------------------------------------ B3 eventsourcing


def app_save(ctx: Context) -> dict[str, Any]:
    """B3: the stock eventsourcing path, ``Application.save()`` of one new
    interview per transaction in a loop (one thread, no HTTP, no group commit)."""

    def measure() -> dict[str, Any]:
        from datetime import UTC, datetime, timedelta

        from services.interviews.bootstrap import InterviewsContainer
        from services.interviews.domain import Actor, CommandContext, Interview
        from services.interviews.settings import InterviewsSettings

        container = InterviewsContainer(
            InterviewsSettings(
                database_url=scratch_database(ctx),
                data_dir=scratch_dir(ctx),
                auth_secret="b" * 32,
            )
        )
        try:
            app = container.interviews()
            client = Actor("bench-client", "client")
            done: list[float] = []
            start = time.monotonic()
            until = start + RAW_WARMUP + raw_seconds(ctx) * ctx.repetitions
            n = 0
            while time.monotonic() < until:
                n += 1
                at = datetime.now(UTC)
                interview = Interview.invite(
                    CommandContext(client, at, f"b3-{n}", f"b3-{n}"),
                    interview_id=uuid.uuid4(),
                    job_id=f"b3-job-{n}",
                    freelancer_id=f"b3-fl-{n}",
                    message="We liked your profile; shall we talk about the job?",
                    expires_at=at + timedelta(days=7),
                )
                app.save(interview)
                done.append(time.monotonic())
        finally:
            container.close()
        rates = window_rates(done, start + RAW_WARMUP, raw_seconds(ctx), ctx.repetitions)
        return figure("B3_eventsourcing_app_save_loop_pg", rates, "saves/s")

    return ctx.once("B3", measure)


# ------------------------------------------------------------------ B4, B5 Kafka


def relay_like_messages(n: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """``n`` (key, value, headers) as the relay sends them: envelopes of hiring
    flows of five events, interleaved over 1,000 interviews at a time."""
    from datetime import UTC, datetime, timedelta

    from services.contracts import EventEnvelope
    from services.interviews.adapters.kafka_publisher import headers_for

    flow = (
        ("interview.invited", "client", {"message": "We liked your profile; shall we talk?"}),
        ("interview.accepted", "freelancer", {}),
        ("interview.started", "client", {"scheduled_at": "2026-12-01T10:00:00+00:00"}),
        (
            "interview.offer_extended",
            "client",
            {"amount": "1200.00", "currency": "EUR", "rate_type": "fixed"},
        ),
        ("interview.offer_accepted", "freelancer", {}),
    )
    out: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    start = datetime(2026, 11, 1, tzinfo=UTC)
    interviews = (n + len(flow) - 1) // len(flow)
    for block in range(0, interviews, 1000):
        for step, (type_, role, data) in enumerate(flow):
            for i in range(block, min(block + 1000, interviews)):
                if len(out) == n:
                    break
                client, freelancer = f"client-{i % 97}", f"freelancer-{i}"
                envelope = EventEnvelope.model_validate(
                    {
                        "id": uuid.uuid4(),
                        "type": type_,
                        "schema_version": 1,
                        "interview_id": uuid.UUID(int=i + 1),
                        "version": step + 1,
                        "position": len(out) + 1,
                        "occurred_at": start + timedelta(seconds=len(out)),
                        "actor": {"id": client if role == "client" else freelancer, "role": role},
                        "job_id": f"job-{i}",
                        "client_id": client,
                        "freelancer_id": freelancer,
                        "correlation_id": uuid.uuid4().hex,
                        "causation_id": uuid.uuid4().hex,
                        "data": data,
                    }
                )
                out.append(
                    (
                        str(envelope.interview_id).encode(),
                        envelope.to_bytes(),
                        headers_for(envelope),
                    )
                )
    return out


def kafka_events(ctx: Context) -> int:
    """A raw consumer drains tens of thousands of events a second: fewer than
    50,000 take well under a second, and fetch timing then decides the rate."""
    return 100_000 if ctx.full else 50_000


def _messages(ctx: Context) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    return ctx.once("relay_like_messages", lambda: relay_like_messages(kafka_events(ctx)))


def temporary_topic(ctx: Context, prefix: str, partitions: int = PARTITIONS) -> str:
    """A new topic (unlimited retention), deleted when the run ends."""
    from services.common.kafka import UNLIMITED_RETENTION, ensure_topics

    bootstrap = ctx.require_kafka()
    topic = f"{prefix}.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: (partitions, UNLIMITED_RETENTION)})
    ctx.stack.callback(delete_topics, bootstrap, [topic])
    return topic


def produce(bootstrap: str, topic: str, messages: list[Any], client_id: str) -> float:
    """Sends ``messages`` with the relay's producer settings; events/s including
    the producer's start (its first metadata fetch), as the relay's figure does."""
    from kafka import KafkaProducer

    from services.common.kafka import producer_settings

    started = time.perf_counter()
    producer = KafkaProducer(**producer_settings(bootstrap, client_id=client_id))
    for key, value, headers in messages:
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush()
    rate = len(messages) / (time.perf_counter() - started)
    producer.close()
    return rate


def kafka_produce(ctx: Context) -> dict[str, Any]:
    """B4: the raw producer with the relay's settings, the relay's kind of messages."""

    def measure() -> dict[str, Any]:
        bootstrap = ctx.require_kafka()
        messages = _messages(ctx)
        rates = [
            produce(bootstrap, temporary_topic(ctx, "bench.b4"), messages, "bench-b4")
            for _ in range(ctx.repetitions)
        ]
        return figure("B4_kafka_python_raw_produce", rates, "events/s")

    return ctx.once("B4", measure)


def drain(bootstrap: str, topic: str, n: int) -> float:
    """Events/s of a plain KafkaConsumer reading ``n`` messages, from its first batch."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    seen, first_count, t_first, t_last = 0, 0, 0.0, 0.0
    deadline = time.monotonic() + 300
    try:
        while seen < n and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=500)
            got = sum(len(messages) for messages in batches.values())
            if got:
                now = time.perf_counter()
                if not seen:
                    t_first, first_count = now, got
                seen += got
                t_last = now
    finally:
        consumer.close(autocommit=False)
    if seen < n:
        raise RuntimeError(f"raw consumer saw {seen} of {n}")
    return (n - first_count) / (t_last - t_first)


def kafka_drain(ctx: Context) -> dict[str, Any]:
    """B5: a raw consumer draining a topic of the relay's kind of messages."""

    def measure() -> dict[str, Any]:
        bootstrap = ctx.require_kafka()
        messages = _messages(ctx)
        topic = temporary_topic(ctx, "bench.b5")
        produce(bootstrap, topic, messages, "bench-b5-fill")
        rates = [drain(bootstrap, topic, len(messages)) for _ in range(ctx.repetitions)]
        return figure("B5_kafka_python_raw_drain", rates, "events/s")

    return ctx.once("B5", measure)


# ------------------------------------------------------------------ B6, B7 views and log


def view_upserts(ctx: Context) -> dict[str, Any]:
    """B6: 100,000 events upserted as (id, status, version, position) rows into a
    bare table, 5,000 events a statement: the least any view write costs."""

    def measure() -> dict[str, Any]:
        rows = _view_rows(EVENTS_100K)
        rates = [_upserts(ctx, rows) for _ in range(ctx.repetitions)]
        return figure("B6_raw_batched_upserts_100k", rates, "events/s")

    return ctx.once("B6", measure)


def _view_rows(n: int, flow: int = 5, window: int = 1000) -> list[dict[str, Any]]:
    """Events in position order: flows of five steps interleaved over 1,000 interviews."""
    rows: list[dict[str, Any]] = []
    interviews = n // flow
    for block in range(0, interviews, window):
        for step in range(flow):
            for i in range(block, min(block + window, interviews)):
                rows.append(
                    {
                        "interview_id": str(uuid.UUID(int=i + 1)),
                        "status": f"step-{step}",
                        "version": step + 1,
                        "position": len(rows) + 1,
                    }
                )
    return rows


def _upserts(ctx: Context, rows: list[dict[str, Any]]) -> float:
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import insert

    from services.common.db import create_engine

    md = sa.MetaData()
    table = sa.Table(
        f"raw_view_{uuid.uuid4().hex[:8]}",
        md,
        sa.Column("interview_id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    engine = create_engine(scratch_database(ctx), scratch_dir(ctx) / "unused.sqlite")
    try:
        md.create_all(engine)
        started = time.perf_counter()
        for i in range(0, len(rows), 5000):
            latest = {r["interview_id"]: r for r in rows[i : i + 5000]}
            stmt = insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=["interview_id"],
                set_={c: stmt.excluded[c] for c in ("status", "version", "position")},
                where=table.c.version < stmt.excluded.version,
            )
            with engine.begin() as conn:
                conn.execute(stmt, list(latest.values()))
        elapsed = time.perf_counter() - started
        md.drop_all(engine)
    finally:
        engine.dispose()
    return len(rows) / elapsed


def paged_reads(ctx: Context) -> dict[str, Any]:
    """B7: every row of a 100,000-event events table in position order, 5,000 a page."""

    def measure() -> dict[str, Any]:
        container = event_store_100k(ctx)
        store = "pg" if container.settings.database_url else "sqlite"
        rates = [
            EVENTS_100K / _timed(lambda: _paged_read(container)) for _ in range(ctx.repetitions)
        ]
        return figure(f"B7_raw_paged_read_100k_{store}", rates, "events/s")

    return ctx.once("B7", measure)


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _paged_read(container: Any, page: int = 5000) -> None:
    url = container.settings.database_url
    table = container.interviews().recorder.events_table_name
    connection: Any
    if url:
        import psycopg

        connection, key, mark = psycopg.connect(url), "notification_id", "%s"
    else:
        path = container.settings.data_dir / "interviews.sqlite"
        connection, key, mark = closing(sqlite3.connect(path)), "rowid", "?"
    query = (
        f"SELECT {key}, originator_id, originator_version, topic, state "
        f"FROM {table} WHERE {key} > {mark} ORDER BY {key} LIMIT {mark}"
    )
    rows, after = 0, 0
    with connection as conn:
        while True:
            got = conn.execute(query, (after, page)).fetchall()
            rows += len(got)
            if len(got) < page:
                break
            after = got[-1][0]
    # Job events share the table; the interviews' own are EVENTS_100K of them.
    assert rows >= EVENTS_100K, rows


# ------------------------------------------------------------------ B8 SQLite


def sqlite_commit(ctx: Context) -> dict[str, Any]:
    """B8: raw sqlite3 INSERT + COMMIT, one connection (SQLite has one writer),
    with the eventsourcing recorder's settings: WAL, synchronous=FULL, BEGIN."""

    def measure() -> dict[str, Any]:
        path = scratch_dir(ctx) / f"raw-{uuid.uuid4().hex[:6]}.sqlite"
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
            conn.execute("CREATE TABLE raw (id TEXT PRIMARY KEY, payload BLOB NOT NULL)")
            payload = os.urandom(PAYLOAD)
            done: list[float] = []
            start = time.monotonic()
            until = start + RAW_WARMUP + raw_seconds(ctx) * ctx.repetitions
            while time.monotonic() < until:
                conn.execute("BEGIN")
                conn.execute(
                    "INSERT INTO raw (id, payload) VALUES (?, ?)", (uuid.uuid4().hex, payload)
                )
                conn.execute("COMMIT")
                done.append(time.monotonic())
        finally:
            conn.close()
        print(f"  (raw sqlite3: journal_mode=WAL, synchronous={synchronous})", flush=True)
        rates = window_rates(done, start + RAW_WARMUP, raw_seconds(ctx), ctx.repetitions)
        return figure("B8_raw_sqlite_insert_commit", rates, "commits/s")

    return ctx.once("B8", measure)
