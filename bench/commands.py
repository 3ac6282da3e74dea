"""Commands per second over HTTP against PostgreSQL, next to the raw
single-row INSERT+COMMIT rate at the same concurrency (issue 2).

Three figures measured in one run, each as three consecutive windows after a
warm-up (median and min/max reported):

* raw PostgreSQL: 16 threads, each with its own connection, inserting one row
  (uuid primary key, a bytea payload the size of an event) and committing;
* a no-op FastAPI endpoint under the same load generator (the HTTP ceiling);
* the interview API (``interviewctl serve interviews``, fresh database) under
  16 keep-alive clients running the hiring flow: invite, accept, start, offer,
  a declined and revised offer now and then, hire; some invitations declined
  or cancelled.
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from .common import (
    Context,
    figure,
    free_port,
    fresh_database,
    print_figure,
    process_cpu_seconds,
    python,
    server,
)
from .loadgen import Connection, run_load, window_rates

CLIENTS = 16
WARMUP = 3.0
PAYLOAD = 512  # bytes; an interview event's JSON state is about this size
FREELANCERS_PER_CLIENT = 25


def run(ctx: Context) -> list[dict[str, Any]]:
    admin_url = ctx.require_database()
    seconds = ctx.seconds * (2 if ctx.full else 1)
    windows = ctx.repetitions
    figures: list[dict[str, Any]] = []
    print(
        f"  ({CLIENTS} clients/connections, {WARMUP:.0f}s warm-up, "
        f"{windows} x {seconds:.0f}s windows)",
        flush=True,
    )
    with fresh_database(admin_url) as url, tempfile.TemporaryDirectory() as tmp:
        raw = raw_insert_commit(url, CLIENTS, WARMUP, seconds, windows)
        raw_fig = figure(f"raw_pg_insert_commit_{CLIENTS}conn", raw, "commits/s")
        print_figure(raw_fig)
        figures.append(raw_fig)

        noop, noop_cpu_ms = noop_http(Path(tmp), WARMUP, min(seconds, 5.0), windows)
        noop_fig = figure(f"http_noop_fastapi_{CLIENTS}clients", noop, "requests/s")
        print_figure(noop_fig)
        figures.append(noop_fig)

        rates, latencies, errors, cpu_ms = interview_commands(
            url, Path(tmp), WARMUP, seconds, windows
        )
        median_raw = statistics.median(raw)
        cmd_fig = figure(
            f"http_commands_{CLIENTS}clients_pg",
            rates,
            "commands/s",
            baseline=raw_fig["name"],
            baseline_value=median_raw,
            goal=0.5,
        )
        print_figure(cmd_fig)
        figures.append(cmd_fig)
        vs_noop = figure(
            "http_commands_vs_noop",
            rates,
            "commands/s",
            baseline=noop_fig["name"],
            baseline_value=statistics.median(noop),
        )
        print_figure(vs_noop)
        figures.append(vs_noop)
        if latencies:
            qs = statistics.quantiles(latencies, n=100)
            for name, value in (("p50", qs[49]), ("p99", qs[98])):
                f = figure(f"http_command_latency_{name}", [value * 1000], "ms")
                print_figure(f)
                figures.append(f)
        # Server CPU per request does not depend on what else runs on the machine;
        # with the GIL, 1000 / cpu_ms is about the most one process can serve.
        if cpu_ms is not None and noop_cpu_ms:
            f = figure(
                "server_cpu_per_command",
                [cpu_ms],
                "ms",
                baseline="server_cpu_per_noop_request",
                baseline_value=noop_cpu_ms,
            )
            print_figure(f)
            figures.append(f)
        if errors:
            print(f"  !! {errors} command requests failed (non-2xx or dropped)", flush=True)
        errors_fig = figure(
            "http_command_errors", [errors], "requests", goal=0, higher_is_better=False
        )
        print_figure(errors_fig)
        figures.append(errors_fig)
    return figures


# ------------------------------------------------------------- raw baseline


def raw_insert_commit(
    url: str, threads: int, warmup: float, seconds: float, windows: int
) -> list[float]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_raw (id uuid PRIMARY KEY, payload bytea NOT NULL)")
    payload = os.urandom(PAYLOAD)
    start = time.monotonic()
    until = start + warmup + seconds * windows
    done: list[list[float]] = [[] for _ in range(threads)]
    gate = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        mine = done[i]
        with psycopg.connect(url) as conn:
            gate.wait()
            while (now := time.monotonic()) < until:
                conn.execute(
                    "INSERT INTO bench_raw (id, payload) VALUES (%s, %s)", (uuid.uuid4(), payload)
                )
                conn.commit()
                mine.append(now)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    gate.wait()
    start = time.monotonic()
    for t in pool:
        t.join()
    return window_rates([t for d in done for t in d], start + warmup, seconds, windows)


# ------------------------------------------------------------------- no-op


def noop_http(
    tmp: Path, warmup: float, seconds: float, windows: int
) -> tuple[list[float], float | None]:
    port = free_port()
    body = {"job_id": "job-1"}

    async def scenario(conn: Connection, k: int, n: int) -> None:
        await conn.call("POST", "/noop", body)

    args = [python(), "-m", "bench.noop_app"]
    with server(args, port, {"PORT": str(port)}, tmp / "noop.log") as proc:
        before = process_cpu_seconds(proc.pid)
        rates, stats = run_load("127.0.0.1", port, CLIENTS, scenario, warmup, seconds, windows)
        after = process_cpu_seconds(proc.pid)
    cpu_ms = (after - before) * 1000 / len(stats.done) if before is not None and after else None
    return rates, cpu_ms


# -------------------------------------------------------------- interviews


def interview_commands(
    url: str, tmp: Path, warmup: float, seconds: float, windows: int
) -> tuple[list[float], list[float], int, float | None]:
    from services.common.auth import mint_token

    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "AUTH_SECRET": secret,
        "DATA_DIR": str(tmp / "data"),
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        "KAFKA_BOOTSTRAP_SERVERS": "",
    }

    def bearer(sub: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(secret, sub, role, 3600)}"}

    run_id = uuid.uuid4().hex[:6]
    clients = [bearer(f"bench-client-{k}", "client") for k in range(CLIENTS)]
    freelancers = [
        [bearer(f"bench-fl-{k}-{j}", "freelancer") for j in range(FREELANCERS_PER_CLIENT)]
        for k in range(CLIENTS)
    ]
    rngs = [random.Random(k) for k in range(CLIENTS)]
    offer = {"amount": "1200.00", "currency": "EUR", "rate_type": "fixed"}

    async def hiring(conn: Connection, k: int, n: int) -> None:
        j = n % FREELANCERS_PER_CLIENT
        client, freelancer = clients[k], freelancers[k][j]
        invited = await conn.call(
            "POST",
            "/interviews",
            {
                "job_id": f"job-{run_id}-{k}-{n}",
                "freelancer_id": f"bench-fl-{k}-{j}",
                "message": "We liked your profile; shall we talk about the job?",
            },
            client,
        )
        base = f"/interviews/{invited['id']}"
        x = rngs[k].random()
        if x < 0.1:
            await conn.call("POST", base + "/decline", {"reason": "not available"}, freelancer)
            return
        if x < 0.2:
            await conn.call("POST", base + "/cancel", {"reason": "position filled"}, client)
            return
        await conn.call("POST", base + "/accept", None, freelancer)
        if x < 0.8:
            await conn.call(
                "POST", base + "/start", {"scheduled_at": "2027-01-04T10:00:00Z"}, client
            )
        await conn.call("POST", base + "/offer", offer, client)
        if x >= 0.8:
            await conn.call("POST", base + "/offer/decline", {"reason": "too low"}, freelancer)
            await conn.call("POST", base + "/offer", {**offer, "amount": "1500.00"}, client)
        await conn.call("POST", base + "/offer/accept", None, freelancer)

    args = [python(), "-m", "services.cli", "serve", "interviews", "--port", str(port)]
    with server(args, port, env, tmp / "interviews.log", ready_path="/readyz") as proc:
        before = process_cpu_seconds(proc.pid)
        rates, stats = run_load("127.0.0.1", port, CLIENTS, hiring, warmup, seconds, windows)
        after = process_cpu_seconds(proc.pid)
        counters = scrape(port)
    commands = len(stats.done)
    cpu_ms = (after - before) * 1000 / commands if before is not None and after else None
    batches = counters.get("interview_commit_batches_total", 0)
    events = counters.get("interview_events_appended_total", 0)
    if batches:
        print(
            f"  ({commands} commands, {events:.0f} events in {batches:.0f} transactions:"
            f" {commands / batches:.1f} commands per transaction)",
            flush=True,
        )
    return rates, stats.latencies, stats.errors, cpu_ms


def scrape(port: int) -> dict[str, float]:
    """The server's own counters, from /metrics (unlabelled samples only)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            values[name] = float(value)
    return values
