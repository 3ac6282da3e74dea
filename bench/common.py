"""What every bench module shares: the context, figures, fresh databases, servers.

A bench module exposes ``run(ctx) -> list[dict]``; each dict is a figure made
with :func:`figure` and printed with :func:`print_figure` as it is measured.
"""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse, urlunparse

if TYPE_CHECKING:
    import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
# Sender threads of command_to_effect (and its connections to the API).
SENDERS = 16
T = TypeVar("T")


@dataclass
class Context:
    """What the runner hands to every bench module.

    ``once(key, measure)`` is the run's cache: a baseline (see
    :mod:`bench.baselines`) or a shared fixture is measured or built the first
    time a module asks for it and reused by every later one. Figures measured
    through it are also collected for results.json (``take_new_figures``).
    Resources registered on ``stack`` live until the whole run ends.
    """

    database_url: str | None = field(default_factory=lambda: os.environ.get("DATABASE_URL"))
    kafka_bootstrap: str | None = field(
        default_factory=lambda: os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    )
    full: bool = field(default_factory=lambda: os.environ.get("BENCH_FULL") == "1")
    # Seconds per measured repetition; BENCH_SECONDS overrides.
    seconds: float = field(
        default_factory=lambda: float(
            os.environ.get("BENCH_SECONDS", "12" if os.environ.get("BENCH_FULL") == "1" else "5")
        )
    )
    repetitions: int = field(default_factory=lambda: max(3, int(os.environ.get("BENCH_REPS", "3"))))
    # Worker processes of the interviews API in every bench that serves it.
    workers: int = field(default_factory=lambda: int(os.environ.get("BENCH_WORKERS", "2")))
    cache: dict[str, Any] = field(default_factory=dict)
    stack: ExitStack = field(default_factory=ExitStack)
    _new_figures: list[dict[str, Any]] = field(default_factory=list)

    def require_database(self) -> str:
        if not self.database_url:
            raise SystemExit("this bench needs DATABASE_URL (PostgreSQL); run `make bench`")
        return self.database_url

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap:
            raise SystemExit("this bench needs KAFKA_BOOTSTRAP_SERVERS; run `make bench`")
        return self.kafka_bootstrap

    def once(self, key: str, measure: Callable[[], T]) -> T:
        """``measure()`` the first time ``key`` is asked for in this run, then the same value.

        A figure (a dict made by :func:`figure`) is printed and queued for
        results.json when it is first measured."""
        if key not in self.cache:
            value = measure()
            self.cache[key] = value
            if isinstance(value, dict) and "spread" in value and "unit" in value:
                print_figure(value)
                self._new_figures.append(value)
        return self.cache[key]  # type: ignore[no-any-return]

    def take_new_figures(self) -> list[dict[str, Any]]:
        new, self._new_figures = self._new_figures, []
        return new

    def close(self) -> None:
        self.stack.close()


def figure(
    name: str,
    values: Sequence[float],
    unit: str,
    *,
    baseline: str | None = None,
    baseline_value: float | None = None,
    goal: float | None = None,
    higher_is_better: bool = True,
    goal_text: str | None = None,
    value: float | None = None,
) -> dict[str, Any]:
    """The median of ``values`` (one per repetition; ``value`` overrides it, e.g.
    the last sample when that is the figure), its spread, and how it compares
    with a baseline.

    ``goal`` applies to ``ratio`` (value / baseline_value) when there is a
    baseline, otherwise to the value itself; ``goal_text`` says it in words
    for the table ("≥ 50% of B2@16").
    """
    if value is None:
        value = statistics.median(values)
    ratio = value / baseline_value if baseline_value else None
    measured = ratio if baseline_value else value
    met = None
    if goal is not None and measured is not None:
        met = measured >= goal if higher_is_better else measured <= goal
    if goal_text is None and goal is not None:
        sign = "≥" if higher_is_better else "≤"
        goal_text = f"{sign} {goal:g}x {baseline}" if baseline_value else f"{sign} {goal:g} {unit}"
    return {
        "name": name,
        "value": _round(value),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": _round(baseline_value) if baseline_value is not None else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "goal": goal,
        "goal_text": goal_text,
        "met": met,
        "spread": [_round(min(values)), _round(max(values))],
        "repetitions": len(values),
    }


