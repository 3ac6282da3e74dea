"""Reminders: the party who must answer an invitation or offer is reminded, once,
``REMINDER_LEAD_HOURS`` before its deadline; both parties are reminded, once,
``MEETING_REMINDER_LEAD_MINUTES`` before a scheduled interview.

Two halves, sharing the table ``reminder_deadlines`` (one row per interview
and ``what``: invitation, offer or meeting):

- ``ReminderIndex`` is part of the consumer's batch write (``apply``), so it runs
  in the runner's transaction with the inbox entries and the position: an
  ``interview.invited`` / ``interview.offer_extended`` with an ``expires_at``
  opens the row (a revised offer replaces the previous offer's row); an
  answer, cancellation or expiry closes it. ``interview.started`` with a
  ``scheduled_at`` opens the meeting's row and ``interview.rescheduled``
  replaces it (the reminder moves to the new time; one for the old time is
  not sent, and one already sent does not stop the new one); any final state
  (hired, cancelled, expired) closes it. Each row keeps the interview
  version of the last event that changed it, and an event that is not newer
  changes nothing, so a stale or duplicate event never reopens a row.
  The meeting's row also keeps its calendar ``SEQUENCE`` (``calendar_sequence``),
  by the feed's rules (``common.calendar``): 0 at the start, one more per
  reschedule, one more on cancellation. ``apply`` folds a batch's events over
  the stored rows and returns, per started, rescheduled or cancelled event of a
  meeting with a time, the ``CalendarChange`` its e-mails carry as an ``.ics``.
- ``ReminderWorker`` settles due rows: in ONE transaction it records the
  reminder through the ``NotificationRecorder`` (inbox entry + pending
  deliveries, under the reminder's stable id) and marks the row sent. Rows
  are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite has one
  writer at a time), the mark is guarded by status and version, and the
  notification id is unique: two workers, or one restarted after a crash,
  send a reminder once. A row whose deadline passed before it could be sent is
  marked skipped. Between rounds the worker sleeps until the next due time,
  never longer than ``REMINDER_MAX_SLEEP_SECONDS``, and is woken when the
  consumer of its own process opens a row.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa

from ..common.db import in_transaction, upsert, write_rows
from ..common.instants import shifted, to_utc
from ..common.loop import LoopWorker
from ..common.revealed import typed_data
from ..common.sql_values import bound_values, one_of_bound
from ..contracts import EventEnvelope
from ..contracts.envelope import RescheduledData, StartedData
from .adapters.tables import reminder_deadlines
from .recorder import NotificationRecorder, read_audience
from .rules import CalendarChange, Deadline, drafts_for_reminder, uuid_text

log = logging.getLogger(__name__)

What = Literal["invitation", "offer", "meeting"]

OPENS: dict[str, What] = {
    "interview.invited": "invitation",
    "interview.offer_extended": "offer",
    "interview.started": "meeting",
    "interview.rescheduled": "meeting",
}
CLOSES: dict[str, tuple[What, ...]] = {
    "interview.accepted": ("invitation",),
    "interview.declined": ("invitation",),
    "interview.offer_accepted": ("offer", "meeting"),
    "interview.offer_declined": ("offer",),
    "interview.offer_withdrawn": ("offer",),
    "interview.cancelled": ("invitation", "offer", "meeting"),
    "interview.expired": ("invitation", "offer", "meeting"),
}
# The row's recipient_id (DESIGN): the invited freelancer answers invitations and
# offers alike; a meeting's row names the client, and its reminder goes to both.
ANSWERED_BY: dict[What, str] = {
    "invitation": "freelancer",
    "offer": "freelancer",
    "meeting": "client",
}

_KEY = ("interview_id", "what")

STARTED, RESCHEDULED, CANCELLED = (
    "interview.started",
    "interview.rescheduled",
    "interview.cancelled",
)
# The events that change the meeting's row (and so its version).
MEETING_EVENTS = frozenset(t for t, what in OPENS.items() if what == "meeting") | frozenset(
    t for t, whats in CLOSES.items() if "meeting" in whats
)


@dataclass(frozen=True)
class _Meeting:
    """A meeting's row as the fold of a batch goes (``sequence`` None: unknown)."""

    version: int
    sequence: int | None
    scheduled_at: datetime | None
    duration_minutes: int


