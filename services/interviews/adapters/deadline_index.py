"""The deadline scheduler's tables: its index of open deadlines (``deadlines``),
the deadlines it set aside (``isolated_deadlines``) and its position in the
interview log (``scheduler_positions``), all in the interviews database.

An index batch and the new position are written in one transaction, and a
batch applies only if the position is still the one it was read from, so the
index never skips or double-applies an event, however often an instance
crashes. A change that cannot be written is isolated instead, so the others
are written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import sqlalchemy as sa
from eventsourcing import persistence as es_persistence

from ...common.db import DATABASE_OUTAGES, insert_ignore, upsert
from ..domain import Interview
from .tables import DEADLINES, ISOLATED, POSITIONS

log = logging.getLogger(__name__)

FOLLOWER = "deadlines"  # the scheduler's row in scheduler_positions, and its lease
# A database that is down is a reason to retry later, never to isolate a deadline.
OUTAGES: tuple[type[BaseException], ...] = (
    *DATABASE_OUTAGES,
    es_persistence.OperationalError,
    es_persistence.InterfaceError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class Deadline:
    interview_id: UUID
    what: str
    due_at: datetime
    version: int


@dataclass(frozen=True)
class IndexChange:
    """What one interview event means for the index: a deadline, or none below ``version``;
    ``problem`` when the event's deadline could not be read (it is isolated instead)."""

    interview_id: UUID
    version: int
    deadline: Deadline | None
    problem: str | None = None


@dataclass(frozen=True)
class IsolatedDeadline:
    """A deadline set aside for an operator: the scheduler could not index or expire it."""

    interview_id: UUID
    what: str | None
    due_at: str | None
    version: int
    stage: str
    error: str
    isolated_at: datetime


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


# Events that leave an open invitation or offer (and its deadline) as it was.
KEEPS_DEADLINE: tuple[type[Interview.Event], ...] = (Interview.Rescheduled,)


def change_for(event: Interview.Event) -> IndexChange | None:
    """What ``event`` means for the index; None if it leaves the deadline alone."""
    if isinstance(event, KEEPS_DEADLINE):
        return None
    what: str | None = None
    due_at: datetime | None = None
    if isinstance(event, Interview.Invited):
        what, due_at = "invitation", event.expires_at
    elif isinstance(event, Interview.OfferExtended):
        what, due_at = "offer", event.expires_at
    version = event.originator_version
    deadline = None
    if what is not None and due_at is not None:
        deadline = Deadline(event.originator_id, what, due_at, version)
    return IndexChange(event.originator_id, version, deadline)


