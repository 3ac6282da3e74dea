"""The interview events of the store's notification log, as published envelopes.

One reading and one conversion (``adapters/envelope.py:state_fields``) for every
reader of the log: the relay (to Kafka, ``InterviewMessageFeed``: the envelopes
as the bytes it sends, converted from the stored states without building domain
events) and, in the embedded default, the downstream consumers that read the log
directly (``InterviewEventFeed``: the validated envelopes).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.persistence import Notification, Recording

from ..contracts import EventEnvelope
from .adapters.envelope import OutgoingEvent, outgoing_from_state, to_envelope, to_outgoing
from .adapters.event_states import EventStates
from .application import InterviewsApplication
from .domain import Interview

Parties = tuple[str, str, str]


class PartiesCache:
    """(job_id, client_id, freelancer_id) per interview id (as text), least recently
    used evicted.

    They never change after the invitation, so a miss reads the interview's
    first event once.
    """

    def __init__(self, app: InterviewsApplication, maxsize: int = 100_000) -> None:
        self._app = app
        self._maxsize = maxsize
        self._items: OrderedDict[str, Parties] = OrderedDict()
        self._lock = threading.Lock()
        self.misses = 0

    def remember(self, interview_id: str, parties: Parties) -> None:
        with self._lock:
            self._items[interview_id] = parties
            self._items.move_to_end(interview_id)
            if len(self._items) > self._maxsize:
                self._items.popitem(last=False)

    def get(self, interview_id: str) -> Parties:
        with self._lock:
            parties = self._items.get(interview_id)
            if parties is not None:
                self._items.move_to_end(interview_id)
                return parties
        self.misses += 1
        first = next(iter(self._app.events.get(UUID(interview_id), lte=1)), None)
        if not isinstance(first, Interview.Invited):
            raise LookupError(f"interview {interview_id} has no Invited event")
        parties = (first.job_id, first.client_id, first.freelancer_id)
        self.remember(interview_id, parties)
        return parties


T = TypeVar("T")


class _InterviewLog(Generic[T]):
    """``read(after, limit)``: the interview events after a position, converted."""

    def __init__(
        self,
        app: InterviewsApplication,
        convert: Callable[[Interview.Event, int, Parties], T],
        cache_size: int = 100_000,
    ) -> None:
        self.app = app
        self.parties = PartiesCache(app, cache_size)
        self._convert = convert

    def convert(self, position: int, event: Interview.Event) -> T:
        if type(event) is Interview.Invited:
            parties = (event.job_id, event.client_id, event.freelancer_id)
            self.parties.remember(str(event.originator_id), parties)
        else:
            parties = self.parties.get(str(event.originator_id))
        return self._convert(event, position, parties)

    def read(self, after: int, limit: int) -> list[T]:
        convert = self.convert
        return [
            convert(position, event)
            for position, event in self.app.iter_interview_notifications(after, limit)
        ]

    def read_from_head(self, after: int, limit: int) -> tuple[int, list[T]]:
        """The log's head and ``read(after, limit)``, in one round trip."""
        head, events = self.app.interview_notifications_from_head(after, limit)
        convert = self.convert
        return head, [convert(position, event) for position, event in events]

    def max_position(self) -> int:
        return self.app.max_position()


class InterviewEventFeed(_InterviewLog[EventEnvelope]):
    """``read(after, limit)``: envelopes of the interview events after a position."""

    def __init__(self, app: InterviewsApplication, cache_size: int = 100_000) -> None:
        super().__init__(app, to_envelope, cache_size)


class InterviewMessageFeed(_InterviewLog[OutgoingEvent]):
    """``read(after, limit)``: the interview events after a position as the relay
    sends them (the envelope's bytes, its key and header values), converted from
    their stored states without building the domain events."""

    def __init__(self, app: InterviewsApplication, cache_size: int = 100_000) -> None:
        super().__init__(app, to_outgoing, cache_size)
        self.states = EventStates(app.mapper)

    def read(self, after: int, limit: int) -> list[OutgoingEvent]:
        return self.read_from_head(after, limit)[1]

    def read_from_head(self, after: int, limit: int) -> tuple[int, list[OutgoingEvent]]:
        head, stored = self.app.interview_log_from_head(after, limit)
        return head, [self.convert_stored(notification) for notification in stored]

    def convert_stored(self, notification: Notification) -> OutgoingEvent:
        event_class, state = self.states.decode(notification)
        interview_id = str(notification.originator_id)
        if event_class is Interview.Invited:
            parties = (state["job_id"], state["client_id"], state["freelancer_id"])
            self.parties.remember(interview_id, parties)
        else:
            parties = self.parties.get(interview_id)
        return outgoing_from_state(
            event_class,
            state,
            interview_id,
            notification.originator_version,
            notification.id,
            parties,
        )


class _SetOnInterviewEvents:
    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag

    def __call__(self, recordings: list[Recording[Any]]) -> None:
        if any(isinstance(r.domain_event, Interview.Event) for r in recordings):
            self.flag.set()


def wake_on_interview_events(app: InterviewsApplication) -> threading.Event:
    """A flag set after every committed batch that recorded an interview event.

    The in-process wake-up of a follower of the log (SQLite has no LISTEN/NOTIFY).
    """
    flag = threading.Event()
    app.listeners.append(_SetOnInterviewEvents(flag))
    return flag


def unhook(app: InterviewsApplication, flag: threading.Event) -> None:
    """Stops setting ``flag``."""
    app.listeners[:] = [
        listener
        for listener in app.listeners
        if not (isinstance(listener, _SetOnInterviewEvents) and listener.flag is flag)
    ]


ReadEnvelopes = Callable[[int, int], list[EventEnvelope]]
