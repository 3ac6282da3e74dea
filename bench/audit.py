"""Audit throughput over 100,000 interview events (issue 6).

The store is the run's shared one (``bench.baselines.event_store_100k``),
filled fast by :func:`fill`: 20,000 interviews of five events each (invited,
accepted, started, offer, hired) built with the domain and saved through the
application in batches, on PostgreSQL when ``DATABASE_URL`` is set (a fresh
database), else on an SQLite file. Then, each repeated and reported as median
and min/max:

* B7, the baseline (``bench.baselines.paged_reads``): raw paged reads of the
  events table in position order (5,000 rows a page, nothing decoded);
* ``audit verify`` of everything: read, decode, recompute every event's hash
  and link, the log digest against the checkpoints;
* ``audit export`` to a JSON lines file (no baseline; for reference);
* ``audit replay`` of that file: no database, every chain verified and every
  interview rebuilt.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

from services.interviews.audit import InterviewAudit
from services.interviews.audit_export import read_export, replay
from services.interviews.domain import Actor, CommandContext, Interview, OfferTerms

from . import baselines
from .common import Context, figure, print_figure

EVENTS = 100_000
PER_INTERVIEW = 5
SAVE_BATCH = 500  # interviews per transaction
VERIFY_GOAL = 0.01  # within 100x of merely reading: it decodes and hashes every event
REPLAY_GOAL = 0.01


def run(ctx: Context) -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        # The run's shared 100,000-event store, and B7 measured on it.
        container = baselines.event_store_100k(ctx)
        store = "pg" if container.settings.database_url else "sqlite"
        app = container.interviews()
        raw_fig = baselines.paged_reads(ctx)
        audit = InterviewAudit(app)

        def verify() -> None:
            report = audit.verify_all()
            assert report.ok and report.checked == EVENTS, report

        verify_rates = [EVENTS / timed(verify) for _ in range(ctx.repetitions)]
        export = tmp / "log.jsonl"

        def export_all() -> None:
            with export.open("w", encoding="utf-8") as out:
                assert audit.export(out).checked == EVENTS

        export_rates = [EVENTS / timed(export_all) for _ in range(ctx.repetitions)]

        def replay_all() -> None:
            report = replay(read_export(str(export)))
            assert report.ok and len(report.states) == EVENTS // PER_INTERVIEW

        replay_rates = [EVENTS / timed(replay_all) for _ in range(ctx.repetitions)]

        for name, rates, goal in (
            (f"audit_verify_100k_{store}", verify_rates, VERIFY_GOAL),
            (f"audit_export_100k_{store}", export_rates, None),
            ("audit_replay_100k_offline", replay_rates, REPLAY_GOAL),
        ):
            f = figure(
                name,
                rates,
                "events/s",
                baseline=raw_fig["name"] if goal else None,
                baseline_value=raw_fig["value"] if goal else None,
                goal=goal,
            )
            print_figure(f)
            figures.append(f)
    return figures


def timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def fill(app: Any, interviews: int) -> None:
    """Hiring flows built with the domain, saved a batch per transaction."""
    client, freelancer = Actor("bench-client", "client"), Actor("bench-freelancer", "freelancer")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    terms = OfferTerms(Decimal("1500.00"), "EUR", "fixed")
    batch: list[Interview] = []

    def ctx(actor: Actor, n: int, minutes: int) -> CommandContext:
        when = at + timedelta(seconds=n, minutes=minutes)
        return CommandContext(actor, when, f"req-{n}", f"req-{n}")

    for n in range(interviews):
        interview = Interview.invite(
            ctx(client, n, 0), interview_id=uuid4(), job_id=f"job-{n}", freelancer_id=freelancer.id
        )
        interview.accept(ctx(freelancer, n, 1))
        interview.start(ctx(client, n, 2))
        interview.extend_offer(ctx(client, n, 3), terms)
        interview.accept_offer(ctx(freelancer, n, 4))
        batch.append(interview)
        if len(batch) == SAVE_BATCH:
            app.save(*batch)
            batch.clear()
    if batch:
        app.save(*batch)
