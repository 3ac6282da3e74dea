"""Commands per second over HTTP against PostgreSQL (issues 2 and 8).

The interview API (``interviewctl serve interviews --workers N``, fresh
database) under 16 keep-alive clients running the hiring flow: invite,
accept, start, offer, a declined and revised offer now and then, hire; some
invitations declined or cancelled. Measured as three consecutive windows
after a warm-up (median and min/max reported), against two baselines of
:mod:`bench.baselines` measured in the same run: B2, raw single-row
INSERT+COMMIT at 16 connections (goal: at least half), and B1, a no-op
FastAPI endpoint served the same way under the same load generator (goal: at
least 35%). The median rate is the run's peak command rate, which
:mod:`bench.command_latency` and :mod:`bench.relay` measure against.
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import baselines
from .common import (
    Context,
    cpu_budget,
    figure,
    free_port,
    fresh_database,
    postgres_cpu_seconds,
    print_figure,
    process_cpu_seconds,
    python,
    server,
    service_bearer,
    split_quantile,
)
from .loadgen import Connection, run_load

CLIENTS = 16
WARMUP = 3.0
FREELANCERS_PER_CLIENT = 25


def run(ctx: Context) -> list[dict[str, Any]]:
    admin_url = ctx.require_database()
    seconds = ctx.seconds
    windows = ctx.repetitions
    figures: list[dict[str, Any]] = []
    raw_fig = baselines.pg_commit(ctx, CLIENTS)
    noop_fig = baselines.noop_http(ctx)
    print(
        f"  ({CLIENTS} clients, {WARMUP:.0f}s warm-up, {windows} x {seconds:.0f}s windows, "
        f"{ctx.workers} worker process(es))",
        flush=True,
    )
    with fresh_database(admin_url) as url, tempfile.TemporaryDirectory() as tmp:
        rates, latencies, errors, cpu_ms = interview_commands(
            url, Path(tmp), WARMUP, seconds, windows, ctx.workers
        )
        # The peak command rate, for the figures that are goals relative to it.
        ctx.cache["peak_command_rate"] = statistics.median(rates)
        cmd_fig = figure(
            f"http_commands_{CLIENTS}clients_pg",
            rates,
            "commands/s",
            baseline=raw_fig["name"],
            baseline_value=raw_fig["value"],
            goal=0.5,
            goal_text="≥ 50% of B2@16",
        )
        print_figure(cmd_fig)
        figures.append(cmd_fig)
        vs_noop = figure(
            f"http_commands_{CLIENTS}clients_pg_vs_noop",
            rates,
            "commands/s",
            baseline=noop_fig["name"],
            baseline_value=noop_fig["value"],
            goal=0.35,
            goal_text="≥ 35% of B1",
        )
        print_figure(vs_noop)
        figures.append(vs_noop)
        if latencies:
            for name, q in (("p50", 0.5), ("p99", 0.99)):
                values = [v * 1000 for v in split_quantile(latencies, q, windows)]
                f = figure(f"http_command_latency_{name}_at_peak", values, "ms")
                print_figure(f)
                figures.append(f)
        # Server CPU per request does not depend on what else runs on the machine;
        # with the GIL, 1000 / cpu_ms is about the most one process can serve.
        if cpu_ms is not None:
            f = figure("server_cpu_per_command", [cpu_ms], "ms")
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


# -------------------------------------------------------------- interviews


def interview_commands(
    url: str | None,
    tmp: Path,
    warmup: float,
    seconds: float,
    windows: int,
    workers: int = 1,
    command: tuple[str, ...] = ("serve", "interviews"),
) -> tuple[list[float], list[float], int, float | None]:
    """The hiring flow against ``interviewctl <command>`` on PostgreSQL at ``url``
    (SQLite files in ``tmp`` when None): rates per window, latencies, errors,
    server CPU ms per command."""
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = server_env(url, tmp, secret)
    hiring = hiring_flow(secret)

    args = [python(), "-m", "services.cli", *command, "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    with server(args, port, env, tmp / "interviews.log", ready_path="/readyz") as proc:
        before = process_cpu_seconds(proc.pid)
        database_before, client_before = postgres_cpu_seconds(), time.process_time()
        rates, stats = run_load("127.0.0.1", port, CLIENTS, hiring, warmup, seconds, windows)
        database = postgres_cpu_seconds() - database_before
        client = time.process_time() - client_before
        after = process_cpu_seconds(proc.pid)
        try:
            counters = scrape(port)
        except OSError as error:  # the counters are a diagnostic, not a figure
            print(f"  !! could not read the server's /metrics: {error}", flush=True)
            counters = {}
    commands = len(stats.done)
    cpu_ms = (after - before) * 1000 / commands if before is not None and after else None
    batches = counters.get("interview_commit_batches_total", 0)
    events = counters.get("interview_events_appended_total", 0)
    if batches:  # /metrics answers from one worker process: its own counters
        print(
            f"  ({commands} commands; one worker wrote {events:.0f} events in {batches:.0f}"
            f" transactions: {events / batches:.1f} events per transaction)",
            flush=True,
        )
    if cpu_ms is not None and commands:
        # Where the machine's CPU went: what the goals relative to B1 and B2 leave
        # to the service once the load generator and the database had theirs.
        parties = {"server": cpu_ms, "load generator": client * 1000 / commands}
        if url is not None:
            parties["PostgreSQL"] = database * 1000 / commands
        print(cpu_budget("budget", parties, "command"), flush=True)
    return rates, stats.latencies, stats.errors, cpu_ms


def server_env(url: str | None, tmp: Path, secret: str) -> dict[str, str]:
    """The interviews API's environment: PostgreSQL at ``url`` (SQLite files in
    ``tmp`` when None), tokens signed with ``secret``, no broker."""
    return {
        "DATABASE_URL": url or "",
        "AUTH_SECRET": secret,
        "DATA_DIR": str(tmp / "data"),
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        "KAFKA_BOOTSTRAP_SERVERS": "",
    }


def hiring_flow(secret: str) -> Callable[[Connection, int, int], Awaitable[None]]:
    """One client's hiring loop (``run_load``'s flow): register a job, invite, then
    decline (10%), cancel (10%) or accept, start (60%), offer, sometimes decline
    it and offer more, and hire."""
    from services.common.auth import mint_token

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
    in_a_month = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    service = service_bearer(secret)

    async def hiring(conn: Connection, k: int, n: int) -> None:
        j = n % FREELANCERS_PER_CLIENT
        client, freelancer = clients[k], freelancers[k][j]
        job = f"job-{run_id}-{k}-{n}"
        await conn.call("PUT", f"/jobs/{job}", {"client_id": f"bench-client-{k}"}, service)
        invited = await conn.call(
            "POST",
            "/interviews",
            {
                "job_id": job,
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
            await conn.call("POST", base + "/start", {"scheduled_at": in_a_month}, client)
        await conn.call("POST", base + "/offer", offer, client)
        if x >= 0.8:
            await conn.call("POST", base + "/offer/decline", {"reason": "too low"}, freelancer)
            await conn.call("POST", base + "/offer", {**offer, "amount": "1500.00"}, client)
        await conn.call("POST", base + "/offer/accept", None, freelancer)

    return hiring


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
