"""``python -m bench.view_tail [RUNS]``: where command → view latency goes, per stage.

Runs the command → view measurement of :mod:`bench.projections` alone
(``command_to_view_latency_*_at_100rps``: invitations at 100 commands/s for
``BENCH_SECONDS`` x ``BENCH_REPS`` seconds, split into repetitions the same
way) ``RUNS`` times (default 1), and breaks each command's latency into
stages: HTTP answer, insert into the store, the broker's append, the insert
into the view (in the consumer's transaction) and the bench's poll. For each
repetition it prints p50/p99 of the whole and of each stage, the load average
while it ran, the PostgreSQL checkpoints that started meanwhile, the bench
poller's longest gap between two looks, which stage the slowest 1% of commands
spent most in, and the slowest three. ``BENCH_SERVICE_LOG_LEVEL=INFO`` and
``BENCH_KEEP_LOGS=DIR`` keep the services' logs (relay, consumer, API).
"""

from __future__ import annotations

import os
import sys
import threading
import time

from .common import Context, quantile
from .projections import RATE, _command_to_view

# The path to the view, in order; "acked" (the HTTP answer) is reported beside it.
STAGES = ("sent", "stored", "kafka", "applied", "seen")


def one_run(ctx: Context) -> list[dict[str, float]]:
    loads: list[tuple[float, float]] = []
    stop = threading.Event()

    checkpoints: list[tuple[float, int]] = []

    def sample_load() -> None:
        import psycopg

        with psycopg.connect(ctx.require_database(), autocommit=True) as conn:
            while not stop.wait(0.5):
                loads.append((time.perf_counter(), os.getloadavg()[0]))
                done = conn.execute(
                    "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
                ).fetchone()
                checkpoints.append((time.perf_counter(), int(done[0]) if done else 0))

    sampler = threading.Thread(target=sample_load, daemon=True)
    sampler.start()
    stages: dict[str, dict[str, float]] = {}
    seconds = ctx.seconds * ctx.repetitions
    try:
        latencies, _, lost = _command_to_view(
            ctx.require_database(), ctx.require_kafka(), seconds, stages
        )
    finally:
        stop.set()
    polls = sorted(stages.get("polls", {}).values())
    ids = sorted(stages["sent"], key=stages["sent"].__getitem__)
    ids = [i for i in ids if i in stages["seen"]]
    size = len(ids) // ctx.repetitions
    rows = []
    for r in range(ctx.repetitions):
        part = ids[r * size : (r + 1) * size]
        t0, t1 = stages["sent"][part[0]], stages["sent"][part[-1]]
        load = [v for t, v in loads if t0 <= t <= t1 + 1] or [os.getloadavg()[0]]
        marks = [n for t, n in checkpoints if t0 - 0.5 <= t <= t1 + 1]
        row: dict[str, float] = {
            "load": max(load),
            "checkpoints": max(marks) - min(marks) if marks else 0,
        }
        total = [stages["seen"][i] - stages["sent"][i] for i in part]
        row["p50"], row["p99"] = quantile(total, 0.5) * 1e3, quantile(total, 0.99) * 1e3
        for a, b in (*zip(STAGES, STAGES[1:], strict=False), ("sent", "acked")):
            d = [stages[b][i] - stages[a][i] for i in part if i in stages[b] and i in stages[a]]
            if d:
                row[f"{b}.p50"] = quantile(d, 0.5) * 1e3
                row[f"{b}.p99"] = quantile(d, 0.99) * 1e3
        by_latency = sorted(part, key=lambda i: stages["seen"][i] - stages["sent"][i])
        slow = by_latency[-max(1, size // 100) :]
        owners: dict[str, int] = {}
        for i in slow:
            spans = {
                b: stages[b][i] - stages[a][i]
                for a, b in zip(STAGES, STAGES[1:], strict=False)
                if i in stages[b] and i in stages[a]
            }
            owner = max(spans, key=spans.__getitem__)
            owners[owner] = owners.get(owner, 0) + 1
        gaps = [b - a for a, b in zip(polls, polls[1:], strict=False) if t0 <= a <= t1 + 0.5]
        row["poll_gap_max"] = max(gaps, default=0.0) * 1e3
        row["owners"] = owners  # type: ignore[assignment]
        origin = stages["sent"][ids[0]]
        for i in slow[-3:]:
            spans = " ".join(
                f"{b} {1e3 * (stages[b][i] - stages[a][i]):.0f}"
                for a, b in zip(STAGES, STAGES[1:], strict=False)
                if i in stages[b] and i in stages[a]
            )
            wall = stages["sent"][i] + time.time() - time.perf_counter()
            print(
                f"    slow at {stages['sent'][i] - origin:6.2f}s (wall {wall:.3f}): {spans}",
                flush=True,
            )
        rows.append(row)
        stage_text = " ".join(
            f"{b} {row.get(b + '.p50', float('nan')):.0f}/{row.get(b + '.p99', float('nan')):.0f}"
            for b in (*STAGES[1:], "acked")
        )
        print(
            f"  rep {r + 1}: p50 {row['p50']:.1f} p99 {row['p99']:.1f} ms  load {row['load']:.2f}"
            f"  checkpoints {row['checkpoints']}  longest poll gap {row['poll_gap_max']:.0f} ms"
            f"  stages p50/p99 ms: {stage_text}  slowest 1% mostly in {owners}",
            flush=True,
        )
    if lost:
        print(f"  !! {lost} commands never showed in the view", flush=True)
    return rows


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 1
    ctx = Context()
    print(f"command → view at {RATE:.0f}/s, {ctx.repetitions} x {ctx.seconds:g}s, {runs} run(s)")
    for n in range(runs):
        print(f"run {n + 1}: load average {os.getloadavg()}", flush=True)
        one_run(ctx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