def _round(x: float) -> float:
    return round(x, 3) if abs(x) < 10 else round(x, 1)


def split_quantile(samples: Sequence[float], q: float, parts: int = 3) -> list[float]:
    """The ``q`` quantile (0..1) of each of ``parts`` consecutive slices of
    ``samples``: a latency percentile with a spread over repetitions."""
    size = len(samples) // parts
    if size < 2:
        return [quantile(samples, q)] if samples else [float("nan")]
    return [quantile(samples[i * size : (i + 1) * size], q) for i in range(parts)]


def quantile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def print_figure(f: dict[str, Any]) -> None:
    low, high = f["spread"]
    line = f"  {f['name']:<44} {f['value']:>11,.1f} {f['unit']:<11} [{low:,.1f} .. {high:,.1f}]"
    if f["baseline"]:
        line += f"  vs {f['baseline']} {f['baseline_value']:,.1f}: ratio {f['ratio']:.2f}"
    if f["goal"] is not None:
        line += f"  goal {f.get('goal_text') or f['goal']}: {'met' if f['met'] else 'NOT MET'}"
    print(line, flush=True)


# ------------------------------------------------------------------ jobs
# A job exists before anyone is invited to it (DESIGN, "Jobs"): the benches
# register theirs as the marketplace's job service would.

BENCH_JOB_SERVICE = "bench-job-service"


def service_bearer(secret: str) -> dict[str, str]:
    """An Authorization header of the marketplace's job service (role ``service``)."""
    from services.common.auth import mint_token

    return {"Authorization": f"Bearer {mint_token(secret, BENCH_JOB_SERVICE, 'service')}"}


def register_jobs(base_url: str, secret: str, jobs: Sequence[tuple[str, str]]) -> None:
    """``PUT /jobs/{job_id}`` for each (job id, client id), 16 at a time."""
    import httpx

    headers = service_bearer(secret)
    local = threading.local()

    def register(job: tuple[str, str]) -> None:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = httpx.Client(base_url=base_url, timeout=30)
        answer = http.put(f"/jobs/{job[0]}", json={"client_id": job[1]}, headers=headers)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"registering job {job[0]}: {answer.status_code} {answer.text}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(register, jobs))


def register_job_in(app: Any, job_id: str, client_id: str) -> None:
    """The same straight on an ``InterviewsApplication`` (benches without HTTP)."""
    from datetime import UTC, datetime

    from services.interviews.domain import Actor, CommandContext

    ctx = CommandContext(Actor(BENCH_JOB_SERVICE, "service"), datetime.now(UTC), "bench", "bench")
    app.register_job(ctx, job_id, client_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_database(admin_url: str, prefix: str = "bench") -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(admin_url)._replace(path="/" + name))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def server(
    args: Sequence[str],
    port: int,
    env: dict[str, str],
    log_path: Path,
    ready_path: str = "/healthz",
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs ``args`` (a server listening on ``port``) until the block ends."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(args), env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}; see {log_path}")
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}{ready_path}", timeout=2
                    ) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not become ready; see {log_path}")
                time.sleep(0.1)
            yield proc
            if proc.poll() is not None:
                raise RuntimeError(f"server exited early with {proc.returncode}; see {log_path}")
        finally:
            if proc.poll() is not None:
                print(f"  !! server exited with {proc.returncode}; its log ends:", flush=True)
                for line in log_path.read_text(errors="replace").splitlines()[-15:]:
                    print(f"  !! {line}", flush=True)
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc), e.g. uvicorn's worker processes."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def process_cpu_seconds(pid: int, tree: bool = True) -> float | None:
    """User + system CPU time of a process and (``tree``) its descendants, None
    where /proc is missing."""
    total = 0.0
    for p in process_tree(pid) if tree else [pid]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                return None
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def postgres_cpu_seconds() -> float:
    """User + system CPU time of every PostgreSQL process on the machine (its
    server and backends, by process name): the database's share of a budget,
    read before and after a run. The bench's PostgreSQL is the only one here."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue  # gone meanwhile
        total += process_cpu_seconds(int(entry.name), tree=False) or 0.0
    return total


def cpu_budget(label: str, per_unit: dict[str, float], unit: str) -> str:
    """One line saying where each ``unit``'s CPU went (ms per party) and the rate
    the machine's cores allow when they do nothing else."""
    total = sum(per_unit.values())
    cores = os.cpu_count() or 1
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in per_unit.items())
    ceiling = cores * 1000 / total if total > 0 else float("inf")
    return (
        f"  ({label}: CPU ms per {unit}: {parts}; {total:.2f} in all, so {cores} cores allow"
        f" at most {ceiling:,.0f} {unit}s/s)"
    )


