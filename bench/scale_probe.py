"""``python -m bench.scale_probe [projections|notifications] [REPETITIONS] [EVENTS]``:
why two consumer processes are (or are not) twice one.

Fills a topic as ``bench.projections`` does, then per repetition drains it with
one, then two processes (``bench.scale_out.drain``) and prints, per process, its
apply window (first and last committed batch, relative to the first batch of
the run), the events it applied, its rebalances (when it was assigned which
partitions), the ``window_rate`` of the run, and what the database's sessions
waited on (samples of ``pg_stat_activity`` every 10 ms). Not part of
``make bench``: a diagnosis tool.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

from . import scale_out
from .common import Context, delete_topics
from .projections import PARTITIONS, _envelopes, _fill_topic


def describe(processes: int, marks: list[scale_out.Marks], report: dict[str, Any]) -> float:
    """Prints one run's per-process windows, rebalances and waits; returns its rate."""
    t0 = min(m[0][0] for m in marks if m)
    for i, m in enumerate(marks):
        moves = " ".join(
            f"{what[0]}@{t - t0:+.2f}s:{parts}" for what, t, parts in report["rebalances"][i]
        )
        if m:
            print(
                f"    process {i}: batches {len(m)}, applied {m[-1][1]:,}, "
                f"first {m[0][0] - t0:+.2f}s, last {m[-1][0] - t0:+.2f}s; {moves}"
            )
        else:
            print(f"    process {i}: no batch; {moves}")
    try:
        rate = scale_out.window_rate(marks, report["rebalances"])
    except RuntimeError as error:
        print(f"    !! {error}")
        rate = 0.0
    print(f"    cpu seconds per process: {', '.join(f'{c:.1f}' for c in report['cpu'])}")
    waits = dict(report["waits"])
    samples = max(waits.pop("samples", 1), 1)
    top = sorted(waits.items(), key=lambda kv: -kv[1])[:6]
    print(
        f"  {processes} process(es): {rate:,.0f} events/s; sessions per sample: "
        + "; ".join(f"{k} {v / samples:.2f}" for k, v in top)
    )
    return rate


def main(argv: list[str]) -> int:
    service = argv[0] if argv else "projections"
    repetitions = int(argv[1]) if len(argv) > 1 else 3
    n = int(argv[2]) if len(argv) > 2 else 60_000
    ctx = Context()
    admin_url = ctx.require_database()
    bootstrap = ctx.require_kafka()
    topic = f"bench-probe-{uuid.uuid4().hex[:8]}"
    try:
        _fill_topic(bootstrap, topic, _envelopes(n))
        print(f"{n:,} events on {topic}, {PARTITIONS} partitions", flush=True)
        for rep in range(repetitions):
            rates = []
            for processes in (1, 2):
                report: dict[str, Any] = {}
                marks, _ = scale_out.drain(
                    service, admin_url, bootstrap, topic, n, processes, report, sample_waits=True
                )
                rates.append(describe(processes, marks, report))
            ratio = rates[1] / rates[0] if rates[0] else 0.0
            load = os.getloadavg()[0]
            print(f"repetition {rep + 1}: two vs one {ratio:.2f} (load {load:.2f})", flush=True)
    finally:
        delete_topics(bootstrap, [topic])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
