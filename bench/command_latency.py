"""Command latency at half the peak rate (issue 8): p50 and p99, goal p99 ≤ 25 ms.

The interview API is served as in :mod:`bench.commands` (``interviewctl serve
interviews --workers N``, fresh PostgreSQL database) and driven open loop:
commands are sent on a fixed schedule at half the peak command rate measured
by :mod:`bench.commands` in this run (measured here first when that module did
not run), whatever the answers take, over a pool of keep-alive connections.
Each command's latency runs from its *scheduled* send time to its answer, so a
stall is charged to every command it delays (no coordinated omission). The
mix is the hiring flow: an invitation, then accept, start, offer and hire of
earlier invitations. Reported per repetition window, median and min/max.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .common import (
    Context,
    figure,
    free_port,
    fresh_database,
    print_figure,
    python,
    quantile,
    server,
    service_bearer,
)
from .loadgen import Connection, HttpError, Stats

WARMUP = 2.0
GOAL_MS = 25.0


def run(ctx: Context) -> list[dict[str, Any]]:
    admin_url = ctx.require_database()
    from services.common.auth import mint_token

    secret = secrets.token_urlsafe(32)
    port = free_port()
    figures: list[dict[str, Any]] = []
    with fresh_database(admin_url, "bench_latency") as url, tempfile.TemporaryDirectory() as tmp:
        env = {
            "DATABASE_URL": url,
            "AUTH_SECRET": secret,
            "DATA_DIR": tmp,
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
            "KAFKA_BOOTSTRAP_SERVERS": "",
        }
        args = [python(), "-m", "services.cli", "serve", "interviews", "--port", str(port)]
        args += ["--workers", str(ctx.workers)]
        with server(args, port, env, Path(tmp) / "interviews.log", ready_path="/readyz"):
            peak = ctx.cache.get("peak_command_rate") or _measure_peak(ctx, admin_url)
            rate = peak / 2
            print(
                f"  (open loop at {rate:,.0f} commands/s = half the peak, "
                f"{ctx.repetitions} x {ctx.seconds:g}s)",
                flush=True,
            )
            tokens = {
                role: [
                    {"Authorization": f"Bearer {mint_token(secret, f'lat-{role}-{k}', role)}"}
                    for k in range(20)
                ]
                for role in ("client", "freelancer")
            }
            tokens["service"] = [service_bearer(secret)]
            samples, errors = asyncio.run(
                open_loop(port, rate, WARMUP, ctx.seconds * ctx.repetitions, tokens)
            )
    windows: list[list[float]] = [[] for _ in range(ctx.repetitions)]
    for at, latency in samples:
        i = int(at // ctx.seconds)
        if 0 <= i < ctx.repetitions:
            windows[i].append(latency * 1000)
    for name, q, goal in (("p50", 0.5, None), ("p99", 0.99, GOAL_MS)):
        f = figure(
            f"http_command_latency_{name}_at_half_peak",
            [quantile(w, q) for w in windows if w],
            "ms",
            goal=goal,
            higher_is_better=False,
            goal_text=f"≤ {goal:g} ms" if goal else None,
        )
        print_figure(f)
        figures.append(f)
    f = figure(
        "http_command_errors_at_half_peak", [errors], "requests", goal=0, higher_is_better=False
    )
    print_figure(f)
    figures.append(f)
    return figures


def _measure_peak(ctx: Context, admin_url: str) -> float:
    """The peak rate as bench.commands measures it (when that module did not run)."""
    from .commands import interview_commands

    with fresh_database(admin_url, "bench_peak") as url, tempfile.TemporaryDirectory() as tmp:
        rates, *_ = interview_commands(url, Path(tmp), WARMUP, ctx.seconds, 1, ctx.workers)
    print(f"  (peak measured here: {rates[0]:,.0f} commands/s)", flush=True)
    return rates[0]


async def open_loop(
    port: int,
    rate: float,
    warmup: float,
    seconds: float,
    tokens: dict[str, list[dict[str, str]]],
) -> tuple[list[tuple[float, float]], int]:
    """Commands at ``rate``/s for warmup + seconds; (scheduled - measured start, latency)."""
    stats = Stats()
    idle: list[Connection] = []
    ready: deque[tuple[str, int, int]] = deque()  # (interview id, next step, party index)
    jobs: deque[tuple[str, int]] = deque()  # (registered job, its client's party index)
    samples: list[tuple[float, float]] = []
    errors = 0
    run_id = uuid.uuid4().hex[:6]
    offer = {"amount": "1200.00", "currency": "EUR", "rate_type": "fixed"}
    steps = (
        ("accept", "freelancer", None),
        ("start", "client", {"scheduled_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()}),
        ("offer", "client", offer),
        ("offer/accept", "freelancer", None),
    )
    tasks: set[asyncio.Task[None]] = set()

    async def call(conn: Connection, *args: Any) -> Any:
        try:
            return await conn.call(*args)
        except (ConnectionError, asyncio.IncompleteReadError):
            # The server closed an idle keep-alive connection: reconnect (on our time).
            await conn.close()
            return await conn.call(*args)

    async def one(k: int, scheduled: float, measured_from: float) -> None:
        nonlocal errors
        conn = idle.pop() if idle else Connection("127.0.0.1", port, stats)
        try:
            if ready and k % 5:
                interview_id, step, party = ready.popleft()
                path, role, body = steps[step]
                await call(
                    conn, "POST", f"/interviews/{interview_id}/{path}", body, tokens[role][party]
                )
                if step + 1 < len(steps):
                    ready.append((interview_id, step + 1, party))
            elif jobs:
                job, party = jobs.popleft()
                answer = await call(
                    conn,
                    "POST",
                    "/interviews",
                    {"job_id": job, "freelancer_id": f"lat-freelancer-{party}"},
                    tokens["client"][party],
                )
                ready.append((answer["id"], 0, party))
            else:  # the job service registers a job, which the next slot invites to
                party, job = k % 20, f"lat-{run_id}-{k}"
                body = {"client_id": f"lat-client-{party}"}
                await call(conn, "PUT", f"/jobs/{job}", body, tokens["service"][0])
                jobs.append((job, party))
            samples.append((scheduled - measured_from, time.perf_counter() - scheduled))
        except (HttpError, ConnectionError, asyncio.IncompleteReadError):
            errors += 1
            await conn.close()
            return
        idle.append(conn)

    start = time.perf_counter()
    measured_from = start + warmup
    total = int((warmup + seconds) * rate)
    for k in range(total):
        scheduled = start + k / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(k, scheduled, measured_from))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    for conn in idle:
        await conn.close()
    # Only the commands scheduled after the warm-up count (their own errors too).
    return [(at, lat) for at, lat in samples if at >= 0], errors