def rss_mb(pid: int) -> list[float]:
    """Resident set size (MB) of ``pid`` and each of its descendants."""
    sizes = []
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return sizes


def python() -> str:
    return sys.executable


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Deletes those of ``topics`` that exist; cleanup only, so it never raises."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        doomed = [t for t in topics if t in set(admin.list_topics())]
        if doomed:
            admin.delete_topics(doomed)
    except Exception:  # cleanup only
        pass
    finally:
        admin.close()


def command_to_effect(
    admin_url: str,
    bootstrap: str,
    seconds: float,
    *,
    rate: float,
    service: str,
    worker: Sequence[str],
    effect: str,
    new_rows: Callable[[sa.Connection, int], Sequence[Any]],
    missed_rows: Callable[[sa.Connection, list[str]], Sequence[Any]] | None = None,
    stages: dict[str, dict[str, float]] | None = None,
    effect_table: str | None = None,
) -> tuple[list[float], list[float], int]:
    """Latency from an HTTP command to a consumer's effect: (to the effect, to
    the topic, commands whose effect never showed).

    Invitations are sent at ``rate`` commands/s (open loop, for ``seconds``) to
    ``interviewctl serve interviews`` on PostgreSQL; the relay publishes them
    to Kafka; the ``worker`` process (``python`` arguments) of ``service``
    (its ``{SERVICE}_DATABASE_URL`` and ``{SERVICE}_CONSUMER_GROUP``) writes
    the ``effect`` into a database of its own. A 2 ms poll of that database,
    ``new_rows(conn, after)``, returns the (position, interview_id) rows past
    the last position seen; ``missed_rows(conn, ids)``, if given, looks up
    every 50 ms the answered invitations not seen yet (for effects that do
    not commit in position order).

    The measuring process shares the machine's cores with what it measures, so
    it keeps its own work small. The poll is one statement on one connection
    held in autocommit (a connection from the pool for each poll costs a ping,
    a BEGIN and a ROLLBACK: four round trips 500 times a second, on the same
    PostgreSQL the services use). The time each event reached the topic (how
    much of the latency is the relay's share) is the broker's own: the bench
    creates the topic with ``message.timestamp.type=LogAppendTime``, so each
    message carries the wall-clock millisecond the broker appended it, read
    after the run, instead of a consumer tailing the topic in this process
    during it (a third of the process's CPU, and threads that delay its clock
    readings). It is converted to this process's clock; truncated to the
    millisecond, it reads on average half a millisecond early.

    With ``stages`` (a dict filled in place: stage -> interview id -> time on
    this process's clock), each command's path is broken down for
    ``bench.view_tail``: ``sent``, ``acked`` (the HTTP answer), ``stored``
    (the event's insert into the store, stamped by a trigger), ``kafka`` (the
    broker's append), ``applied`` (the row's insert into ``effect_table`` in
    the consumer's transaction) and ``seen`` (the poll). The triggers are
    installed after the warm-up; they cost each insert one more row.
    """
    import httpx
    import sqlalchemy as sa

    from services.common.auth import mint_token
    from services.common.db import create_engine
    from services.common.kafka import (
        DLQ_TOPIC_CONFIG,
        UNLIMITED_RETENTION,
        dlq_topic_for,
        ensure_topics,
    )
    from services.common.settings import CommonSettings

    secret = secrets.token_urlsafe(32)
    topic = f"bench-{service}-latency-{uuid.uuid4().hex[:8]}"
    port = free_port()
    prefix = service.upper()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        stack.callback(delete_topics, bootstrap, [topic, dlq_topic_for(topic)])
        # Before the relay or the consumer makes it: with the broker's append times.
        layout = CommonSettings().topic_layout()
        ensure_topics(
            bootstrap,
            {
                topic: (layout.partitions, UNLIMITED_RETENTION | LOG_APPEND_TIME),
                dlq_topic_for(topic): (1, DLQ_TOPIC_CONFIG),
            },
            replication_factor=layout.replication_factor,
        )
        events_url = stack.enter_context(fresh_database(admin_url, "bench_events"))
        effects_url = stack.enter_context(fresh_database(admin_url, f"bench_{service}"))
        env = {
            "DATABASE_URL": events_url,
            f"{prefix}_DATABASE_URL": effects_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EVENTS_TOPIC": topic,
            f"{prefix}_CONSUMER_GROUP": f"bench-latency-{uuid.uuid4().hex[:8]}",
            "AUTH_SECRET": secret,
            "DATA_DIR": tmp,
            "LOG_LEVEL": os.environ.get("BENCH_SERVICE_LOG_LEVEL", "WARNING"),
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
        for name, args in (("relay", ["-m", "services.cli", "relay"]), ("worker", worker)):
            log = stack.enter_context(open(Path(tmp) / f"{name}.log", "wb"))
            proc = subprocess.Popen(
                [python(), *args],
                env=os.environ | env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(stop_process, proc)

        engine = create_engine(effects_url, Path(tmp) / "unused.sqlite")
        stack.callback(engine.dispose)
        seen: dict[str, float] = {}
        polls: list[float] = []  # when each poll ended: the poller's own cadence
        answered: set[str] = set()
        stop = threading.Event()

        def watch() -> None:  # when each invitation's effect became visible (committed)
            last, last_sweep = 0, 0.0
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                while not stop.is_set():
                    try:
                        rows = list(new_rows(conn, last))
                        if missed_rows is not None and time.perf_counter() - last_sweep > 0.05:
                            last_sweep = time.perf_counter()
                            behind = [i for i in list(answered) if i not in seen][:1000]
                            if behind:
                                rows += missed_rows(conn, behind)
                    except sa.exc.ProgrammingError:  # the consumer has not made its tables yet
                        rows = []
                    now = time.perf_counter()
                    for position, interview_id in rows:
                        seen.setdefault(interview_id, now)
                        last = max(last, position)
                    polls.append(now)
                    time.sleep(0.002)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        stack.callback(watcher.join, 5)
        stack.callback(stop.set)

        headers = {
            c: {"Authorization": f"Bearer {mint_token(secret, f'c-{c}', 'client')}"}
            for c in range(20)
        }
        # One client for every sender thread (httpx.Client is thread-safe), made
        # and connected before the measured run: a client per thread made on its
        # first command cost 50 ms of CPU each (its TLS context), mostly holding
        # the GIL, so the first repetition charged up to 16 of those, and the
        # pool's threads starting up, to the commands and to the poller's clock.
        client = stack.enter_context(
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                limits=httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS),
            )
        )

        def invite(k: int) -> tuple[str, float] | None:
            sent = time.perf_counter()
            answer = client.post(
                "/interviews",
                json={"job_id": f"job-{k}", "freelancer_id": f"f-{k}"},
                headers=headers[k % 20],
                timeout=10,
            )
            if answer.status_code != 201:
                return None
            interview_id = str(answer.json()["id"])
            answered.add(interview_id)
            if stages is not None:
                stages.setdefault("acked", {})[interview_id] = time.perf_counter()
            return interview_id, sent

        count = int(rate * seconds)
        register_jobs(
            f"http://127.0.0.1:{port}",
            secret,
            [(f"job-{k}", f"c-{k % 20}") for k in range(-1, count)],
        )
        pool = stack.enter_context(ThreadPoolExecutor(SENDERS))
        # Every sender thread started and every connection opened (a readiness
        # probe each, all at once), so the measured run starts warm.
        started = threading.Barrier(SENDERS)

        def connect() -> None:
            started.wait(10)
            client.get("/readyz", timeout=10).raise_for_status()

        for f in [pool.submit(connect) for _ in range(SENDERS)]:
            f.result()
        # Warm up the whole path (the consumer joins its group, tables exist).
        warm = invite(-1)
        assert warm is not None, "the interview service refused the warm-up command"
        deadline = time.monotonic() + 90
        while warm[0] not in seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {effect} after 90 s; see the logs in {tmp}")
            time.sleep(0.05)
        if stages is not None:
            _stamp_inserts(events_url, "interviews_events", "originator_id")
            if effect_table:
                _stamp_inserts(effects_url, effect_table, "interview_id")

        print(f"  ({count} invitations at {rate:.0f}/s, open loop)", flush=True)
        start = time.perf_counter()
        futures = []
        for k in range(count):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(invite, k))
        sent = [f.result() for f in futures]
        deadline = time.monotonic() + 30
        ok = [s for s in sent if s is not None]
        while any(i not in seen for i, _ in ok) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        on_kafka = appended_at(bootstrap, topic)
        if keep := os.environ.get("BENCH_KEEP_LOGS"):
            import shutil

            skip = shutil.ignore_patterns("*.sqlite*")
            shutil.copytree(tmp, keep, dirs_exist_ok=True, ignore=skip)
        latencies = [seen[i] - t for i, t in ok if i in seen]
        to_kafka = [on_kafka[i] - t for i, t in ok if i in on_kafka]
        lost = len(sent) - len(latencies)
        if stages is not None:
            stages["sent"] = {i: t for i, t in ok}
            stages["kafka"] = on_kafka
            stages["seen"] = dict(seen)
            stages["polls"] = dict(enumerate(polls))
            stages["stored"] = _stamps(events_url)
            if effect_table:
                stages["applied"] = _stamps(effects_url)
    return latencies, to_kafka, lost


