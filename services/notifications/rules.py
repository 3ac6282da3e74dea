"""Who is told what: the notification rules, as data.

Each ``Rule`` says, for one trigger (an event type, or for reminders the kind
of deadline), which party is told and the sentence they read. ``RULES`` is the
whole table; ``rules_markdown()`` renders it for the README, and
``drafts_for_event`` / ``drafts_for_reminder`` turn a trigger into the
notifications to record. Pure: standard library, the published envelope and the
calendar's UID rule only.

Times are shown in each recipient's time zone (``zones``: user id -> zone, UTC
for anyone not in it) with the zone's abbreviation, or its UTC offset where the
zone has no abbreviation ("Tuesday 8 December 2026 at 15:00 CET", "... at 11:00
UTC-03:00"). The ``details`` stored beside a text keep the instants in ISO 8601
UTC, and the zone the text was written in.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

from ..common.calendar import interview_uid
from ..common.instants import to_utc
from ..common.revealed import REVEALED, erased_of_event, key_id_of_event, sealed_fields
from ..contracts import DATA_MODELS, EventEnvelope

Party = Literal["client", "freelancer"]
Kind = Literal["event", "reminder"]

# The published event types, read off the envelope contract itself.
EVENT_TYPES: tuple[str, ...] = get_args(EventEnvelope.model_fields["type"].annotation)
REMINDER_TYPE = "interview.reminder"
NOTIFICATION_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:interviews:notification")
UTC_ZONE = ZoneInfo("UTC")
Zones = Mapping[str, tzinfo]


@dataclass(frozen=True)
class Rule:
    """One row of the table: on ``trigger``, tell ``to`` with ``template``.

    ``other_party_only`` drops the row when the recipient is the one who acted
    ("the other party is told"). ``when`` restricts the row to events whose
    ``data`` has these values (e.g. ``{"what": "offer"}`` for an expired offer); a
    field the event leaves out has the contract's default.
    """

    kind: Kind
    trigger: str
    to: Party
    title: str
    template: str
    other_party_only: bool = False
    when: Mapping[str, str] = field(default_factory=dict)

    @property
    def notification_type(self) -> str:
        """What a webhook subscribes to: the event type, or ``interview.reminder``."""
        return self.trigger if self.kind == "event" else REMINDER_TYPE

    def parties(self, client_id: str, freelancer_id: str) -> tuple[str, str]:
        """Of an interview between these two: who this row tells, and the other."""
        return (client_id, freelancer_id) if self.to == "client" else (freelancer_id, client_id)

    def draft(self, source: str, recipient: str, values: Mapping[str, str], **fields: Any) -> Draft:
        """This row written for ``recipient`` with ``values``; its id derives from
        ``source`` (the event or the deadline) and the recipient's role."""
        return Draft(
            id=notification_id(source, self.to),
            kind=self.kind,
            type=self.notification_type,
            recipient_id=recipient,
            recipient_role=self.to,
            title=self.title,
            message=self.template.format_map(values),
            **fields,
        )


def to_both_parties(
    kind: Kind, trigger: str, title: str, template: str, **options: Any
) -> tuple[Rule, Rule]:
    """One row for the client and the same for the freelancer (with
    ``other_party_only``: whichever of them did not act)."""
    return (
        Rule(kind, trigger, "client", title, template, **options),
        Rule(kind, trigger, "freelancer", title, template, **options),
    )


