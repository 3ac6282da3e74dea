"""``python -m bench [NAME ...]``: runs the modules in BENCHES, writes results.json.

A bench module exposes ``run(ctx: bench.common.Context) -> list[dict]`` and
prints one line per figure (``bench.common.figure`` / ``print_figure``).
Baselines (B0..B8) live in :mod:`bench.baselines` and are measured once per
run through ``ctx.once``; a module that needs one asks for it there. Add a
module by appending its name here.

With no argument every module runs and bench/results.json is written; with
names (``python -m bench commands relay``) only the matching modules run
(plus the baselines they ask for) and the results go to BENCH_RESULTS or
/tmp/bench-results.json, so a partial run never replaces the committed file.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import Context

BENCHES: list[str] = [
    "bench.baselines",
    "bench.commands",
    "bench.command_latency",
    "bench.snapshots",
    "bench.sqlite",
    "bench.audit",
    "bench.relay",
    "bench.projections",
    "bench.notifications",
    "bench.memory",
    "bench.privacy",
]

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main(argv: list[str]) -> int:
    selected = [b for b in BENCHES if not argv or any(a in b for a in argv)]
    complete = selected == BENCHES
    path = RESULTS if complete else Path(os.environ.get("BENCH_RESULTS", "/tmp/bench-results.json"))
    ctx = Context()
    started_at = datetime.now(UTC)
    load_before = load_average()
    run_started = time.monotonic()
    print(
        f"bench: {'full' if ctx.full else 'quick'} suite, {ctx.repetitions} repetitions of "
        f"{ctx.seconds:g}s, interviews API with {ctx.workers} worker(s); "
        f"load average {load_before}",
        flush=True,
    )
    figures: list[dict[str, Any]] = []
    failed: list[str] = []
    try:
        for name in selected:
            print(f"== {name}", flush=True)
            started = time.monotonic()
            try:
                module = importlib.import_module(name)
                own = module.run(ctx)
            except Exception as error:  # one broken bench must not hide the rest
                failed.append(name)
                own = []
                print(f"  !! {name} failed: {type(error).__name__}: {error}", flush=True)
            # Baselines first measured on behalf of this module, then its own figures.
            figures.extend({"bench": "bench.baselines", **f} for f in ctx.take_new_figures())
            figures.extend({"bench": name, **f} for f in own)
            print(f"  ({time.monotonic() - started:.0f}s)", flush=True)
    finally:
        ctx.close()
    elapsed = time.monotonic() - run_started
    path.write_text(
        json.dumps(
            {
                "date": started_at.isoformat(timespec="seconds"),
                "machine": machine(),
                "suite": "full" if ctx.full else "quick",
                "seconds": round(elapsed),
                "load_average": {"before": load_before, "after": load_average()},
                "failed": failed,
                "figures": figures,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print_table(figures)
    print(f"wrote {path} ({elapsed / 60:.1f} min)", flush=True)
    return 1 if failed else 0


def print_table(figures: list[dict[str, Any]]) -> None:
    """Every figure with a goal (or a goal in words, e.g. "reported"), and the
    baselines they are measured against."""
    rows = [("figure", "value", "baseline", "ratio", "goal", "met")]
    for f in figures:
        if f["goal"] is None and not f.get("goal_text") and not f["name"].startswith("B"):
            continue
        rows.append(
            (
                f["name"],
                f"{f['value']:,.1f} {f['unit']}",
                f"{f['baseline']} ({f['baseline_value']:,.0f})" if f["baseline"] else "",
                f"{f['ratio']:.2f}" if f["ratio"] is not None else "",
                f.get("goal_text") or "",
                "" if f["met"] is None else ("yes" if f["met"] else "NO"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        cells = [
            cell.rjust(w) if i in (1, 3) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
