"""Folding interview events into read-model rows: pure functions, no I/O.

One row per interview (a plain dict whose keys are the view's columns) and
one timeline entry per applied event. ``FACTS`` maps each event type to the
function that records what the event tells (the handlers per event type);
``fold`` adds the rules every event shares:

* exactly once: an event whose version is not greater than the row's is a
  duplicate or stale and changes nothing;
* gaps: an event that skips versions is applied, and the skipped versions
  are remembered in ``missing``. The status after an event depends only on
  the event (``rescheduled`` keeps the status of the highest version that set
  one), so the row's status is right; what the skipped events would
  have added (their timeline entries, their milestone times) is absent until
  they arrive. A skipped version that arrives later (e.g. retried from the
  dead-letter topic) fills its gap: its facts are added, and the status of
  the highest version that set one stays. Gaps are reported by the caller
  (log, metric, gaps table) and a rebuild from the log repairs anything that
  never arrives.

Facts are written so that applying the same set of events gives the same row
whatever order gaps are filled in: first/last times use min/max, the current
offer terms belong to the highest-versioned offer, the schedule to the
highest-versioned ``started``/``rescheduled`` event, and the status to the
highest-versioned event that sets one (``rescheduled`` keeps the status it
finds; a declined or withdrawn offer returns to the state its ``data.status``
names). Who must act next and the next deadline follow from the status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast, get_args

from ..common.instants import to_utc
from ..common.privacy import is_sealed
from ..common.revealed import REVEALED
from ..contracts import EventEnvelope

Row = dict[str, Any]

# The status after each event type; ``None``: the event keeps the status it finds
# (``rescheduled``), or carries it in ``data.status`` (a declined or withdrawn offer
# returns to the state before the offer: ``accepted`` or ``in_progress``).
STATUS_AFTER: Mapping[str, str | None] = {
    "interview.invited": "invited",
    "interview.accepted": "accepted",
    "interview.declined": "declined",
    "interview.started": "in_progress",
    "interview.offer_extended": "offer_extended",
    "interview.offer_accepted": "hired",
    "interview.offer_declined": None,
    "interview.cancelled": "cancelled",
    "interview.expired": "expired",
    "interview.rescheduled": None,
    "interview.offer_withdrawn": None,
}
Status = Literal[
    "invited",
    "accepted",
    "declined",
    "in_progress",
    "offer_extended",
    "hired",
    "cancelled",
    "expired",
]
STATUSES: tuple[str, ...] = get_args(Status)
FINAL_STATUSES = frozenset({"declined", "hired", "cancelled", "expired"})
# Who must act next in each open state: the freelancer answers invitations and
# offers; an accepted interview waits for the client to start it or make an offer,
# one in progress for the client's offer.
NEXT_ACTOR: Mapping[str, str] = {
    "invited": "freelancer",
    "accepted": "client",
    "in_progress": "client",
    "offer_extended": "freelancer",
}

# Every column of the interview row, with its value before any event.
EMPTY_ROW: Mapping[str, Any] = {
    "interview_id": None,
    "job_id": None,
    "client_id": None,
    "freelancer_id": None,
    "status": None,
    "version": 0,
    "position": 0,
    "created_position": 0,
    "last_event_type": None,
    "updated_at": None,
    "invited_at": None,
    "invitation_message": None,
    # The data key each personal text was sealed with (None: plain or no text):
    # an erasure finds the copies to redact by it.
    "invitation_message_key_id": None,
    "invitation_expires_at": None,
    "accepted_at": None,
    "declined_at": None,
    "decline_reason": None,
    "decline_reason_key_id": None,
    "started_at": None,
    "scheduled_at": None,
    "duration_minutes": None,
    # Version of the event the schedule (scheduled_at, duration) comes from.
    "schedule_version": 0,
    "reschedules": 0,
    # Version of the last event that set the status (``rescheduled`` sets none).
    "status_version": 0,
    "next_actor": None,
    "next_deadline_at": None,
    "first_offer_at": None,
    "last_offer_at": None,
    "offers_count": 0,
    "offer_version": 0,
    "offer_amount": None,
    "offer_currency": None,
    "offer_rate_type": None,
    "offer_start_date": None,
    "offer_expires_at": None,
    "offers_declined": 0,
    "offers_withdrawn": 0,
    "hired_at": None,
    "cancelled_at": None,
    "cancel_reason": None,
    "cancel_reason_key_id": None,
    "cancelled_by": None,
    "expired_at": None,
    "expired_what": None,
    "closed_at": None,
    "time_to_accept_s": None,
    "time_to_hire_s": None,
    "missing": [],
    "gaps_detected": 0,
    # Personal texts whose author was erased (API field names), in the order met.
    "erased_fields": [],
}

# The API name of each personal column of the interview row.
PERSONAL_COLUMNS: Mapping[str, str] = {
    "invitation_message": "invitation_message",
    "decline_reason": "decline_reason",
    "cancel_reason": "cancellation.reason",
}


class SealedTextNotRevealedError(ValueError):
    """A sealed personal text reached the fold unopened: the events must pass through
    ``erasure.reveal_event`` first (a wiring error, never stored as is)."""


def _dt(value: Any) -> datetime | None:
    """A UTC datetime (SQLite keeps no offsets, so everything is stored in UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return to_utc(parsed)  # clamped at the calendar's edges (common/instants.py)


def _at(e: EventEnvelope) -> datetime:
    # occurred_at is required, so never None here.
    return cast(datetime, _dt(e.occurred_at))


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new < current else current


def _latest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new > current else current


# ------------------------------------------------------------ facts per type


def personal_text(e: EventEnvelope, name: str) -> tuple[str | None, str | None, bool]:
    """``(text, key_id, erased)`` of one personal field of a revealed event."""
    value = e.data.get(name)
    if is_sealed(value):
        raise SealedTextNotRevealedError(f"{e.type} {e.id}: data.{name} is still sealed")
    info = (e.data.get(REVEALED) or {}).get(name) or {}
    return (
        None if value is None else str(value),
        info.get("key_id"),
        bool(info.get("erased")),
    )


def _text(row: Row, e: EventEnvelope, name: str, column: str) -> None:
    text, key_id, erased = personal_text(e, name)
    row[column] = text
    row[f"{column}_key_id"] = key_id
    api_name = PERSONAL_COLUMNS[column]
    fields = [f for f in row["erased_fields"] if f != api_name]
    row["erased_fields"] = [*fields, api_name] if erased else fields


def _invited(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["invited_at"] = at
    _text(row, e, "message", "invitation_message")
    row["invitation_expires_at"] = _dt(e.data.get("expires_at"))


def _accepted(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["accepted_at"] = _earliest(row["accepted_at"], at)


def _declined(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["declined_at"] = at
    _text(row, e, "reason", "decline_reason")
    row["closed_at"] = at


def _schedule(row: Row, e: EventEnvelope) -> None:
    if e.version > row["schedule_version"]:
        row["schedule_version"] = e.version
        row["scheduled_at"] = _dt(e.data.get("scheduled_at"))
        row["duration_minutes"] = e.data.get("duration_minutes", 30)  # v1: the default


def _started(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["started_at"] = _earliest(row["started_at"], at)
    _schedule(row, e)


def _rescheduled(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["reschedules"] += 1
    _schedule(row, e)


def _offer_extended(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["first_offer_at"] = _earliest(row["first_offer_at"], at)
    row["last_offer_at"] = _latest(row["last_offer_at"], at)
    row["offers_count"] += 1
    if e.version > row["offer_version"]:
        row["offer_version"] = e.version
        row["offer_amount"] = str(e.data.get("amount"))
        row["offer_currency"] = e.data.get("currency")
        row["offer_rate_type"] = e.data.get("rate_type")
        row["offer_start_date"] = e.data.get("start_date")
        row["offer_expires_at"] = _dt(e.data.get("expires_at"))


def _offer_accepted(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["hired_at"] = at
    row["closed_at"] = at


def _offer_declined(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["offers_declined"] += 1


def _offer_withdrawn(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["offers_withdrawn"] += 1


def _cancelled(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["cancelled_at"] = at
    _text(row, e, "reason", "cancel_reason")
    row["cancelled_by"] = e.data.get("cancelled_by") or e.actor.role
    row["closed_at"] = at


def _expired(row: Row, e: EventEnvelope, at: datetime) -> None:
    row["expired_at"] = at
    row["expired_what"] = e.data.get("what")
    row["closed_at"] = at


# Each takes the row, the event and the event's time (``_at``, computed once per event).
FACTS: Mapping[str, Callable[[Row, EventEnvelope, datetime], None]] = {
    "interview.invited": _invited,
    "interview.accepted": _accepted,
    "interview.declined": _declined,
    "interview.started": _started,
    "interview.offer_extended": _offer_extended,
    "interview.offer_accepted": _offer_accepted,
    "interview.offer_declined": _offer_declined,
    "interview.cancelled": _cancelled,
    "interview.expired": _expired,
    "interview.rescheduled": _rescheduled,
    "interview.offer_withdrawn": _offer_withdrawn,
}
assert set(FACTS) == set(STATUS_AFTER)


def status_after(event: EventEnvelope) -> str | None:
    """The status ``event`` leaves the interview in; ``None``: the one it found."""
    status = STATUS_AFTER[event.type]
    if status is None and event.type != "interview.rescheduled":
        return str(event.data.get("status") or "in_progress")
    return status


def _status(row: Row, e: EventEnvelope) -> None:
    status = status_after(e)
    if status is not None and e.version > row["status_version"]:
        row["status_version"] = e.version
        row["status"] = status
    elif row["status"] is None:
        # First seen after a gap, by an event that sets no status: the state a
        # reschedule most often finds, until a skipped event says otherwise.
        row["status"] = "in_progress"


def _derived(row: Row) -> None:
    """What follows from the other columns: durations, who acts next, the next deadline."""
    status = row["status"]
    row["next_actor"] = NEXT_ACTOR.get(status)
    row["next_deadline_at"] = (
        row["invitation_expires_at"]
        if status == "invited"
        else row["offer_expires_at"]
        if status == "offer_extended"
        else None
    )
    _durations(row)


def _durations(row: Row) -> None:
    invited = row["invited_at"]
    if invited is not None and row["accepted_at"] is not None:
        row["time_to_accept_s"] = (row["accepted_at"] - invited).total_seconds()
    if invited is not None and row["hired_at"] is not None:
        row["time_to_hire_s"] = (row["hired_at"] - invited).total_seconds()


# ------------------------------------------------------------------ the fold

Outcome = Literal["applied", "duplicate", "filled"]


@dataclass
class Folded:
    """What applying one event did."""

    outcome: Outcome
    row: Row
    # Versions found missing by this event (a gap it revealed).
    missing: tuple[int, ...] = ()
    timeline: Row | None = None
    created: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# The columns whose empty value is a list (each new row gets its own).
_LIST_COLUMNS = tuple(k for k, v in EMPTY_ROW.items() if isinstance(v, list))
# ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` without building an
# encoder per call.
_encode_data = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def new_row(event: EventEnvelope, key: str | None = None) -> Row:
    """The empty row of ``event``'s interview (``key``: its id as text, if known)."""
    row = dict(EMPTY_ROW)
    for name in _LIST_COLUMNS:
        row[name] = []
    row["interview_id"] = str(event.interview_id) if key is None else key
    row["job_id"] = event.job_id
    row["client_id"] = event.client_id
    row["freelancer_id"] = event.freelancer_id
    row["created_position"] = event.position
    return row


def timeline_entry(event: EventEnvelope, key: str | None = None, at: datetime | None = None) -> Row:
    """The timeline entry of ``event`` (``key``: its interview id as text, ``at``: its
    time in UTC, when the caller has them)."""
    data = event.data
    key_id: str | None = None
    erased: list[str] = []
    if REVEALED in data:
        for name, info in (data[REVEALED] or {}).items():
            key_id = info.get("key_id") or key_id
            if info.get("erased"):
                erased.append(name)
        data = {k: v for k, v in data.items() if k != REVEALED}
    for name, value in data.items():
        if is_sealed(value):
            raise SealedTextNotRevealedError(f"{event.type} {event.id}: data.{name} is sealed")
    return {
        "interview_id": str(event.interview_id) if key is None else key,
        "version": event.version,
        "position": event.position,
        "event_id": str(event.id),
        "type": event.type,
        "occurred_at": _at(event) if at is None else at,
        "actor_id": event.actor.id,
        "actor_role": event.actor.role,
        "data": _encode_data(data) if data else "{}",
        # The key of the personal text in ``data`` (one per event at most) and the
        # personal fields that were erased.
        "key_id": key_id,
        "erased_fields": erased,
    }


def fold(
    row: Row | None, event: EventEnvelope, key: str | None = None, *, in_place: bool = False
) -> Folded:
    """Applies ``event`` to a copy of ``row`` (``None``: the interview is new);
    ``key``: the interview id as text, when the caller has it. ``in_place``: the
    caller gives ``row`` up (it holds no other reference to it or to its lists), so
    the event is applied to ``row`` itself rather than to a copy."""
    version = event.version
    if row is not None and version <= row["version"] and version not in row["missing"]:
        return Folded("duplicate", row)  # nothing to copy: it changes nothing
    created = row is None
    if row is None:
        current = new_row(event, key)
    elif in_place:
        current = row
    else:
        current = dict(
            row, missing=list(row["missing"]), erased_fields=list(row.get("erased_fields") or [])
        )
    at = _at(event)
    if version <= current["version"]:  # a skipped version: it fills its gap
        FACTS[event.type](current, event, at)
        _status(current, event)
        current["missing"].remove(version)
        _derived(current)
        return Folded("filled", current, timeline=timeline_entry(event, key, at))
    gap = tuple(range(current["version"] + 1, version))
    FACTS[event.type](current, event, at)
    _status(current, event)
    if gap:
        current["missing"].extend(gap)
        current["gaps_detected"] += len(gap)
    current["version"] = version
    current["position"] = event.position
    current["last_event_type"] = event.type
    current["updated_at"] = at
    _derived(current)
    return Folded("applied", current, gap, timeline_entry(event, key, at), created)