@functools.lru_cache(maxsize=32)
def _upsert_statement(dialect: str, kind: str, columns: tuple[str, ...]) -> Any:
    """An upsert of ``reminder_deadlines``: on an existing row, if the new one is newer,
    updates it as ``kind`` says ("open": every column but the key; "close": see
    ``_on_close``). Built once per dialect, kind and columns, executed with each row's values:
    building ``excluded`` and its column proxies anew took most of the consumer's
    time per event."""
    return upsert(
        dialect,
        reminder_deadlines,
        _KEY,
        [c for c in columns if c not in _KEY] if kind == "open" else _on_close,
        where=lambda new: reminder_deadlines.c.version < new.version,
    )


@functools.cache
def _stored_rows_query(dialect: str, *, meetings_only: bool) -> sa.Select[Any]:
    """The stored rows of the interviews bound to ``ids`` (only their meetings'
    rows if ``meetings_only``), for ``ReminderIndex._fold_meetings``: built once,
    run every batch."""
    t = reminder_deadlines
    where = one_of_bound(dialect, t.c.interview_id, "ids")
    if meetings_only:
        where = sa.and_(t.c.what == "meeting", where)
    return sa.select(
        t.c.interview_id,
        t.c.version,
        t.c.calendar_sequence,
        t.c.expires_at,
        t.c.duration_minutes,
        t.c.what,
    ).where(where)


def _on_close(new: Any) -> dict[str, Any]:
    """A closing event closes a pending row and keeps a sent or skipped one as it is."""
    pending = reminder_deadlines.c.status == "pending"
    return {
        "version": new.version,
        "status": sa.case((pending, "closed"), else_=reminder_deadlines.c.status),
        "reason": sa.case((pending, new.reason), else_=reminder_deadlines.c.reason),
        "updated_at": new.updated_at,
        # A cancellation counts in the meeting's calendar sequence; other closes keep it.
        "calendar_sequence": sa.func.coalesce(
            new.calendar_sequence, reminder_deadlines.c.calendar_sequence
        ),
    }