# Placeholders: {job} {client} {freelancer} {actor} (e.g. "Freelancer f-1"), {reason},
# {when} (scheduled date and time), {duration} (minutes), {deadline}, {terms}; the
# *_part ones are whole optional sentences, empty when the event has no such detail.
RULES: tuple[Rule, ...] = (
    Rule(
        "event",
        "interview.invited",
        "freelancer",
        "New interview invitation",
        "Client {client} invited you to interview for job {job}.{message_part}{deadline_part}",
    ),
    Rule(
        "event",
        "interview.accepted",
        "client",
        "Invitation accepted",
        "Freelancer {freelancer} accepted your invitation to interview for job {job}.",
    ),
    Rule(
        "event",
        "interview.declined",
        "client",
        "Invitation declined",
        "Freelancer {freelancer} declined your invitation to interview for job {job}.{reason_part}",
    ),
    Rule(
        "event",
        "interview.started",
        "client",
        "Interview started",
        "Your interview with freelancer {freelancer} for job {job} has started.{schedule_part}",
    ),
    Rule(
        "event",
        "interview.started",
        "freelancer",
        "Interview started",
        "Your interview with client {client} for job {job} has started.{schedule_part}",
    ),
    Rule(
        "event",
        "interview.offer_extended",
        "freelancer",
        "New offer",
        "Client {client} offered you job {job}: {terms}{start_part}.{message_part}{deadline_part}",
    ),
    Rule(
        "event",
        "interview.offer_accepted",
        "client",
        "Offer accepted",
        "Freelancer {freelancer} accepted your offer for job {job}: you have hired them.",
    ),
    Rule(
        "event",
        "interview.offer_declined",
        "client",
        "Offer declined",
        "Freelancer {freelancer} declined your offer for job {job}.{reason_part}"
        " You may extend a revised offer.",
    ),
    *to_both_parties(
        "event",
        "interview.rescheduled",
        "Interview rescheduled",
        "{actor} moved your interview for job {job}{previous_part}"
        " to {when} ({duration} minutes).{reason_part}",
        other_party_only=True,
    ),
    Rule(
        "event",
        "interview.offer_withdrawn",
        "freelancer",
        "Offer withdrawn",
        "Client {client} withdrew their offer for job {job}.{reason_part}"
        " There is nothing to answer; the interview goes on.",
    ),
    *to_both_parties(
        "event",
        "interview.cancelled",
        "Interview cancelled",
        "{actor} cancelled the interview with you for job {job}. Reason: {reason}",
        other_party_only=True,
        when={"job_closed": "False"},
    ),
    # Closing a job cancels every open interview of it: both parties are told.
    Rule(
        "event",
        "interview.cancelled",
        "freelancer",
        "Job closed",
        "Client {client} closed job {job}; your interview is cancelled.",
        when={"job_closed": "True"},
    ),
    Rule(
        "event",
        "interview.cancelled",
        "client",
        "Job closed",
        "You closed job {job}; your interview with freelancer {freelancer} is cancelled.",
        when={"job_closed": "True"},
    ),
    Rule(
        "event",
        "interview.expired",
        "freelancer",
        "Invitation expired",
        "The invitation from client {client} to interview for job {job} has expired"
        " without an answer.",
        when={"what": "invitation"},
    ),
    Rule(
        "event",
        "interview.expired",
        "client",
        "Invitation expired",
        "Your invitation to freelancer {freelancer} for job {job} has expired without an answer.",
        when={"what": "invitation"},
    ),
    Rule(
        "event",
        "interview.expired",
        "freelancer",
        "Offer expired",
        "The offer from client {client} for job {job} has expired without an answer.",
        when={"what": "offer"},
    ),
    Rule(
        "event",
        "interview.expired",
        "client",
        "Offer expired",
        "Your offer to freelancer {freelancer} for job {job} has expired without an answer.",
        when={"what": "offer"},
    ),
    # Reminders (deadlines, issue 7): the party who must answer, before the deadline.
    Rule(
        "reminder",
        "invitation",
        "freelancer",
        "Reminder: invitation awaiting your answer",
        "Client {client} is waiting for your answer to the invitation to interview for job"
        " {job}. It expires on {deadline}.",
    ),
    Rule(
        "reminder",
        "offer",
        "freelancer",
        "Reminder: offer awaiting your answer",
        "Client {client} is waiting for your answer to the offer for job {job}."
        " It expires on {deadline}.",
    ),
    # Before a scheduled meeting (MEETING_REMINDER_LEAD_MINUTES): both parties.
    Rule(
        "reminder",
        "meeting",
        "client",
        "Reminder: interview coming up",
        "Your interview with freelancer {freelancer} for job {job} starts on {deadline}"
        " ({duration} minutes).",
    ),
    Rule(
        "reminder",
        "meeting",
        "freelancer",
        "Reminder: interview coming up",
        "Your interview with client {client} for job {job} starts on {deadline}"
        " ({duration} minutes).",
    ),
)

NOTIFICATION_TYPES: tuple[str, ...] = tuple(dict.fromkeys(r.notification_type for r in RULES))