def _stamp_inserts(url: str, table: str, key: str) -> None:
    """A trigger that notes when each row of ``table`` was inserted (``bench_stamps``)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_stamps (key text PRIMARY KEY, at timestamptz)"
        )
        conn.execute(
            "CREATE OR REPLACE FUNCTION bench_stamp() RETURNS trigger AS $$ BEGIN "
            f"INSERT INTO bench_stamps VALUES (NEW.{key}::text, clock_timestamp()) "
            "ON CONFLICT DO NOTHING; RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        conn.execute(
            f"CREATE TRIGGER bench_stamp AFTER INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION bench_stamp()"
        )


def _stamps(url: str) -> dict[str, float]:
    """The insert times ``_stamp_inserts`` noted, on this process's perf_counter clock."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        query = "SELECT key, extract(epoch FROM at)::float8 FROM bench_stamps"
        rows = conn.execute(query).fetchall()
    wall_minus_perf = time.time() - time.perf_counter()
    return {key: at - wall_minus_perf for key, at in rows}


LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


def appended_at(bootstrap: str, topic: str) -> dict[str, float]:
    """When the broker appended each key's first message to ``topic`` (created with
    ``LOG_APPEND_TIME``), on this process's ``time.perf_counter`` clock."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, group_id=None
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        first: dict[str, int] = {}
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for messages in consumer.poll(timeout_ms=1000).values():
                for m in messages:
                    if m.timestamp_type != 1:
                        raise RuntimeError(f"{topic} has no broker append times")
                    first.setdefault(m.key.decode(), m.timestamp)
    finally:
        consumer.close()
    wall_minus_perf = time.time() - time.perf_counter()
    return {key: ms / 1000 - wall_minus_perf for key, ms in first.items()}


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the service process on ``port`` answers ``/readyz`` with 200 (90 s at
    most); raises, naming its log, if it exits or never gets ready."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"a service exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"a service did not become ready; see {log}")
