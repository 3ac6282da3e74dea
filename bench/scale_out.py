"""Consumers scaled out: N processes of one consumer group on one preloaded topic.

``drain(service, ...)`` starts ``processes`` consumer processes
(``bench.consumer_process``) of a new group, all writing to one fresh database,
lets them join the group together, and returns when each committed what, and
a snapshot of what they wrote. ``window_rate`` counts the window in which every
process was applying its final partitions (from the last one's first committed
batch after the group settled to the first one's last), so neither the group
join, nor a rebalance, nor a process left alone with the last partitions counts;
with one process that is the usual first-to-last-batch rate.

``views_snapshot`` / ``inbox_snapshot``: the rows a consumer wrote, without
what legitimately differs between runs (wall-clock stamps, the inbox's serial
number), so the views of N processes can be compared with one process's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import ROOT, fresh_database, python

Marks = list[tuple[float, int]]  # (wall-clock time, events applied so far), one process
# ("assigned" | "revoked", wall-clock time, partitions), one process's rebalances
Rebalances = list[tuple[str, float, str]]


def window_rate(marks: Sequence[Marks], rebalances: Sequence[Rebalances] | None = None) -> float:
    """Events/s of all processes together in their steady state: from the moment
    every process had committed a batch since its last assignment (the group
    settled: each owns the partitions it keeps) to the first one's last batch.

    Between two batches of a process its count is interpolated (the batch was
    being applied from the one commit to the next), so a batch that straddles an
    end of the window counts for its part in it, not whole or not at all: with a
    few thousand events a batch, whole batches made a short window swing by a
    fifth. Raises if the group rebalanced inside the window."""
    if any(not m for m in marks):
        raise RuntimeError("a consumer process committed no batch")
    moves = rebalances or [[] for _ in marks]
    end = min(m[-1][0] for m in marks)
    starts = []
    for m, moved in zip(marks, moves, strict=True):
        assigned = [t for what, t, _ in moved if what == "assigned" and t < end]
        settled = max(assigned, default=float("-inf"))
        starts.append(next((t for t, _ in m if t > settled), m[-1][0]))
    start = max(starts)
    if end <= start:
        raise RuntimeError("the consumer processes never applied side by side")
    inside = [(what, t) for moved in moves for what, t, _ in moved if start < t < end]
    if inside:
        raise RuntimeError(f"the group rebalanced inside the measured window: {inside}")

    def applied(m: Marks, at: float) -> float:
        before = (m[0][0], 0)  # nothing before the first batch was applied mid-batch
        for t, count in m:
            if t >= at:
                t0, c0 = before
                return c0 + (count - c0) * (at - t0) / (t - t0) if t > t0 else float(count)
            before = (t, count)
        return float(m[-1][1])

    return sum(applied(m, end) - applied(m, start) for m in marks) / (end - start)


def drain(
    service: str,
    admin_url: str,
    bootstrap: str,
    topic: str,
    n: int,
    processes: int,
    report: dict[str, Any] | None = None,
    sample_waits: bool = False,
) -> tuple[list[Marks], dict[str, Any]]:
    """``processes`` consumer processes of one new group drain ``topic`` (``n``
    events) into one fresh database: each process's marks (``window_rate`` makes
    their rate) and the snapshot of what they wrote.

    With a ``report`` dict, fills it with each process's rebalances
    (``rebalances``, for ``window_rate``), the CPU seconds each used (``cpu``) and,
    with ``sample_waits``, what the database's sessions waited on while they ran
    (``waits``: sample counts by wait event; the sampling costs a little CPU)."""
    from services.common.runner.tables import migrate_consumer_database

    from .consumer_process import spec_for

    group = f"bench-{service}-{uuid.uuid4().hex[:8]}"
    with fresh_database(admin_url, f"bench_scale_{service[:5]}") as url:
        # Migrated once, before the processes start (as a deployment's migrate step).
        with tempfile.TemporaryDirectory() as tmp:
            spec, container = spec_for(service, url, bootstrap, topic, group, tmp)
            migrate_consumer_database(spec)
            container.close()
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        procs = [
            subprocess.Popen(
                [python(), "-m", "bench.consumer_process", service, url, bootstrap, topic, group],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=ROOT,
                env=env,
                text=True,
            )
            for _ in range(processes)
        ]
        marks: list[Marks] = [[] for _ in procs]
        rebalances: list[list[tuple[str, float, str]]] = [[] for _ in procs]
        cpu = [0.0 for _ in procs]
        ready = threading.Barrier(processes + 1)

        def read(i: int, proc: subprocess.Popen[str]) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                words = line.split()
                if words == ["ready"]:
                    ready.wait(120)
                elif words[0] == "cpu":
                    cpu[i] = float(words[1])
                elif words[0] in ("assigned", "revoked"):
                    rebalances[i].append((words[0], float(words[1]), words[2]))
                else:
                    marks[i].append((float(words[0]), int(words[1])))

        readers = [
            threading.Thread(target=read, args=(i, p), daemon=True) for i, p in enumerate(procs)
        ]
        for reader in readers:
            reader.start()
        sampling = threading.Event()
        waits: dict[str, int] = {}
        sampler = threading.Thread(target=_sample_waits, args=(url, sampling, waits), daemon=True)
        if sample_waits:
            sampler.start()
        try:
            ready.wait(120)
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            deadline = time.monotonic() + 600
            while sum(m[-1][1] for m in marks if m) < n:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    applied = sum(m[-1][1] for m in marks if m)
                    raise RuntimeError(f"{processes} {service} processes applied {applied}/{n}")
                time.sleep(0.05)
        finally:
            sampling.set()
            for proc in procs:
                assert proc.stdin is not None
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            for proc in procs:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for reader in readers:
                reader.join(5)
        if sample_waits:
            sampler.join(5)
        if report is not None:
            report["rebalances"] = rebalances
            report["waits"] = waits
            report["cpu"] = cpu
        snapshot = views_snapshot(url) if service == "projections" else inbox_snapshot(url)
    return marks, snapshot


def _sample_waits(url: str, stop: threading.Event, waits: dict[str, int]) -> None:
    """Every 10 ms, what each active session of ``url``'s database waits on
    (``Lock:transactionid``, ``IO:WALSync``, ``-`` for on CPU), counted into
    ``waits``; ``samples`` counts the samples."""
    import sqlalchemy as sa

    from services.common.db import create_engine

    engine = create_engine(url, Path("unused.sqlite"))
    query = sa.text(
        "SELECT wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND state = 'active'"
    )
    try:
        with engine.connect() as conn:
            while not stop.wait(0.01):
                waits["samples"] = waits.get("samples", 0) + 1
                for kind, event, sql in conn.execute(query):
                    key = f"{kind}:{event}" if kind else "-"
                    if kind == "Lock":
                        key += f" {' '.join(sql.split())}"
                    waits[key] = waits.get(key, 0) + 1
                conn.rollback()
    finally:
        engine.dispose()


# ------------------------------------------------------------------ snapshots


def _rows(url: str, table: Any, leave_out: Sequence[str], order: Sequence[str]) -> list[Any]:
    import sqlalchemy as sa

    from services.common.db import create_engine

    engine = create_engine(url, Path("unused.sqlite"))
    try:
        columns = [c for c in table.c if c.name not in leave_out]
        with engine.connect() as conn:
            query = sa.select(*columns).order_by(*(table.c[c] for c in order))
            # As text: JSON columns read back as dicts and lists, which do not hash.
            return [repr(tuple(row)) for row in conn.execute(query)]
    finally:
        engine.dispose()


def views_snapshot(url: str) -> dict[str, Any]:
    """The projections' current views: every interview row, the timeline, the gaps
    (without when they were detected or filled)."""
    from services.projections.adapters.schema import view_tables

    tables = view_tables(1)
    return {
        "interviews": _rows(url, tables.interviews, (), ["interview_id"]),
        "timeline": _rows(url, tables.timeline, (), ["interview_id", "version"]),
        "gaps": _rows(url, tables.gaps, ("detected_at", "filled_at"), ["interview_id", "version"]),
    }


def inbox_snapshot(url: str) -> dict[str, Any]:
    """The notifications consumer's effects: inbox entries (without their serial
    number and recording time), reminder deadlines (without when they changed),
    pending deliveries (without their times)."""
    from services.notifications.adapters.tables import deliveries, notifications
    from services.notifications.adapters.tables import reminder_deadlines as deadlines

    return {
        "notifications": _rows(url, notifications, ("seq", "created_at"), ["id"]),
        "deadlines": _rows(url, deadlines, ("updated_at",), ["interview_id", "what"]),
        "deliveries": _rows(
            url, deliveries, ("next_attempt_at", "created_at", "updated_at", "traceparent"), ["id"]
        ),
    }


def differences(one: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """What differs between two snapshots, table by table (empty: identical)."""
    out = []
    for name in one:
        a, b = set(one[name]), set(other.get(name, []))
        if a != b or len(one[name]) != len(other.get(name, [])):
            out.append(
                f"{name}: {len(one[name])} vs {len(other.get(name, []))} rows,"
                f" {len(a - b)} only in the first, {len(b - a)} only in the second"
            )
    return out
