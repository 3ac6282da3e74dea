"""Loading a long interview (issue 8): snapshots make 1,000 events cost at most
twice as much as 10 (goal ratio ≤ 2).

On a fresh PostgreSQL database (SQLite without DATABASE_URL), one interview
gets 10 events and another 1,000 (invite, accept, start, then offers declined
and extended again). The first 990 events of the long one are saved through
``Application.save()`` ten at a time, the last ten through the application's
commands, so the snapshot at version 1,000 is the one the command path (the
group committer) takes. The application has ``snapshotting_intervals =
{Interview: 100}``: the run checks that the snapshots are there and that a
cold load of the long interview starts from the one at version 1,000 and
replays nothing, and that it gives the same state as replaying every event.

Timed, each as the median of many loads, per repetition:

* a cold load (what a command pays when the aggregate is not cached: the
  snapshot lookup, the events after it, decoding, folding) of the 10-event and
  of the 1,000-event interview, by an application without aggregate cache on
  the same store;
* for context, the 1,000-event interview replayed from all its events with
  the snapshots ignored, and a warm load through the service's own
  application (its aggregate cache, when configured, fast-forwarded).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from .common import Context, figure, fresh_database, print_figure, register_job_in

LOADS = 60  # per repetition
INTERVAL = 100


def run(ctx: Context) -> list[dict[str, Any]]:
    from eventsourcing.application import project_aggregate

    from services.interviews.adapters.audit_store import AuditStore
    from services.interviews.adapters.group_commit import GroupCommitter
    from services.interviews.application import InterviewsApplication
    from services.interviews.bootstrap import InterviewsContainer
    from services.interviews.settings import InterviewsSettings

    figures: list[dict[str, Any]] = []

    def add(f: dict[str, Any]) -> None:
        print_figure(f)
        figures.append(f)

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = (
            stack.enter_context(fresh_database(ctx.database_url, "bench_snap"))
            if ctx.database_url
            else None
        )
        container = InterviewsContainer(
            InterviewsSettings(database_url=url, data_dir=tmp, auth_secret="b" * 32)
        )
        stack.callback(container.close)
        app = container.interviews()
        short = _build(app, 10)
        long = _build(app, 1000)

        snapshots = list(app.snapshots.get(long)) if app.snapshots else []
        versions = [s.originator_version for s in snapshots]
        print(f"  (snapshots of the 1,000-event interview at versions {versions})", flush=True)
        if not versions or versions[-1] != 1000:
            raise AssertionError(f"expected a snapshot at version 1000, found {versions}")

        # A second application on the same store, without aggregate cache: cold loads.
        env = container.env() | {"AGGREGATE_CACHE_MAXSIZE": ""}  # "" turns the cache off
        cold = InterviewsApplication(env, audit_store=AuditStore, committer=GroupCommitter)
        assert cold.repository.cache is None
        stack.callback(cold.close)
        replayed = _count_replayed(cold, long)
        full = project_aggregate(None, cold.events.get(long))
        loaded = cold.repository.get(long)
        assert loaded.version == full.version == 1000, (loaded.version, full.version)
        assert loaded.__dict__ == full.__dict__, "the snapshot's state differs from a full replay"

        def timed(*loads: Any, n: int = LOADS) -> list[float]:
            """Median ms of each load, the loads interleaved so they share the noise."""
            samples: list[list[float]] = [[] for _ in loads]
            for _ in range(n):
                for load, mine in zip(loads, samples, strict=True):
                    started = time.perf_counter()
                    load()
                    mine.append(time.perf_counter() - started)
            return [statistics.median(mine) * 1000 for mine in samples]

        pairs = [
            timed(lambda: cold.repository.get(short), lambda: cold.repository.get(long))
            for _ in range(ctx.repetitions)
        ]
        t10, t1000 = [p[0] for p in pairs], [p[1] for p in pairs]
        t_all = [
            timed(lambda: project_aggregate(None, cold.events.get(long)), n=5)[0]
            for _ in range(ctx.repetitions)
        ]
        base = figure("load_interview_10_events_cold", t10, "ms")
        add(base)
        add(
            figure(
                "load_interview_1000_events_cold",
                t1000,
                "ms",
                baseline=base["name"],
                baseline_value=base["value"],
                goal=2.0,
                higher_is_better=False,
                goal_text="≤ 2x the 10-event load",
            )
        )
        add(
            figure(
                "events_replayed_after_snapshot_1000",
                [replayed],
                "events",
                goal=INTERVAL - 1,
                higher_is_better=False,
                goal_text=f"≤ {INTERVAL - 1} (snapshot used)",
            )
        )
        add(
            figure(
                "load_interview_1000_events_ignoring_snapshots",
                t_all,
                "ms",
                baseline=base["name"],
                baseline_value=base["value"],
            )
        )
        if app.repository.cache is not None:
            app.repository.get(long)  # into the cache
            add(
                figure(
                    "load_interview_1000_events_cached",
                    [timed(lambda: app.repository.get(long))[0] for _ in range(ctx.repetitions)],
                    "ms",
                    baseline=base["name"],
                    baseline_value=base["value"],
                )
            )
    return figures


def _count_replayed(app: Any, interview_id: uuid.UUID) -> int:
    """How many stored events a cold load reads after the snapshot it starts from."""
    counted = [0]
    original = app.events.get

    def counting(*args: Any, **kwargs: Any) -> Any:
        events = list(original(*args, **kwargs))
        counted[0] += len(events)
        return events

    app.events.get = counting
    try:
        app.repository.get(interview_id)
    finally:
        del app.events.get
    return counted[0]


def _build(app: Any, events: int) -> uuid.UUID:
    """An interview with ``events`` events; the last ten through the commands."""
    from services.interviews.domain import Actor, CommandContext, Interview, OfferTerms

    client = Actor(f"snap-client-{events}", "client")
    freelancer = Actor(f"snap-freelancer-{events}", "freelancer")
    terms = OfferTerms(Decimal("1200.00"), "EUR", "fixed")

    def ctx(actor: Actor) -> CommandContext:
        now = datetime.now(UTC)
        return CommandContext(actor, now, uuid.uuid4().hex, uuid.uuid4().hex)

    # Through the application's commands (and its committer): the last ten events.
    via_commands = min(events, 10)
    by_save = events - via_commands
    interview_id: uuid.UUID
    if by_save:
        interview = Interview.invite(
            ctx(client),
            interview_id=uuid.uuid4(),
            job_id=f"snap-job-{events}",
            freelancer_id=freelancer.id,
            expires_at=datetime.now(UTC) + timedelta(days=7),
        )
        interview.accept(ctx(freelancer))
        interview.start(ctx(client))
        while interview.version < by_save:
            if interview.status == "offer_extended":
                interview.decline_offer(ctx(freelancer), "too low")
            else:
                interview.extend_offer(ctx(client), terms, datetime.now(UTC) + timedelta(days=7))
            if interview.version % 10 == 0:
                app.save(interview)
        app.save(interview)
        interview_id = interview.id
    else:
        register_job_in(app, f"snap-job-{events}", client.id)
        interview_id = app.invite(
            ctx(client), job_id=f"snap-job-{events}", freelancer_id=freelancer.id
        ).id
        app.accept(ctx(freelancer), interview_id)
        app.start(ctx(client), interview_id)
    while (current := app.get_interview(interview_id)).version < events:
        if current.status == "offer_extended":
            app.decline_offer(ctx(freelancer), interview_id, "too low")
        else:
            app.extend_offer(
                ctx(client), interview_id, amount=terms.amount, currency="EUR", rate_type="fixed"
            )
    return interview_id
