"""Personal data (issue 17): the cost of sealing, and the time an erasure takes.

**Sealing.** The command rate with encryption against the same run without it.

One interviews application on a fresh PostgreSQL database, 16 threads running
the hiring flow through its use cases (every invitation and offer carries a
message, declines and cancellations a reason). Short windows alternate (ABBA):
sealing off (no key issuer: text recorded as written), then on (each author's
data key, AES-256-GCM), so both see the same database size and machine load;
each of the 3 repetitions is 15 pairs, its rate all its commands over all its
time (a window of a tenth of BENCH_SECONDS: the load of a shared machine
drifts over seconds by more than the cost measured). Every
author's data key is issued before the windows (a key is created once in an
author's life, by their first command with text): the figure is the steady
cost of sealing. Goal: the sealed rate is at least 95% of the plain one (a
cost of at most 5%).

**Erasure.** The whole system as in production, each service its own process
on PostgreSQL and Kafka (as :mod:`bench.memory` starts it): one client has
written 10,000 events with their words in them (5,000 invitations with a
message, each cancelled with a reason), the relay has published them and the
projections and notifications consumers have applied them (their time to do
so, from their start, is the baseline). Then ``POST /admin/erasures`` for that
client, and ``GET /admin/erasures/{id}`` every 50 ms until it answers
``done``: the figure is that time. It includes the wait every consumer makes
on purpose (``KEY_CACHE_TTL_SECONDS`` after the keys were destroyed, default
5 s, so no process still caches a key) and up to one ``ERASURE_POLL_SECONDS``;
the rest is each consumer redacting its copies. Reported, no goal.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from services.common.db import create_engine
from services.interviews.adapters.key_encryption import encode_kek
from services.interviews.adapters.key_tables import ERASURE_REPORTS
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Actor, CommandContext, DomainError
from services.interviews.settings import InterviewsSettings

from .common import (
    ROOT,
    Context,
    delete_topics,
    figure,
    free_port,
    fresh_database,
    print_figure,
    python,
    stop_process,
    wait_ready,
)

THREADS = 16
FREELANCERS = 25  # per thread
WARMUP = 2.0
# Each repetition alternates this many (plain, sealed) pairs of short windows, a
# tenth of BENCH_SECONDS each (0.5 s in the quick suite).
PAIRS_PER_REPETITION = 15
ERASED_EVENTS = 10_000  # the erased person's events, each holding their words
KEY_CACHE_TTL_SECONDS = 5.0  # the default: consumers wait this long before redacting
CONSUMERS = ("projections", "notifications")
INVITED_PER_JOB = 50  # freelancers invited to each of the person's jobs


def run(ctx: Context) -> list[dict[str, Any]]:
    admin_url = ctx.require_database()
    window = ctx.seconds / 10
    pairs = ctx.repetitions * PAIRS_PER_REPETITION
    print(
        f"  ({THREADS} threads on the application, {ctx.repetitions} repetitions of "
        f"{PAIRS_PER_REPETITION} x (plain, sealed) windows of {window:.1f}s)",
        flush=True,
    )
    with fresh_database(admin_url) as url, tempfile.TemporaryDirectory() as tmp:
        # Many short alternating windows: on a shared machine the load drifts
        # between windows by more than the cost measured.
        windows = sealing_windows(url, Path(tmp), window, pairs)
    plain, sealed, cpu = _per_repetition(windows, ctx.repetitions)
    base = figure("commands_plain_text_pg", plain, "commands/s")
    print_figure(base)
    cost = figure(
        "commands_sealed_text_pg",
        sealed,
        "commands/s",
        baseline=base["name"],
        baseline_value=base["value"],
        goal=0.95,
        goal_text="≥ 95% of the same run without encryption",
    )
    print_figure(cost)
    # This process's CPU per command: steadier than a rate on a shared machine.
    cpu_plain = figure("cpu_per_command_plain_text", cpu[0], "ms")
    cpu_sealed = figure(
        "cpu_per_command_sealed_text",
        cpu[1],
        "ms",
        baseline=cpu_plain["name"],
        baseline_value=cpu_plain["value"],
        goal=1.05,
        higher_is_better=False,
        goal_text="≤ 105% of the same run without encryption",
    )
    print_figure(cpu_plain)
    print_figure(cpu_sealed)
    return [base, cost, cpu_plain, cpu_sealed, *erasure_figures(ctx)]


def erasure_figures(ctx: Context) -> list[dict[str, Any]]:
    """Time from an erasure request to ``done`` with 10,000 events of the person."""
    admin_url = ctx.require_database()
    bootstrap = ctx.require_kafka()
    print(
        f"  (erasure of a client with {ERASED_EVENTS:,} events, services as processes on "
        "PostgreSQL and Kafka)",
        flush=True,
    )
    applied, erased, done_after = erasure_time(admin_url, bootstrap, ctx.workers)
    base = figure("consumers_apply_10k_events_of_one_person", [applied], "s")
    print_figure(base)
    erasure = figure(
        "erasure_request_to_done_10k_events",
        [erased],
        "s",
        baseline=base["name"],
        baseline_value=base["value"],
        goal_text=f"reported (includes the {KEY_CACHE_TTL_SECONDS:g} s key cache wait)",
    )
    print_figure(erasure)
    print(
        "  (done per service, after the request: "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(done_after.items()))
        + ")",
        flush=True,
    )
    return [base, erasure]


def erasure_time(
    admin_url: str, bootstrap: str, workers: int
) -> tuple[float, float, dict[str, float]]:
    """(seconds for the consumers to apply the person's events from their start,
    seconds from ``POST /admin/erasures`` to ``done``, each service's report
    after the request)."""
    from services.common.auth import mint_token

    secret = secrets.token_urlsafe(32)
    kek = encode_kek(os.urandom(32))
    topic = f"bench.erasure.{uuid.uuid4().hex[:8]}"
    groups = {s: f"bench-erasure-{s}-{uuid.uuid4().hex[:8]}" for s in CONSUMERS}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stack.callback(delete_topics, bootstrap, [topic, f"{topic}.dlq"])
        events_url = stack.enter_context(fresh_database(admin_url, "bench_erasure_events"))
        urls = {
            "projections": stack.enter_context(fresh_database(admin_url, "bench_erasure_views")),
            "notifications": stack.enter_context(fresh_database(admin_url, "bench_erasure_inbox")),
        }
        ports = {name: free_port() for name in ("interviews", "projections", "notifications")}
        env = {
            "DATABASE_URL": events_url,
            "PROJECTIONS_DATABASE_URL": urls["projections"],
            "NOTIFICATIONS_DATABASE_URL": urls["notifications"],
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EVENTS_TOPIC": topic,
            "PROJECTIONS_CONSUMER_GROUP": groups["projections"],
            "NOTIFICATIONS_CONSUMER_GROUP": groups["notifications"],
            "AUTH_SECRET": secret,
            "KEY_ENCRYPTION_KEY": kek,
            "KEY_CACHE_TTL_SECONDS": f"{KEY_CACHE_TTL_SECONDS:g}",
            "DATA_DIR": str(tmp),
            "LOG_LEVEL": "WARNING",
            "RELAY_METRICS_PORT": "0",
            "KEY_SERVICE_URL": f"http://127.0.0.1:{ports['interviews']}",
        }
        client = f"erasure-client-{uuid.uuid4().hex[:6]}"
        began = time.perf_counter()
        _write_history(events_url, tmp, kek, client)
        print(f"  (history written in {time.perf_counter() - began:.1f} s)", flush=True)

        def start(name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
            log = stack.enter_context(open(tmp / f"{name}.log", "wb"))
            proc = subprocess.Popen(
                [python(), "-m", "services.cli", *args],
                env=os.environ | env | extra,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(stop_process, proc)
            return proc

        interviews = start(
            "interviews",
            *("serve", "interviews", "--port", str(ports["interviews"]), "--workers", str(workers)),
            KAFKA_BOOTSTRAP_SERVERS="",
        )
        wait_ready(ports["interviews"], interviews, tmp / "interviews.log")
        start("relay", "relay")
        published = _wait_published(bootstrap, topic, ERASED_EVENTS)
        started = time.perf_counter()
        for name in CONSUMERS:
            start(name, "serve", name, "--port", str(ports[name]))
        engines = {name: create_engine(url, tmp / "unused.sqlite") for name, url in urls.items()}
        for engine in engines.values():
            stack.callback(engine.dispose)
        _wait_applied(engines, groups, topic, published, tmp)
        applied = time.perf_counter() - started

        admin = {"Authorization": f"Bearer {mint_token(secret, 'bench-admin', 'admin', 3600)}"}
        base = f"http://127.0.0.1:{ports['interviews']}"
        sent = time.perf_counter()
        accepted = _call(
            "POST",
            f"{base}/admin/erasures",
            admin,
            {"subject_id": client, "reason": "bench: the person asked to be forgotten"},
        )
        deadline = sent + 300
        while True:
            answer = _call("GET", f"{base}/admin/erasures/{accepted['id']}", admin)
            if answer["status"] == "done":
                erased = time.perf_counter() - sent
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the erasure is not done after 300 s: {answer}; logs in {tmp}")
            time.sleep(0.05)
        requested = datetime.fromisoformat(answer["requested_at"])
        events = create_engine(events_url, tmp / "unused.sqlite")
        stack.callback(events.dispose)
        with events.connect() as conn:
            reports = conn.execute(
                sa.select(ERASURE_REPORTS.c.service, ERASURE_REPORTS.c.done_at).where(
                    ERASURE_REPORTS.c.erasure_id == accepted["id"]
                )
            ).all()
        done_after = {
            service: (_utc(done_at) - requested).total_seconds() for service, done_at in reports
        }
    return applied, erased, done_after


def _write_history(events_url: str, tmp: Path, kek: str, client_id: str) -> None:
    """The client's 10,000 events: invitations with a message (50 freelancers per
    job), each cancelled with a reason, written through the use cases (16 threads)
    on the events database."""
    container = InterviewsContainer(
        InterviewsSettings(
            database_url=events_url,
            data_dir=tmp,
            auth_secret="bench" * 8,
            key_encryption_key=kek,
        )
    )
    try:
        app = container.interviews()
        client = Actor(client_id, "client")
        service = Actor("bench-jobs", "service")

        def ctx(actor: Actor) -> CommandContext:
            return CommandContext(actor, datetime.now(UTC), "bench", "bench")

        invitations = ERASED_EVENTS // 2
        jobs = -(-invitations // INVITED_PER_JOB)

        def one(n: int) -> None:  # neighbours on different jobs: no wait on a job's lock
            iid = app.invite(
                ctx(client),
                job_id=f"erasure-job-{n % jobs}",
                freelancer_id=f"erasure-fl-{n // jobs}",
                message=f"Dear candidate {n}, we read your profile and would like to talk.",
            ).id
            app.cancel(ctx(client), iid, f"The budget for opening {n} was withdrawn, sorry.")

        for j in range(jobs):
            app.register_job(ctx(service), f"erasure-job-{j}", client.id)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(invitations)))
    finally:
        container.close()


def _utc(at: Any) -> datetime:
    at = datetime.fromisoformat(at) if isinstance(at, str) else at
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _call(
    method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={**headers, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def _wait_published(bootstrap: str, topic: str, at_least: int) -> int:
    """Until the relay has published at least ``at_least`` messages and stopped; their count."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","))
    try:
        deadline, last, steady_since = time.monotonic() + 300, -1, time.monotonic()
        while time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            total = sum(ends.values())
            if total != last:
                last, steady_since = total, time.monotonic()
            elif total >= at_least and time.monotonic() - steady_since > 1.0:
                return total
            time.sleep(0.2)
    finally:
        consumer.close()
    raise RuntimeError(f"the relay published {last} of {at_least} events in 300 s")