@dataclass(frozen=True)
class Draft:
    """A notification to record for one recipient (before it has a row); ``id`` is
    the notification's stable id (``notification_id``) as text."""

    id: str
    kind: Kind
    type: str
    recipient_id: str
    recipient_role: Party
    title: str
    message: str
    interview_id: UUID
    job_id: str
    occurred_at: datetime
    event_id: UUID | None
    position: int | None
    details: dict[str, Any]
    # Crypto-shredding: the data key of the personal text the message and details
    # hold (None: they hold none), the message without those words (what an erasure
    # leaves), and the personal fields already erased when the event was consumed.
    key_id: str | None = None
    message_redacted: str | None = None
    erased_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class CalendarChange:
    """The meeting's calendar event as one event left it: what the e-mails about
    that event carry (``details["calendar"]``; ``adapters.email`` builds the .ics)."""

    interview_id: UUID
    sequence: int
    scheduled_at: datetime
    duration_minutes: int
    stamp: datetime  # when the schedule last changed: the event's time
    cancelled: bool

    def as_details(self) -> dict[str, Any]:
        return {
            "uid": interview_uid(self.interview_id),
            "sequence": self.sequence,
            "method": "CANCEL" if self.cancelled else "REQUEST",
            "status": "CANCELLED" if self.cancelled else "CONFIRMED",
            "scheduled_at": self.scheduled_at.isoformat(),
            "duration_minutes": self.duration_minutes,
            "stamp": self.stamp.isoformat(),
        }


def zone_label(local: datetime) -> str:
    """The zone's abbreviation at that instant (``CET``, ``CEST``, ``EST``), or its UTC
    offset where the zone has none (``UTC-03:00``; tzdata writes those as ``-03``)."""
    name = local.tzname() or ""
    if name and name[0] not in "+-":
        return name
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def format_when(value: datetime, zone: tzinfo | None = None) -> str:
    """``Wednesday 25 November 2026 at 14:00 UTC``, in ``zone`` (default UTC). An
    instant the zone cannot hold (past year 9999 there) is shown in its own offset:
    ``... at 23:59 UTC-01:00``."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        local = aware.astimezone(zone or UTC_ZONE)
    except OverflowError:
        local = aware
    return f"{format_date(local)} at {local.hour:02d}:{local.minute:02d} {zone_label(local)}"


def format_date(value: date) -> str:
    """``Wednesday 25 November 2026``: English names whatever the process's locale
    (``strftime``'s ``%A`` and ``%B`` follow ``LC_TIME``, and cost more than the rest
    of an event's texts)."""
    return f"{_DAY_NAMES[value.weekday()]} {value.day} {_MONTH_NAMES[value.month]} {value.year}"


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_NAMES = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _parse_datetime(raw: Any) -> datetime | None:
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, str) and raw:
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _parse_date(raw: Any) -> date | None:
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str) and raw:
        try:
            return date.fromisoformat(raw)
        except ValueError:
            return None
    return None


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _terms(data: Mapping[str, Any]) -> str:
    try:
        amount = Decimal(str(data.get("amount")))
        shown = f"{amount:,.2f}"
    except (InvalidOperation, ValueError):
        shown = str(data.get("amount"))
    currency = data.get("currency", "")
    if data.get("rate_type") == "hourly":
        return f"{shown} {currency} per hour"
    return f"{shown} {currency} fixed price"


def _shredded(values: dict[str, str], fields: list[str]) -> dict[str, str]:
    """Template values as they read once the personal ``fields`` are erased."""
    out = dict(values)
    if "message" in fields:
        out["message_part"] = " Their message was erased."
    if "reason" in fields:
        out["reason"] = "(erased)."
        out["reason_part"] = " The reason given was erased."
    return out


def _actor(event: EventEnvelope) -> str:
    role = event.actor.role
    if role == "client":
        return f"Client {event.client_id}"
    if role == "freelancer":
        return f"Freelancer {event.freelancer_id}"
    return _NAMED_ACTORS.get(role) or f"{role.capitalize()} {event.actor.id}"


_NAMED_ACTORS = {"system": "The system", "admin": "An administrator"}
_NO_REASON = _sentence("none given")
# The optional parts and values an event may leave empty.
_BLANK_VALUES: dict[str, str] = dict.fromkeys(
    (
        "message_part",
        "deadline_part",
        "reason_part",
        "schedule_part",
        "previous_part",
        "start_part",
        "terms",
        "when",
        "duration",
        "deadline",
    ),
    "",
)


