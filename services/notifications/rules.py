"""Who is told what: the notification rules, as data.

Each ``Rule`` says, for one trigger (an event type, or for reminders the kind
of deadline), which party is told and the sentence they read. ``RULES`` is the
whole table; ``rules_markdown()`` renders it for the README, and
``drafts_for_event`` / ``drafts_for_reminder`` turn a trigger into the
notifications to record. Pure: standard library and the published envelope only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args
from uuid import NAMESPACE_URL, UUID, uuid5

from ..common.instants import UTC_MAX, UTC_MIN, to_utc
from ..contracts import EventEnvelope

Party = Literal["client", "freelancer"]
Kind = Literal["event", "reminder"]

# The published event types, read off the envelope contract itself.
EVENT_TYPES: tuple[str, ...] = get_args(EventEnvelope.model_fields["type"].annotation)
REMINDER_TYPE = "interview.reminder"
NOTIFICATION_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:interviews:notification")


@dataclass(frozen=True)
class Rule:
    """One row of the table: on ``trigger``, tell ``to`` with ``template``.

    ``other_party_only`` drops the row when the recipient is the one who acted
    ("the other party is told"). ``when`` restricts the row to events whose
    ``data`` has these values (e.g. ``{"what": "offer"}`` for an expired offer).
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


# Placeholders: {job} {client} {freelancer} {actor} (e.g. "Freelancer f-1"), {reason},
# {when} (scheduled date and time), {deadline}, {terms}; the *_part ones are whole
# optional sentences, empty when the event has no such detail.
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
    Rule(
        "event",
        "interview.rescheduled",
        "client",
        "Interview rescheduled",
        "{actor} moved your interview for job {job}{previous_part} to {when}.{reason_part}",
        other_party_only=True,
    ),
    Rule(
        "event",
        "interview.rescheduled",
        "freelancer",
        "Interview rescheduled",
        "{actor} moved your interview for job {job}{previous_part} to {when}.{reason_part}",
        other_party_only=True,
    ),
    Rule(
        "event",
        "interview.offer_withdrawn",
        "freelancer",
        "Offer withdrawn",
        "Client {client} withdrew their offer for job {job}.{reason_part}",
    ),
    Rule(
        "event",
        "interview.cancelled",
        "client",
        "Interview cancelled",
        "{actor} cancelled the interview with you for job {job}. Reason: {reason}",
        other_party_only=True,
    ),
    Rule(
        "event",
        "interview.cancelled",
        "freelancer",
        "Interview cancelled",
        "{actor} cancelled the interview with you for job {job}. Reason: {reason}",
        other_party_only=True,
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
)

NOTIFICATION_TYPES: tuple[str, ...] = tuple(dict.fromkeys(r.notification_type for r in RULES))


@dataclass(frozen=True)
class Draft:
    """A notification to record for one recipient (before it has a row)."""

    id: UUID
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


def format_when(value: datetime) -> str:
    """``Wednesday 25 November 2026 at 14:00 UTC``; an instant UTC cannot hold (past
    year 9999 there) is shown in its own offset: ``... at 23:59 UTC-01:00``."""
    utc = to_utc(value)
    if value.tzinfo is not None and utc in (UTC_MIN, UTC_MAX) and utc != value:
        return f"{value:%A} {value.day} {value:%B %Y} at {value:%H:%M} {value.tzname()}"
    return f"{utc:%A} {utc.day} {utc:%B %Y} at {utc:%H:%M} UTC"


def format_date(value: date) -> str:
    return f"{value:%A} {value.day} {value:%B %Y}"


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