class ReminderIndex:
    """Consumer handler part: keeps ``reminder_deadlines`` in step with the events."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        lead: timedelta,
        meeting_lead: timedelta = timedelta(minutes=60),
    ) -> None:
        self.clock = clock
        self.lead = lead
        self.meeting_lead = meeting_lead
        self.opened = 0  # rows this process opened
        # The earliest due time of the rows opened since ``take_opened_due``.
        self._opened_due: datetime | None = None

    def take_opened_due(self) -> datetime | None:
        """The earliest due time of the rows opened since the last call (None: none
        opened), for the consumer to wake the worker after its commit if need be."""
        due, self._opened_due = self._opened_due, None
        return due

    def apply(
        self, conn: sa.Connection, events: Sequence[EventEnvelope]
    ) -> dict[UUID, CalendarChange]:
        """The changes of ``events`` (in order) in one statement per kind of change.

        A row changed several times in the batch is written once, in its final state
        (``_collapsed``), when its changes' versions rise and its stored version is
        known (read with the meetings' rows): the guard would have let each of them
        through in turn, or refused each that is not newer than the stored row. Any
        other row's changes go in rounds: a round touches a row at most once
        (PostgreSQL refuses a statement that updates a row twice), so each row's
        changes keep their order.

        Returns the calendar change of each started, rescheduled or cancelled
        event (by event id) whose meeting has a time and a known sequence."""
        # Each event's typed data read once (the fold and the opening row both need it).
        # By the envelope object (alive for the call): a ``UUID`` key would cost its
        # Python ``__hash__`` and ``__eq__`` per lookup.
        typed: dict[int, Any] = {}

        def data_of(event: EventEnvelope) -> Any:
            data = typed.get(id(event))
            if data is None:
                data = typed[id(event)] = typed_data(event)
            return data

        now = self.clock()
        by_row: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        changed: list[tuple[EventEnvelope, list[tuple[str, dict[str, Any]]]]] = []
        for event in events:
            changes = self._changes(event, now, data_of)
            changed.append((event, changes))
            for change in changes:
                row = change[1]
                by_row.setdefault((row["interview_id"], row["what"]), []).append(change)
        several = {key[0] for key, changes in by_row.items() if len(changes) > 1}
        sequences, calendars, stored = self._fold_meetings(conn, events, data_of, several)
        if sequences:
            for event, changes in changed:
                if event.type in MEETING_EVENTS:
                    sequence = sequences.get(event.id)
                    for _, row in changes:
                        if row["what"] == "meeting":
                            row["calendar_sequence"] = sequence
        rounds: list[dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]]] = []
        for key, changes in by_row.items():
            if len(changes) > 1:
                changes = _collapsed(changes, stored.get(key))
            for n, (kind, row) in enumerate(changes):
                if n == len(rounds):
                    rounds.append({})
                rounds[n].setdefault((kind, tuple(row)), []).append(row)
        for changes_of_round in rounds:
            for (kind, columns), rows in changes_of_round.items():
                write_rows(conn, _upsert_statement(conn.dialect.name, kind, columns), rows)
        return calendars

    def _fold_meetings(
        self,
        conn: sa.Connection,
        events: Sequence[EventEnvelope],
        data_of: Callable[[EventEnvelope], Any] = typed_data,
        several: set[str] | frozenset[str] = frozenset(),
    ) -> tuple[dict[UUID, int | None], dict[UUID, CalendarChange], dict[tuple[str, str], int]]:
        """Each meeting event's calendar sequence, and the calendar changes, folded
        over the stored meeting rows in event order. A stale or duplicate event (not
        newer than the row) changes nothing, as in the upsert. Also the stored version
        of every row of the interviews in ``several`` (read in the same statement)."""
        meetings: dict[str, _Meeting] = {}  # by interview id as text (as stored)
        stored: dict[tuple[str, str], int] = {}
        meeting_ids = {uuid_text(e.interview_id) for e in events if e.type in MEETING_EVENTS}
        ids = sorted(meeting_ids | several)
        if ids:
            dialect = conn.dialect.name
            query = _stored_rows_query(dialect, meetings_only=not several)
            for row in conn.execute(query, {"ids": bound_values(dialect, ids)}).all():
                stored[(row.interview_id, row.what)] = row.version
                if row.what == "meeting" and row.interview_id in meeting_ids:
                    meetings[row.interview_id] = _Meeting(
                        row.version,
                        row.calendar_sequence,
                        row.expires_at,
                        row.duration_minutes or 30,
                    )
        sequences: dict[UUID, int | None] = {}
        calendars: dict[UUID, CalendarChange] = {}
        for event in events:
            if event.type not in MEETING_EVENTS:
                continue
            interview = uuid_text(event.interview_id)
            meeting = meetings.get(interview)
            if meeting is not None and event.version <= meeting.version:
                continue
            data = data_of(event)
            if isinstance(data, StartedData):
                meeting = _Meeting(
                    event.version,
                    0,
                    to_utc(data.scheduled_at) if data.scheduled_at is not None else None,
                    data.duration_minutes,
                )
            elif isinstance(data, RescheduledData):
                before = meeting.sequence if meeting is not None else None
                meeting = _Meeting(
                    event.version,
                    before + 1 if before is not None else None,
                    to_utc(data.scheduled_at),
                    data.duration_minutes,
                )
            elif meeting is None:
                continue  # closed before it was ever started: nothing to cancel
            elif event.type == CANCELLED:
                sequence = meeting.sequence + 1 if meeting.sequence is not None else None
                meeting = _Meeting(
                    event.version, sequence, meeting.scheduled_at, meeting.duration_minutes
                )
            else:
                meeting = _Meeting(
                    event.version, meeting.sequence, meeting.scheduled_at, meeting.duration_minutes
                )
            meetings[interview] = meeting
            sequences[event.id] = meeting.sequence
            if (
                event.type in (STARTED, RESCHEDULED, CANCELLED)
                and meeting.sequence is not None
                and meeting.scheduled_at is not None
            ):
                calendars[event.id] = CalendarChange(
                    interview_id=event.interview_id,
                    sequence=meeting.sequence,
                    scheduled_at=meeting.scheduled_at,
                    duration_minutes=meeting.duration_minutes,
                    stamp=to_utc(event.occurred_at),
                    cancelled=event.type == CANCELLED,
                )
        return sequences, calendars, stored

    def _changes(
        self,
        event: EventEnvelope,
        now: datetime,
        data_of: Callable[[EventEnvelope], Any] = typed_data,
    ) -> list[tuple[str, dict[str, Any]]]:
        changes = []
        if event.type in OPENS:
            changes.append(("open", self._open(event, OPENS[event.type], now, data_of(event))))
        for what in CLOSES.get(event.type, ()):
            changes.append(("close", self._close(event, what, now)))
        return changes

    def _row(
        self,
        event: EventEnvelope,
        what: What,
        now: datetime,
        status: str,
        reason: str | None,
        due_at: datetime | None = None,
        expires_at: datetime | None = None,
        duration_minutes: int | None = None,
    ) -> dict[str, Any]:
        """The row as one change leaves it, built whole (every change writes the same
        columns, in this order: the upserts are built once per columns)."""
        return {
            "interview_id": uuid_text(event.interview_id),
            "what": what,
            "version": event.version,
            "recipient_id": (
                event.freelancer_id if ANSWERED_BY[what] == "freelancer" else event.client_id
            ),
            "job_id": event.job_id,
            "client_id": event.client_id,
            "freelancer_id": event.freelancer_id,
            "notification_id": None,
            "updated_at": now,
            "duration_minutes": duration_minutes,
            "calendar_sequence": None,
            "status": status,
            "due_at": due_at,
            "expires_at": expires_at,
            "reason": reason,
        }

    def _open(self, event: EventEnvelope, what: What, now: datetime, data: Any) -> dict[str, Any]:
        duration = None
        if what == "meeting":
            raw = getattr(data, "scheduled_at", None)
            lead, nothing = self.meeting_lead, "no time scheduled"
            duration = getattr(data, "duration_minutes", None)
        else:
            raw = getattr(data, "expires_at", None)
            lead, nothing = self.lead, "no deadline"
        expires_at = to_utc(raw) if raw is not None else None
        if expires_at is None:
            # No deadline or time (any previous row of this kind is replaced all the same).
            return self._row(event, what, now, "closed", nothing, duration_minutes=duration)
        due_at = shifted(expires_at, -lead)
        if due_at <= to_utc(event.occurred_at):
            # Set with less than the lead time to go: the event's own notification
            # says "Please answer by ..." or "scheduled for ...", a reminder right
            # after it would only repeat it.
            status, reason = (
                "skipped",
                (
                    "the meeting was scheduled within the reminder lead time"
                    if what == "meeting"
                    else "the deadline was set within the reminder lead time"
                ),
            )
        else:
            status, reason = "pending", None
            self.opened += 1
            if self._opened_due is None or due_at < self._opened_due:
                self._opened_due = due_at
        return self._row(event, what, now, status, reason, due_at, expires_at, duration)

    def _close(self, event: EventEnvelope, what: What, now: datetime) -> dict[str, Any]:
        # With no row yet (an event out of order) the closed row is a tombstone that
        # the older opening event cannot overwrite.
        return self._row(event, what, now, "closed", event.type)


def _collapsed(
    changes: list[tuple[str, dict[str, Any]]], stored: int | None
) -> list[tuple[str, dict[str, Any]]]:
    """One row's changes in a batch (in event order) as the fewest that leave the row
    as executing each in turn would, given the row's stored ``version`` (None: no row).

    With rising versions, a change not newer than the stored row changes nothing and
    every later one takes effect: an opening replaces every column, so what came
    before it does not count and the closes after it fold into its row (a close
    closes a pending row with its reason, keeps any other status, raises the version
    and takes its calendar sequence when it has one). Closes with no opening before
    them become one close: the first one's row at the last version, with the last
    calendar sequence given (the upsert decides against the stored status, which the
    reminder worker may change meanwhile). Versions that do not rise: as they are."""
    versions = [row["version"] for _, row in changes]
    if any(a >= b for a, b in zip(versions, versions[1:], strict=False)):
        return changes
    if stored is not None:
        changes = [(kind, row) for kind, row in changes if row["version"] > stored]
        if len(changes) < 2:
            return changes
    opens = [n for n, (kind, _) in enumerate(changes) if kind == "open"]
    first = opens[-1] if opens else 0
    kind, row = changes[first][0], dict(changes[first][1])
    for _, close in changes[first + 1 :]:
        if kind == "open" and row["status"] == "pending":
            row["status"], row["reason"] = "closed", close["reason"]
        row["version"], row["updated_at"] = close["version"], close["updated_at"]
        if close["calendar_sequence"] is not None:
            row["calendar_sequence"] = close["calendar_sequence"]
    return [(kind, row)]


class ReminderWorker(LoopWorker):
    """Sends due reminders. ``run_once`` for tests; ``start``/``stop`` run it on a
    thread; ``wake`` makes it look again at once (a row was opened)."""

    def __init__(
        self,
        engine: sa.Engine,
        recorder: NotificationRecorder,
        *,
        clock: Callable[[], datetime],
        batch_size: int = 100,
        max_sleep_seconds: float = 5.0,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.recorder = recorder
        self.clock = clock
        self.batch_size = batch_size
        self.max_sleep_seconds = max_sleep_seconds
        self.on_sent = on_sent
        super().__init__("reminder-worker", on_error_delay=max_sleep_seconds, logger=log)
        self.counts: dict[str, int] = {"sent": 0, "skipped": 0}
        # When the loop's next round starts; None while a round runs (it may not see
        # a row committed meanwhile).
        self._next_round: datetime | None = None

    # ------------------------------------------------------------------ running

    def run_once(self) -> int:
        """Settles the rows due now (one batch); returns how many were sent or skipped."""
        now = self.clock()
        sent, skipped = in_transaction(self.engine, lambda conn: self._settle(conn, now))
        self.counts["sent"] += sent
        self.counts["skipped"] += skipped
        if sent and self.on_sent is not None:
            self.on_sent()
        return sent + skipped

    def next_due(self, after: datetime) -> datetime | None:
        """The earliest due time of a pending row later than ``after``."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(reminder_deadlines.c.due_at)).where(
                    reminder_deadlines.c.status == "pending",
                    reminder_deadlines.c.due_at > after,
                )
            ).scalar()
        if value is None:
            return None
        # min() bypasses the column type's result processing on SQLite.
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return to_utc(value)

    def sleep_seconds(self) -> float:
        """How long the loop may sleep: until the next due row, at most the configured maximum."""
        now = self.clock()
        due = self.next_due(now)
        if due is None:
            return self.max_sleep_seconds
        return min(self.max_sleep_seconds, max(0.01, (due - now).total_seconds()))

    def _round(self) -> float:
        self._next_round = None
        # A full batch: more may be due now. Otherwise sleep until the next one.
        delay = 0.0 if self.run_once() >= self.batch_size else self.sleep_seconds()
        self._next_round = shifted(self.clock(), timedelta(seconds=delay))
        return delay

    def wake_for(self, due_at: datetime) -> None:
        """A row due at ``due_at`` was committed: wakes the loop unless its next round
        comes first (that round finds the row and sleeps until it is due). Under load
        most rows opened are due hours or days ahead: no round for each of them."""
        next_round = self._next_round
        if next_round is None or due_at < next_round:
            self.wake()

    # ------------------------------------------------------------------ settling

    def _settle(self, conn: sa.Connection, now: datetime) -> tuple[int, int]:
        t = reminder_deadlines
        query = (
            sa.select(t)
            .where(t.c.status == "pending", t.c.due_at <= now)
            .order_by(t.c.due_at)
            .limit(self.batch_size)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        sent = skipped = 0
        due = conn.execute(query).all()
        audience = read_audience(conn, {u for r in due for u in (r.client_id, r.freelancer_id)})
        for row in due:
            unchanged = sa.and_(
                t.c.interview_id == row.interview_id,
                t.c.what == row.what,
                t.c.status == "pending",
                t.c.version == row.version,
            )
            if now >= row.expires_at:
                done = conn.execute(
                    t.update()
                    .where(unchanged)
                    .values(
                        status="skipped",
                        reason=(
                            "the meeting started before the reminder went out"
                            if row.what == "meeting"
                            else "the deadline passed before the reminder went out"
                        ),
                        updated_at=now,
                    )
                )
                skipped += done.rowcount
                continue
            deadline = Deadline(
                what=row.what,
                interview_id=UUID(row.interview_id),
                job_id=row.job_id,
                client_id=row.client_id,
                freelancer_id=row.freelancer_id,
                expires_at=row.expires_at,
                duration_minutes=row.duration_minutes,
                version=row.version,
            )
            drafts = drafts_for_reminder(deadline, now, audience.zones)
            done = conn.execute(
                t.update()
                .where(unchanged)
                .values(
                    status="sent",
                    notification_id=str(drafts[0].id) if drafts else None,
                    updated_at=now,
                )
            )
            if done.rowcount == 1:
                # Same transaction: the mark and the inbox entry commit together. The
                # reminder's id is stable, so even a second writer records it once.
                self.recorder.record(conn, drafts, webhooks=audience.webhooks)
                sent += 1
        return sent, skipped
