"""Everything downstream of the event store, driven by hand: the projections and
notifications consumers (the runner's own code, fed from the store's log in
process), the deadline scheduler (tick by tick) and a rebuild of the views.

``Downstream.drain()`` applies whatever the log holds; then ``parked()``,
``view()``, ``inbox()`` and ``scheduler.index()`` say what each of them made
of it. No thread, no sleep: tests move a FakeClock and call ``drain``.

The interviews these tests feed them are made here too: ``invite_directly``
(the application's own command, its job registered first) and
``append_as_an_older_release`` (an entry the domain now refuses, written into
the append-only log as a release before the input bounds wrote it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from eventsourcing.utils import get_topic

from services.common.consumer import ConsumerSpec
from services.common.runner.parked import ParkedEvent, list_parked
from services.contracts import EventEnvelope
from services.interviews.application import InterviewsApplication
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Actor, CommandContext, Interview
from services.interviews.domain.hashing import GENESIS, chain_hash
from services.interviews.scheduler import Scheduler
from services.platform import embedded_feed
from services.projections.adapters.schema import view_tables
from services.projections.adapters.store import current_generation, row_from_db
from services.projections.rebuild import RebuildReport
from tests.jobs import ensure_job
from tests.support.consumers import InProcessConsumers

GROUPS = ("projections", "notifications")
CLIENT = "client-1"


def as_party(user: str, role: str, at: datetime) -> CommandContext:
    return CommandContext(Actor(user, role), at, "corr", "req")  # type: ignore[arg-type]


def invite_directly(
    app: InterviewsApplication,
    at: datetime,
    freelancer: str,
    *,
    job_id: str | None = None,
    **options: Any,
) -> UUID:
    """``CLIENT`` invites ``freelancer`` to ``job_id`` (default ``job-<freelancer>``,
    registered first) through the application's command."""
    job_id = job_id or f"job-{freelancer}"
    ensure_job(app, job_id, CLIENT, at)
    ctx = as_party(CLIENT, "client", at)
    return app.invite(ctx, job_id=job_id, freelancer_id=freelancer, **options).id


def append_as_an_older_release(
    app: InterviewsApplication,
    event_class: type[Interview.Event],
    ctx: CommandContext,
    interview_id: UUID | None = None,
    **data: Any,
) -> UUID:
    """Appends one interview event to the event store as a release before the input
    bounds wrote it: the values as given (an instant in the caller's offset, never
    converted to UTC), no command guard in the way, linked into the interview's hash
    chain so ``verify`` still holds. The domain refuses such values now, but the log
    is append-only: entries written before (a deadline in year 9999, a meeting in
    year 1) stay, and every service downstream must survive them.

    ``Invited`` (no ``interview_id``) starts a new interview; ``data`` is then all
    of its fields (job_id, client_id, freelancer_id, message, expires_at). The event
    is the domain's own class, encoded by the application's mapper: the same bytes
    that release stored. Returns the interview's id."""
    extra: dict[str, Any] = {}
    if interview_id is None:
        assert event_class is Interview.Invited, "only an invitation starts an interview"
        interview_id, version, prev_hash = uuid4(), Interview.INITIAL_VERSION, GENESIS
        extra["originator_topic"] = get_topic(Interview)
    else:
        previous = app.interview_events(interview_id)[-1]
        version, prev_hash = previous.originator_version + 1, previous.hash
    fields = {
        "originator_id": interview_id,
        "originator_version": version,
        "timestamp": ctx.at,
        "actor_id": ctx.actor.id,
        "actor_role": ctx.actor.role,
        "correlation_id": ctx.correlation_id,
        "causation_id": ctx.causation_id,
        "prev_hash": prev_hash,
        **data,
        **extra,
    }
    digest = chain_hash(prev_hash, event_class(**fields, hash="").chained_fields())
    event = event_class(**fields, hash=digest)
    app.recorder.insert_events([app.mapper.to_stored_event(event)])
    return interview_id


class Downstream(InProcessConsumers):
    """The downstream services of one interviews container (each its own database),
    fed from its event store's log, and its deadline scheduler."""

    def __init__(
        self,
        interviews: InterviewsContainer,
        data_dir: Path,
        *,
        clock: Callable[[], Any],
        projections_url: str | None = None,
        notifications_url: str | None = None,
        wrap: Callable[[ConsumerSpec], ConsumerSpec] = lambda spec: spec,
    ) -> None:
        app = interviews.interviews()
        read, _ = embedded_feed(app)
        super().__init__(
            read,
            interviews.key_store(),
            data_dir,
            clock=clock,
            log_head=app.max_position,
            projections_url=projections_url,
            notifications_url=notifications_url,
            wrap=wrap,
        )
        self.interviews = interviews
        self.scheduler = Scheduler(interviews, clock=clock, max_sleep=0.05, lease_seconds=1.0)

    def drain(self) -> None:
        """Every consumer applies the log up to its end, and the scheduler takes one tick."""
        super().drain()
        self.scheduler.run_once()

    def log(self) -> list[EventEnvelope]:
        return self.read(0, 1_000_000)

    def parked(self) -> dict[str, list[ParkedEvent]]:
        return {g: list_parked(self.specs[g].engine, g) for g in GROUPS}

    def view(self, interview_id: str) -> dict[str, Any] | None:
        """The interview's row in the views the API reads (None if absent)."""
        with self.projections.engine().connect() as conn:
            generation = current_generation(conn)
            assert generation is not None
            t = view_tables(generation.number).interviews
            record = conn.execute(sa.select(t).where(t.c.interview_id == interview_id)).first()
        return None if record is None else row_from_db(record)

    def inbox(self, user: str) -> list[dict[str, Any]]:
        return (
            self.notifications.inbox()
            .list_notifications(user, unread=None, limit=500, cursor=None)
            .items
        )

    def rebuild(self) -> RebuildReport:
        return self.projections.rebuild()

    def close(self) -> None:
        self.scheduler.stop()
        super().close()