def _context(event: EventEnvelope) -> tuple[dict[str, str], dict[str, Any]]:
    """Template values, and the structured details stored beside the sentence."""
    data = event.data
    role = event.actor.role
    actor = {
        "client": f"Client {event.client_id}",
        "freelancer": f"Freelancer {event.freelancer_id}",
        "system": "The system",
        "admin": "An administrator",
    }.get(role, f"{role.capitalize()} {event.actor.id}")
    details: dict[str, Any] = {
        "job_id": event.job_id,
        "client_id": event.client_id,
        "freelancer_id": event.freelancer_id,
        "actor": {"id": event.actor.id, "role": role},
    }
    values = {
        "job": event.job_id,
        "client": event.client_id,
        "freelancer": event.freelancer_id,
        "actor": actor,
        "reason": _sentence(str(data.get("reason") or "none given")),
        "message_part": "",
        "deadline_part": "",
        "reason_part": "",
        "schedule_part": "",
        "previous_part": "",
        "start_part": "",
        "terms": "",
        "when": "",
        "deadline": "",
    }
    if data.get("message"):
        values["message_part"] = f' Their message: "{data["message"]}"'
    expires_at = _parse_datetime(data.get("expires_at"))
    if expires_at is not None:
        values["deadline"] = format_when(expires_at)
        values["deadline_part"] = f" Please answer by {values['deadline']}."
        details["expires_at"] = expires_at.isoformat()
    if data.get("reason"):
        values["reason_part"] = f" Reason: {_sentence(str(data['reason']))}"
        details["reason"] = data["reason"]
    if event.type == "interview.started":
        scheduled = _parse_datetime(data.get("scheduled_at"))
        if scheduled is not None:
            values["when"] = format_when(scheduled)
            values["schedule_part"] = f" It is scheduled for {values['when']}."
            details["scheduled_at"] = scheduled.isoformat()
        else:
            values["schedule_part"] = (
                f" It started on {format_when(event.occurred_at)}; no date and time was scheduled."
            )
    if event.type == "interview.rescheduled":
        scheduled = _parse_datetime(data.get("scheduled_at"))
        previous = _parse_datetime(data.get("previous_scheduled_at"))
        if scheduled is not None:
            values["when"] = format_when(scheduled)
            details["scheduled_at"] = scheduled.isoformat()
        if previous is not None:
            values["previous_part"] = f" from {format_when(previous)}"
            details["previous_scheduled_at"] = previous.isoformat()
        details["duration_minutes"] = data.get("duration_minutes")
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
    return values, details


def rules_for(kind: Kind, trigger: str) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if r.kind == kind and r.trigger == trigger)


def notification_id(source: str, recipient_role: str) -> UUID:
    """Stable: the same trigger and recipient always give the same id."""
    return uuid5(NOTIFICATION_ID_NAMESPACE, f"{source}:{recipient_role}")


def drafts_for_event(event: EventEnvelope) -> list[Draft]:
    """The notifications one event produces, per the rules table."""
    values, details = _context(event)
    cancelled_by = event.data.get("cancelled_by") or event.actor.role
    drafts = []
    for rule in rules_for("event", event.type):
        if any(str(event.data.get(k)) != v for k, v in rule.when.items()):
            continue
        acting_role = cancelled_by if event.type == "interview.cancelled" else event.actor.role
        if rule.other_party_only and acting_role == rule.to:
            continue
        recipient = event.client_id if rule.to == "client" else event.freelancer_id
        other = event.freelancer_id if rule.to == "client" else event.client_id
        drafts.append(
            Draft(
                id=notification_id(f"event:{event.id}", rule.to),
                kind="event",
                type=event.type,
                recipient_id=recipient,
                recipient_role=rule.to,
                title=rule.title,
                message=rule.template.format(**values),
                interview_id=event.interview_id,
                job_id=event.job_id,
                occurred_at=event.occurred_at,
                event_id=event.id,
                position=event.position,
                details=details | {"other_party": {"id": other, "role": _other(rule.to)}},
            )
        )
    return drafts


@dataclass(frozen=True)
class Deadline:
    """An open invitation or offer a reminder is about (``reminders.ReminderWorker``)."""

    what: Literal["invitation", "offer"]
    interview_id: UUID
    job_id: str
    client_id: str
    freelancer_id: str
    expires_at: datetime


def drafts_for_reminder(deadline: Deadline, at: datetime) -> list[Draft]:
    """The reminders due for one deadline; ids are stable per interview, what and deadline."""
    when = format_when(deadline.expires_at)
    values = {
        "job": deadline.job_id,
        "client": deadline.client_id,
        "freelancer": deadline.freelancer_id,
        "deadline": when,
    }
    drafts = []
    for rule in rules_for("reminder", deadline.what):
        recipient = deadline.client_id if rule.to == "client" else deadline.freelancer_id
        other = deadline.freelancer_id if rule.to == "client" else deadline.client_id
        source = (
            f"reminder:{deadline.interview_id}:{deadline.what}:{deadline.expires_at.isoformat()}"
        )
        drafts.append(
            Draft(
                id=notification_id(source, rule.to),
                kind="reminder",
                type=REMINDER_TYPE,
                recipient_id=recipient,
                recipient_role=rule.to,
                title=rule.title,
                message=rule.template.format(**values),
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
                    "expires_at": deadline.expires_at.isoformat(),
                    "other_party": {"id": other, "role": _other(rule.to)},
                },
            )
        )
    return drafts


def _other(party: Party) -> Party:
    return "freelancer" if party == "client" else "client"


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
