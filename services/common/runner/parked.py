"""Parked events: what ``interviewctl dlq list|retry|skip`` and ``consumer prune``
do with a group's bookkeeping.

The runner parks an event whose batch it cannot apply after its retries, and
every later event of the same interview behind it (table ``parked_events``),
so per-interview order holds while other interviews go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from ...contracts import EventEnvelope
from ..consumer import INFRASTRUCTURE_ERRORS, Batch, ConsumerSpec
from ..migrations import migrate
from .tables import (
    RUNNER_HISTORY,
    migrate_consumer_database,
    parked_events,
    processed_events,
    processed_ids,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParkedEvent:
    """One row of ``parked_events``: the event, where it came from and why it waits."""

    id: int
    group: str
    interview_id: str
    event_id: str
    type: str
    version: int
    position: int
    source: str | None
    error: str
    attempts: int
    parked_at: datetime
    payload: str


@dataclass
class RetryReport:
    applied: list[str] = field(default_factory=list)  # event ids
    still_parked: dict[str, str] = field(default_factory=dict)  # interview id -> error
    # The highest position applied (what ``on_committed`` was told); None: none was.
    position: int | None = None


def park(
    conn: sa.Connection,
    group: str,
    envelope: EventEnvelope,
    *,
    where: str | None,
    error: str,
    attempts: int,
) -> None:
    """Parks ``envelope`` (read at ``where``, if from Kafka) with the error that stopped it."""
    conn.execute(
        parked_events.insert().values(
            group=group,
            interview_id=str(envelope.interview_id),
            event_id=str(envelope.id),
            type=envelope.type,
            version=envelope.version,
            position=envelope.position,
            source=where,
            payload=envelope.model_dump_json(),
            error=error[:4000],
            attempts=attempts,
            parked_at=datetime.now(UTC),
        )
    )


def prune_processed(engine: sa.Engine, group: str, keep_positions: int) -> int:
    """Forgets the ids of events more than ``keep_positions`` log positions older
    than the newest one the group processed; returns how many.

    ``processed_events`` only has to catch what can still come again: a relay
    republishing after a crash (from its recorded position, moments behind) or a
    rebalance. Older ids are dead weight, and even if such an event came back
    its effects are guarded by the views' versions and the notifications' stable ids."""
    if keep_positions < 0:
        raise ValueError("keep_positions must be 0 or more")
    migrate(engine, [RUNNER_HISTORY])
    with engine.begin() as conn:
        newest = conn.execute(
            sa.select(sa.func.max(processed_events.c.position)).where(
                processed_events.c.group == group
            )
        ).scalar()
        if newest is None or newest - keep_positions <= 0:
            return 0
        return conn.execute(
            processed_events.delete().where(
                processed_events.c.group == group,
                processed_events.c.position < newest - keep_positions,
            )
        ).rowcount


def count_parked(engine: sa.Engine, group: str) -> int:
    """How many events the group has parked."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(parked_events)
                .where(parked_events.c.group == group)
            ).scalar()
            or 0
        )


def list_parked(
    engine: sa.Engine, group: str, interview_id: str | None = None
) -> list[ParkedEvent]:
    """The group's parked events (of one interview, if given), in log order."""
    query = sa.select(parked_events).where(parked_events.c.group == group)
    if interview_id:
        query = query.where(parked_events.c.interview_id == interview_id)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(parked_events.c.position, parked_events.c.id)).all()
    return [ParkedEvent(**row._mapping) for row in rows]


def retry_parked(spec: ConsumerSpec, interview_id: str | None = None) -> RetryReport:
    """Re-applies parked events in order through ``spec.apply``, interview by interview,
    each event in its own transaction.

    An interview stops at its first event that fails again (it stays parked
    with the new error, and so do the events after it). ``on_committed`` is
    then told the highest position applied, never that of an event still parked.
    """
    report = RetryReport()
    migrate_consumer_database(spec)
    by_interview: dict[str, list[ParkedEvent]] = {}
    for event in list_parked(spec.engine, spec.group, interview_id):
        by_interview.setdefault(event.interview_id, []).append(event)
    applied_positions: list[int] = []
    for interview, events in by_interview.items():
        for event in events:
            try:
                _apply_parked(spec, event)
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as error:
                message = f"{type(error).__name__}: {error}"
                with spec.engine.begin() as conn:
                    conn.execute(
                        parked_events.update()
                        .where(parked_events.c.id == event.id)
                        .values(error=message[:4000], attempts=parked_events.c.attempts + 1)
                    )
                report.still_parked[interview] = message
                break
            report.applied.append(event.event_id)
            applied_positions.append(event.position)
    if applied_positions:
        report.position = max(applied_positions)
        if spec.on_committed is not None:
            try:
                spec.on_committed(report.position)
            except Exception:
                log.exception("on_committed failed after a retry")
    return report


def _apply_parked(spec: ConsumerSpec, event: ParkedEvent) -> None:
    """One parked event through ``spec.apply`` (unless already processed), then out
    of ``parked_events``: one transaction."""
    envelope = EventEnvelope.model_validate_json(event.payload)
    with spec.engine.begin() as conn:
        if not processed_ids(conn, spec.group, [event.event_id]):
            spec.apply(conn, Batch([envelope]))
            conn.execute(
                processed_events.insert().values(
                    group=spec.group, event_id=event.event_id, position=envelope.position
                )
            )
        conn.execute(parked_events.delete().where(parked_events.c.id == event.id))


def skip_parked(
    engine: sa.Engine,
    group: str,
    *,
    event_id: str | None = None,
    interview_id: str | None = None,
) -> list[str]:
    """Drops parked events without applying them; they count as processed.

    Returns the skipped event ids. With ``event_id``, later parked events of
    its interview stay parked until retried.
    """
    if not event_id and not interview_id:
        raise ValueError("name an event id or an interview id to skip")
    migrate(engine, [RUNNER_HISTORY])
    query = sa.select(parked_events).where(parked_events.c.group == group)
    if event_id:
        query = query.where(parked_events.c.event_id == event_id)
    if interview_id:
        query = query.where(parked_events.c.interview_id == interview_id)
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        done = processed_ids(conn, group, [row.event_id for row in rows]) if rows else set()
        for row in rows:
            if row.event_id not in done:
                conn.execute(
                    processed_events.insert().values(
                        group=group, event_id=row.event_id, position=row.position
                    )
                )
            conn.execute(parked_events.delete().where(parked_events.c.id == row.id))
    return [row.event_id for row in rows]