def _wait_applied(
    engines: dict[str, sa.Engine], groups: dict[str, str], topic: str, total: int, tmp: Path
) -> None:
    """Until each consumer's committed offsets cover the ``total`` messages of ``topic``."""
    deadline = time.monotonic() + 600
    behind = dict.fromkeys(engines, total)
    while time.monotonic() < deadline:
        for name, engine in engines.items():
            try:
                with engine.connect() as conn:
                    done = conn.execute(
                        sa.text(
                            "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets "
                            'WHERE "group" = :group AND topic = :topic'
                        ),
                        {"group": groups[name], "topic": topic},
                    ).scalar_one()
            except sa.exc.ProgrammingError:  # the consumer has not created its tables yet
                done = 0
            behind[name] = total - int(done)
        if all(left <= 0 for left in behind.values()):
            return
        time.sleep(0.05)
    raise RuntimeError(f"consumers still behind after 600 s: {behind}; logs in {tmp}")


def sealing_windows(url: str, tmp: Path, seconds: float, pairs: int) -> list[Window]:
    """``pairs`` pairs of alternating windows without and with sealing (ABBA order):
    the commands each completed, its length and this process's CPU time."""
    container = InterviewsContainer(
        InterviewsSettings(
            database_url=url,
            data_dir=tmp,
            auth_secret="bench" * 8,
            key_encryption_key=encode_kek(os.urandom(32)),
        )
    )
    try:
        app = container.interviews()
        keys = app.keys
        assert keys is not None
        counter = [0]
        lock = threading.Lock()
        stop = threading.Event()
        threads = [
            threading.Thread(target=_flow, args=(app, k, counter, lock, stop), daemon=True)
            for k in range(THREADS)
        ]
        for k in range(THREADS):
            for subject in _authors(k):
                keys.key_for(subject)
        app.keys = None
        for t in threads:
            t.start()
        time.sleep(WARMUP)
        windows: list[Window] = []
        for i in range(pairs):
            pair = ((False, None), (True, keys))
            for sealing, issuer in pair if i % 2 == 0 else pair[::-1]:
                app.keys = issuer
                with lock:
                    start, t0, c0 = counter[0], time.monotonic(), time.process_time()
                time.sleep(seconds)
                with lock:
                    done, t1, c1 = counter[0], time.monotonic(), time.process_time()
                windows.append(Window(sealing, done - start, t1 - t0, c1 - c0))
        stop.set()
        for t in threads:
            t.join(30)
        return windows
    finally:
        container.close()