def _context(
    event: EventEnvelope, zone: tzinfo, erased: list[str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Template values (times in ``zone``), and the structured details stored beside
    the sentence (``erased``: the personal fields already erased)."""
    data = event.data
    actor = event.actor
    details: dict[str, Any] = {
        "job_id": event.job_id,
        "client_id": event.client_id,
        "freelancer_id": event.freelancer_id,
        "actor": {"id": actor.id, "role": actor.role},
    }
    reason = data.get("reason")
    values = _BLANK_VALUES | {
        "job": event.job_id,
        "client": event.client_id,
        "freelancer": event.freelancer_id,
        "actor": _actor(event),
        "reason": _sentence(str(reason)) if reason else _NO_REASON,
    }
    if data.get("message"):
        values["message_part"] = f' Their message: "{data["message"]}"'
    expires_at = _parse_datetime(data.get("expires_at"))
    if expires_at is not None:
        values["deadline"] = format_when(expires_at, zone)
        values["deadline_part"] = f" Please answer by {values['deadline']}."
        details["expires_at"] = expires_at.isoformat()
    if reason:
        values["reason_part"] = f" Reason: {values['reason']}"
        details["reason"] = reason
    elif "reason" in erased:
        details["reason"] = None
    values = _shredded(values, erased) if erased else values
    if event.type in ("interview.started", "interview.rescheduled"):
        duration = data.get("duration_minutes") or 30  # started v1: the default
        values["duration"] = str(duration)
        details["duration_minutes"] = duration
    if event.type == "interview.started":
        scheduled = _parse_datetime(data.get("scheduled_at"))
        if scheduled is not None:
            values["when"] = format_when(scheduled, zone)
            values["schedule_part"] = (
                f" It is scheduled for {values['when']}. It lasts {values['duration']} minutes."
            )
            details["scheduled_at"] = _utc_iso(scheduled)
        else:
            values["schedule_part"] = (
                f" It started on {format_when(event.occurred_at, zone)};"
                " no date and time was scheduled."
            )
    if event.type == "interview.rescheduled":
        scheduled = _parse_datetime(data.get("scheduled_at"))
        previous = _parse_datetime(data.get("previous_scheduled_at"))
        if scheduled is not None:
            values["when"] = format_when(scheduled, zone)
            details["scheduled_at"] = _utc_iso(scheduled)
        if previous is not None:
            values["previous_part"] = f" from {format_when(previous, zone)}"
            details["previous_scheduled_at"] = _utc_iso(previous)
    if event.type == "interview.offer_extended":
        values["terms"] = _terms(data)
        details["offer"] = {
            k: data.get(k) for k in ("amount", "currency", "rate_type", "start_date")
        }
        start = _parse_date(data.get("start_date"))
        if start is not None:
            values["start_part"] = f", starting {format_date(start)}"
    if event.type == "interview.expired":
        details["what"] = data.get("what")
    if event.type in ("interview.offer_declined", "interview.offer_withdrawn"):
        details["status"] = _field(event, "status")
    if event.type == "interview.cancelled":
        details["job_closed"] = bool(_field(event, "job_closed"))
    details["time_zone"] = str(zone)
    return values, details


def _utc_iso(value: datetime) -> str:
    return to_utc(value).isoformat()


def _field(event: EventEnvelope, name: str) -> Any:
    """``data[name]``, or the contract's default for a field the event leaves out."""
    if name in event.data:
        return event.data[name]
    model_field = DATA_MODELS[event.type].model_fields.get(name)
    return None if model_field is None or model_field.is_required() else model_field.default


@functools.cache
def rules_for(kind: Kind, trigger: str) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if r.kind == kind and r.trigger == trigger)


# The event rows by event type, looked up once per event.
_EVENT_RULES: dict[str, tuple[Rule, ...]] = {t: rules_for("event", t) for t in EVENT_TYPES}


@dataclass(frozen=True)
class _EventRow:
    """What ``inbox_rows_for_event`` reads of one rule, worked out once: its
    conditions as pairs, whether it tells the client, the other party's role, and
    the end of the notification id's name (``:{role}``, as bytes), its type."""

    rule: Rule
    when: tuple[tuple[str, str], ...]
    to_client: bool
    other_role: Party
    id_suffix: bytes
    type: str


_EVENT_ROWS: dict[str, tuple[_EventRow, ...]] = {
    t: tuple(
        _EventRow(
            r,
            tuple(r.when.items()),
            r.to == "client",
            "freelancer" if r.to == "client" else "client",
            f":{r.to}".encode(),
            r.notification_type,
        )
        for r in rules
    )
    for t, rules in _EVENT_RULES.items()
}


def notification_id(source: str, recipient_role: str) -> str:
    """Stable: the same trigger and recipient always give the same id (the text of
    ``uuid5(NOTIFICATION_ID_NAMESPACE, f"{source}:{recipient_role}")``)."""
    return uuid5_text(_NOTIFICATION_ID_PREFIX, f"{source}:{recipient_role}")


def uuid5_text(namespace: bytes, name: str) -> str:
    """``str(uuid5(UUID(bytes=namespace), name))`` without building the ``UUID`` (the
    consumer derives one or two ids per event; the object and its text were a tenth
    of its time per event)."""
    return _uuid5_of(namespace + name.encode())


def _uuid5_of(named: bytes) -> str:
    """``uuid5_text`` of the namespace's bytes followed by the name's (``named``)."""
    digest = bytearray(hashlib.sha1(named).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_NOTIFICATION_ID_PREFIX = NOTIFICATION_ID_NAMESPACE.bytes


def uuid_text(value: UUID) -> str:
    """``str(value)``, remembered: an event's and its interview's ids are written as text
    several times over (ids, inbox rows, the reminders' rows), and ``UUID.__str__``
    costs more than the lookup. Remembered by the UUID's number (an int hashes in C;
    a ``UUID`` key would call its Python ``__hash__`` and ``__eq__`` on every lookup)."""
    number = value.int
    text = _UUID_TEXTS.get(number)
    if text is None:
        if len(_UUID_TEXTS) >= _UUID_TEXTS_KEPT:
            _UUID_TEXTS.clear()
        text = _UUID_TEXTS[number] = str(value)
    return text


_UUID_TEXTS: dict[int, str] = {}
_UUID_TEXTS_KEPT = 8192


def drafts_for_event(
    event: EventEnvelope, zones: Zones | None = None, calendar: CalendarChange | None = None
) -> list[Draft]:
    """The notifications one event produces, per the rules table, each written in its
    recipient's zone (``zones``; UTC for anyone not in it). ``calendar``: the
    meeting's calendar event as this event left it (``details["calendar"]``: the
    e-mail attaches it as an ``.ics``)."""
    return [
        Draft(
            id=row["id"],
            kind=row["kind"],
            type=row["type"],
            recipient_id=row["recipient_id"],
            recipient_role=row["recipient_role"],
            title=row["title"],
            message=row["message"],
            interview_id=event.interview_id,
            job_id=row["job_id"],
            occurred_at=row["occurred_at"],
            event_id=event.id,
            position=row["position"],
            details=row["details"],
            key_id=row["key_id"],
            message_redacted=row["message_redacted"],
            erased_fields=tuple(row["erased_fields"]),
        )
        for row in inbox_rows_for_event(event, None, zones, calendar)
    ]


def inbox_rows_for_event(
    event: EventEnvelope,
    created_at: datetime | None,
    zones: Zones | None = None,
    calendar: CalendarChange | None = None,
) -> list[dict[str, Any]]:
    """``drafts_for_event`` as the inbox rows the consumer writes (``notifications``
    columns, ids as text, ``created_at``), built directly: a ``Draft`` per row and
    then its row were a tenth of the consumer's time per event."""
    calendar_details = calendar.as_details() if calendar is not None else None
    if REVEALED in event.data:
        erased_list = erased_of_event(event)
        key_id, erased = key_id_of_event(event), tuple(erased_list)
        # The same sentence as an erasure will leave it (only when words are shown).
        sealed = sealed_fields(event) if key_id is not None and not erased else []
    else:  # nothing was sealed: the common case
        erased_list, key_id, erased, sealed = [], None, (), []
    event_id = str(event.id)  # one event: a cache of its id would only churn
    interview_id = uuid_text(event.interview_id)
    # The notification ids' names up to the role (``event:{id}``), as bytes once.
    named = _NOTIFICATION_ID_PREFIX + f"event:{event_id}".encode()
    acting_role = event.actor.role
    if event.type == "interview.cancelled":
        acting_role = event.data.get("cancelled_by") or acting_role
    client_id, freelancer_id = event.client_id, event.freelancer_id
    job_id, position, occurred_at = event.job_id, event.position, event.occurred_at
    # One list for the event's rows (none changes it): the COPY converts a value the
    # row before held too only once.
    erased_fields = list(erased)
    contexts: dict[tzinfo, tuple[dict[str, str], dict[str, Any]]] = {}
    rows = []
    for row_rule in _EVENT_ROWS.get(event.type, ()):
        rule = row_rule.rule
        if row_rule.when and any(str(_field(event, k)) != v for k, v in row_rule.when):
            continue
        if rule.other_party_only and acting_role == rule.to:
            continue
        if row_rule.to_client:
            recipient, other = client_id, freelancer_id
        else:
            recipient, other = freelancer_id, client_id
        zone = zones.get(recipient, UTC_ZONE) if zones else UTC_ZONE
        context = contexts.get(zone)
        if context is None:
            context = contexts[zone] = _context(event, zone, erased_list)
        values, details = context
        row_details = details.copy()
        row_details["other_party"] = {"id": other, "role": row_rule.other_role}
        if calendar_details is not None:
            row_details["calendar"] = calendar_details
        rows.append(
            {
                "id": _uuid5_of(named + row_rule.id_suffix),
                "recipient_id": recipient,
                "recipient_role": rule.to,
                "kind": rule.kind,
                "type": row_rule.type,
                "title": rule.title,
                "message": rule.template.format_map(values),
                "interview_id": interview_id,
                "job_id": job_id,
                "event_id": event_id,
                "position": position,
                "occurred_at": occurred_at,
                "created_at": created_at,
                "read_at": None,
                "details": row_details,
                "key_id": key_id,
                "message_redacted": (
                    rule.template.format_map(_shredded(values, sealed)) if sealed else None
                ),
                "erased_fields": erased_fields,
            }
        )
    return rows


@dataclass(frozen=True)
class Deadline:
    """An open invitation or offer, or a scheduled meeting, a reminder is about
    (``reminders.ReminderWorker``). ``expires_at``: the invitation's or offer's
    expiry, or when the meeting starts."""

    what: Literal["invitation", "offer", "meeting"]
    interview_id: UUID
    job_id: str
    client_id: str
    freelancer_id: str
    expires_at: datetime
    duration_minutes: int | None = None
    # The interview version that scheduled the meeting: one reminder per schedule.
    version: int | None = None

    @property
    def source(self) -> str:
        """What the reminder's id is derived from: stable per interview and deadline,
        and per schedule for a meeting (a reschedule's reminder is a new one)."""
        if self.what == "meeting":
            return f"reminder:{self.interview_id}:meeting:v{self.version}"
        return f"reminder:{self.interview_id}:{self.what}:{self.expires_at.isoformat()}"


def drafts_for_reminder(
    deadline: Deadline, at: datetime, zones: Zones | None = None
) -> list[Draft]:
    """The reminders due for one deadline, each in its recipient's zone; ids are
    stable (``Deadline.source``)."""
    drafts = []
    for rule in rules_for("reminder", deadline.what):
        recipient, other = rule.parties(deadline.client_id, deadline.freelancer_id)
        zone = (zones or {}).get(recipient, UTC_ZONE)
        values = {
            "job": deadline.job_id,
            "client": deadline.client_id,
            "freelancer": deadline.freelancer_id,
            "deadline": format_when(deadline.expires_at, zone),
            "duration": str(deadline.duration_minutes or 30),
        }
        drafts.append(
            rule.draft(
                deadline.source,
                recipient,
                values,
                interview_id=deadline.interview_id,
                job_id=deadline.job_id,
                occurred_at=at,
                event_id=None,
                position=None,
                details={
                    "job_id": deadline.job_id,
                    "client_id": deadline.client_id,
                    "freelancer_id": deadline.freelancer_id,
                    "what": deadline.what,
                    "expires_at": _utc_iso(deadline.expires_at),
                    "other_party": {"id": other, "role": _other(rule.to)},
                    "time_zone": str(zone),
                }
                | (
                    {
                        "scheduled_at": _utc_iso(deadline.expires_at),
                        "duration_minutes": deadline.duration_minutes or 30,
                    }
                    if deadline.what == "meeting"
                    else {}
                ),
            )
        )
    return drafts


def _other(party: Party) -> Party:
    return "freelancer" if party == "client" else "client"


_OTHER: dict[str, Party] = {"client": "freelancer", "freelancer": "client"}


def rules_markdown() -> str:
    """The rules as a Markdown table (the README shows this)."""
    lines = [
        "| kind | trigger | condition | who is told | title | message |",
        "|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        who = rule.to + (" (when the other party acted)" if rule.other_party_only else "")
        cond = ", ".join(f"{k} = {v}" for k, v in rule.when.items()) or ""
        lines.append(
            f"| {rule.kind} | `{rule.trigger}` | {cond} | {who} | {rule.title} | {rule.template} |"
        )
    return "\n".join(lines)