class DeadlineIndex:
    """The ``deadlines`` table and the scheduler's position in the interview log."""

    def __init__(self, engine: sa.Engine, name: str = FOLLOWER) -> None:
        self.engine = engine
        self.name = name
        # Built once and run with a list of rows: building a statement per change
        # cost more than running it.
        self._upsert = upsert(
            engine,
            DEADLINES,
            ["interview_id"],
            ["what", "due_at", "version"],
            where=lambda new: DEADLINES.c.version <= new.version,
        )

    def create(self) -> None:
        """The follower's position row (its tables come from the interviews migrations)."""
        with self.engine.begin() as conn:
            conn.execute(
                insert_ignore(self.engine, POSITIONS, ["name"]).values(name=self.name, position=0)
            )

    def position(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(POSITIONS.c.position).where(POSITIONS.c.name == self.name)
            ).scalar_one()
        return int(value)

    def advance(
        self, expected: int, new: int, changes: Iterable[IndexChange]
    ) -> list[IsolatedDeadline] | None:
        """Applies ``changes`` and moves the position from ``expected`` to ``new`` in one
        transaction; None (and nothing written) if the position is no longer ``expected``.

        ``changes`` come in log order; the last one of an interview decides its
        deadline, so only that one is applied. A change that cannot be written is
        isolated in the same transaction (the others are written); the isolated
        ones are returned."""
        changes = list({change.interview_id: change for change in changes}.values())
        try:
            return self._advance(expected, new, changes, {})
        except OUTAGES:
            raise
        except Exception as error:  # find the change(s) at fault
            log.warning("deadline index batch failed (%s); trying each change", describe(error))
        return self._advance(expected, new, changes, self._probe(changes))

    def _advance(
        self, expected: int, new: int, changes: list[IndexChange], failing: dict[int, str]
    ) -> list[IsolatedDeadline] | None:
        isolated: list[IsolatedDeadline] = []
        with self.engine.begin() as conn:
            moved = conn.execute(
                sa.update(POSITIONS)
                .where(POSITIONS.c.name == self.name, POSITIONS.c.position == expected)
                .values(position=new)
            ).rowcount
            if moved != 1:
                return None
            puts: list[Deadline] = []
            clears: list[tuple[UUID, int]] = []
            for n, change in enumerate(changes):
                problem = change.problem or failing.get(n)
                if problem is not None:
                    isolated.append(self._isolate(conn, change, problem))
                elif change.deadline is not None:
                    puts.append(change.deadline)
                else:
                    clears.append((change.interview_id, change.version))
            self._write(conn, puts, clears)
        return isolated

    def _probe(self, changes: list[IndexChange]) -> dict[int, str]:
        """Tries each change alone in a transaction that is rolled back: which ones fail."""
        failing: dict[int, str] = {}
        for n, change in enumerate(changes):
            if change.problem is not None or change.deadline is None:
                continue
            with self.engine.connect() as conn:
                try:
                    with conn.begin() as transaction:
                        self._write(conn, [change.deadline], [])
                        transaction.rollback()
                except OUTAGES:
                    raise
                except Exception as error:  # this one is isolated
                    failing[n] = describe(error)
        return failing

    def _isolate(self, conn: sa.Connection, change: IndexChange, error: str) -> IsolatedDeadline:
        deadline = change.deadline
        row = IsolatedDeadline(
            interview_id=change.interview_id,
            what=deadline.what if deadline else None,
            due_at=_text_of(deadline.due_at) if deadline else None,
            version=change.version,
            stage="index",
            error=error,
            isolated_at=datetime.now(UTC),
        )
        self._write_isolated(conn, row)
        return row

    def isolate(self, deadline: Deadline, stage: str, error: str) -> IsolatedDeadline:
        """Moves a due row out of the index, for an operator to look at."""
        row = IsolatedDeadline(
            interview_id=deadline.interview_id,
            what=deadline.what,
            due_at=_text_of(deadline.due_at),
            version=deadline.version,
            stage=stage,
            error=error,
            isolated_at=datetime.now(UTC),
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(DEADLINES).where(
                    DEADLINES.c.interview_id == deadline.interview_id,
                    DEADLINES.c.version <= deadline.version,
                )
            )
            self._write_isolated(conn, row)
        return row

    def _write_isolated(self, conn: sa.Connection, row: IsolatedDeadline) -> None:
        values = {
            "what": row.what,
            "due_at": row.due_at,
            "version": row.version,
            "stage": row.stage,
            "error": row.error,
            "isolated_at": row.isolated_at,
        }
        conn.execute(
            upsert(
                self.engine,
                ISOLATED,
                ["interview_id"],
                list(values),
                where=lambda new: ISOLATED.c.version <= new.version,
            ).values(interview_id=row.interview_id, **values)
        )

    def isolated(self) -> list[IsolatedDeadline]:
        """The deadlines set aside, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(ISOLATED).order_by(ISOLATED.c.isolated_at)).all()
        return [IsolatedDeadline(**row._mapping) for row in rows]

    def count_isolated(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(ISOLATED)).scalar_one())

    def release(self, interview_id: UUID) -> bool:
        """Forgets an isolated deadline (the caller re-derives it); False if none was."""
        with self.engine.begin() as conn:
            gone = conn.execute(sa.delete(ISOLATED).where(ISOLATED.c.interview_id == interview_id))
        return bool(gone.rowcount)

    def put(self, deadline: Deadline) -> None:
        with self.engine.begin() as conn:
            self._write(conn, [deadline], [])

    def clear(self, interview_id: UUID, below: int) -> None:
        """Forgets the interview's deadline if it was set before version ``below``."""
        with self.engine.begin() as conn:
            self._write(conn, [], [(interview_id, below)])

    def due(self, now: datetime, limit: int) -> list[Deadline]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(DEADLINES)
                .where(DEADLINES.c.due_at <= now)
                .order_by(DEADLINES.c.due_at)
                .limit(limit)
            ).all()
        return [Deadline(r.interview_id, r.what, r.due_at, r.version) for r in rows]

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.min(DEADLINES.c.due_at))).scalar()

    def all(self) -> list[Deadline]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(DEADLINES).order_by(DEADLINES.c.due_at)).all()
        return [Deadline(r.interview_id, r.what, r.due_at, r.version) for r in rows]

    def _write(
        self, conn: sa.Connection, puts: list[Deadline], clears: list[tuple[UUID, int]]
    ) -> None:
        """Sets each deadline of ``puts`` (unless the index holds a later one) and
        forgets each interview's deadline set before the version in ``clears``; a
        deadline set aside before either is moot. At most one entry per interview."""
        if puts:
            conn.execute(
                self._upsert,
                [
                    {"interview_id": d.interview_id, "what": d.what, "due_at": d.due_at,
                     "version": d.version}
                    for d in puts
                ],
            )  # fmt: skip
        if clears:
            conn.execute(_CLEAR, [{"id": i, "below": v} for i, v in clears])
        moot = [{"id": d.interview_id, "below": d.version} for d in puts]
        moot += [{"id": i, "below": v} for i, v in clears]
        if moot:
            conn.execute(_SUPERSEDE, moot)


_CLEAR = sa.delete(DEADLINES).where(
    DEADLINES.c.interview_id == sa.bindparam("id"), DEADLINES.c.version < sa.bindparam("below")
)
_SUPERSEDE = sa.delete(ISOLATED).where(
    ISOLATED.c.interview_id == sa.bindparam("id"), ISOLATED.c.version < sa.bindparam("below")
)


def _text_of(value: datetime) -> str:
    return value.isoformat()