@dataclass(frozen=True)
class Window:
    sealing: bool
    commands: int
    seconds: float
    cpu_seconds: float


def _per_repetition(
    windows: list[Window], repetitions: int
) -> tuple[list[float], list[float], tuple[list[float], list[float]]]:
    """Per repetition (consecutive pairs of windows): the plain and sealed command
    rates (all its commands over all its time) and CPU milliseconds per command."""
    size = len(windows) // repetitions
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for r in range(repetitions):
        part = windows[r * size : (r + 1) * size]
        for sealing in (False, True):
            mine = [w for w in part if w.sealing == sealing]
            commands = sum(w.commands for w in mine)
            rates[sealing].append(commands / sum(w.seconds for w in mine))
            cpu[sealing].append(sum(w.cpu_seconds for w in mine) * 1000 / max(commands, 1))
    return rates[False], rates[True], (cpu[False], cpu[True])


def _authors(k: int) -> list[str]:
    """The users thread ``k`` of :func:`_flow` writes text as."""
    return [f"bench-client-{k}", *(f"bench-fl-{k}-{n}" for n in range(FREELANCERS))]


def _flow(
    app: Any, k: int, counter: list[int], lock: threading.Lock, stop: threading.Event
) -> None:
    """The hiring flow of bench.commands, on the use cases, until ``stop``."""
    rng = random.Random(k)
    client = Actor(f"bench-client-{k}", "client")
    service = Actor("bench-jobs", "service")
    run_id = uuid.uuid4().hex[:6]
    n = 0
    offer: dict[str, Any] = {"amount": Decimal("1200.00"), "currency": "EUR", "rate_type": "fixed"}

    def ctx(actor: Actor) -> CommandContext:
        return CommandContext(actor, datetime.now(UTC), "bench", "bench")

    def did(commands: int = 1) -> None:
        with lock:
            counter[0] += commands

    while not stop.is_set():
        n += 1
        freelancer = Actor(f"bench-fl-{k}-{n % FREELANCERS}", "freelancer")
        job = f"job-{run_id}-{k}-{n}"
        try:
            app.register_job(ctx(service), job, client.id)
            iid = app.invite(
                ctx(client),
                job_id=job,
                freelancer_id=freelancer.id,
                message="We liked your profile; shall we talk about the job?",
            ).id
            did(2)
            x = rng.random()
            if x < 0.1:
                app.decline(ctx(freelancer), iid, "not available")
                did()
                continue
            if x < 0.2:
                app.cancel(ctx(client), iid, "position filled")
                did()
                continue
            app.accept(ctx(freelancer), iid)
            did()
            if x < 0.8:
                app.start(ctx(client), iid, datetime.now(UTC) + timedelta(days=30))
                did()
            app.extend_offer(ctx(client), iid, **offer, message="Welcome aboard, we hope")
            did()
            if x >= 0.8:
                app.decline_offer(ctx(freelancer), iid, "too low")
                app.extend_offer(ctx(client), iid, **{**offer, "amount": Decimal("1500.00")})
                did(2)
            app.accept_offer(ctx(freelancer), iid)
            did()
        except DomainError:
            continue  # a flow cut short by a deadline: start the next one
