"""An interview as an iCalendar object (RFC 5545), for the calendar feed and e-mails.

One pure function, so the interviews service's feed and the notifications
service's e-mail attachments carry the same event: the same inputs give the
same bytes. Built with the ``icalendar`` library, never by string templates.

What a calendar application relies on to update the event in place (RFC 5546):

* ``UID`` never changes for an interview (``<interview id>@interviews``);
* ``SEQUENCE`` counts the schedule changes: 0 when the interview starts, one
  more per reschedule, one more when it is cancelled;
* ``METHOD:REQUEST`` while the meeting stands (the organizer, the client, asks
  the attendee, the freelancer, to attend: the iTIP method for creating and
  updating a meeting with attendees; ``PUBLISH`` would forbid ``ATTENDEE``), and
  ``METHOD:CANCEL`` with ``STATUS:CANCELLED`` once it is cancelled;
* ``DTSTAMP`` is the time of the last schedule change, so the bytes only
  change when the meeting does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from icalendar import Calendar, Event, vCalAddress

PRODID = "-//Interview Platform//Interviews//EN"
Method = Literal["REQUEST", "CANCEL", "PUBLISH"]


def interview_uid(interview_id: UUID | str) -> str:
    """The UID of an interview's event: the same for its whole life."""
    return f"{interview_id}@interviews"


def meeting_summary(job_id: str) -> str:
    """The event's title, the same in the feed and in e-mails."""
    return f"Interview for job {job_id}"


def meeting_description(
    interview_id: UUID | str, job_id: str, client_id: str, freelancer_id: str
) -> str:
    """The event's description, the same in the feed and in e-mails."""
    return (
        f"Interview {interview_id} for job {job_id} between client "
        f"{client_id} and freelancer {freelancer_id}."
    )


def calendar_address(user_id: str, email_domain: str | None = None) -> str:
    """A user's calendar address (a URI): ``mailto:`` where e-mail addresses are
    known, else a URN that names the user."""
    if email_domain:
        return f"mailto:{user_id}@{email_domain}"
    return f"urn:x-interviews:user:{user_id}"


def interview_calendar(
    *,
    interview_id: UUID | str,
    summary: str,
    description: str,
    start: datetime,
    duration_minutes: int,
    organizer_id: str,
    attendee_id: str,
    sequence: int,
    stamp: datetime,
    cancelled: bool = False,
    method: Method | None = None,
    email_domain: str | None = None,
) -> bytes:
    """The interview's meeting as a ``VCALENDAR`` holding one ``VEVENT``.

    ``start`` must be zone-aware; times are written in UTC. ``method`` defaults
    to ``CANCEL`` once ``cancelled``, else ``REQUEST``. ``PUBLISH`` (no replies
    expected) leaves the attendee out, as RFC 5546 requires.
    """
    if start.tzinfo is None or stamp.tzinfo is None:
        raise ValueError("start and stamp must be zone-aware")
    if duration_minutes <= 0:
        raise ValueError("duration_minutes must be positive")
    if sequence < 0:
        raise ValueError("sequence must not be negative")
    chosen: Method = method or ("CANCEL" if cancelled else "REQUEST")
    begins = start.astimezone(UTC)

    event = Event()
    event.add("uid", interview_uid(interview_id))
    event.add("sequence", sequence)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("dtstart", begins)
    event.add("dtend", begins + timedelta(minutes=duration_minutes))
    event.add("summary", summary)
    event.add("description", description)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("organizer", _address(organizer_id, email_domain))
    if chosen != "PUBLISH":
        attendee = _address(attendee_id, email_domain)
        attendee.params["role"] = "REQ-PARTICIPANT"
        if chosen == "REQUEST":
            attendee.params["rsvp"] = "TRUE"
        event.add("attendee", attendee)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", chosen)
    calendar.add_component(event)
    return calendar.to_ical()


def _address(user_id: str, email_domain: str | None) -> vCalAddress:
    address = vCalAddress(calendar_address(user_id, email_domain))
    address.params["cn"] = user_id
    return address
