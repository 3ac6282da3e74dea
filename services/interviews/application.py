"""The interview service's use cases, on an ``eventsourcing`` Application.

``InterviewsApplication`` is composed of the commands on interviews
(``use_cases/interview_commands.py``) and on jobs (``use_cases/job_commands.py``),
both running on ``use_cases/core.py`` (the event store, the group committer,
retries on a lost race); it adds the queries. The names callers use are
importable from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from .adapters.log_reader import read_log
from .domain import Interview
from .domain.interview import EVENT_TYPES
from .use_cases.core import (
    MAX_ATTEMPTS,
    Committer,
    EventPositions,
    KeyedLocks,
    RecordBatch,
    utcnow,
)
from .use_cases.errors import (
    ConcurrencyConflictError,
    IdempotencyKeyReusedError,
    InterviewNotFoundError,
    VersionMismatchError,
)
from .use_cases.execution import CommandResult, PreparedCommand
from .use_cases.interview_commands import InterviewCommands
from .use_cases.job_commands import (
    JOB_ID_NAMESPACE,
    JobClosing,
    JobCommands,
    JobPolicy,
    JobView,
)

__all__ = [
    "INTERVIEW_TOPICS",
    "JOB_ID_NAMESPACE",
    "MAX_ATTEMPTS",
    "CommandResult",
    "Committer",
    "ConcurrencyConflictError",
    "EventPositions",
    "IdempotencyKeyReusedError",
    "InterviewNotFoundError",
    "InterviewsApplication",
    "JobClosing",
    "JobPolicy",
    "JobView",
    "KeyedLocks",
    "PreparedCommand",
    "RecordBatch",
    "VersionMismatchError",
    "is_interview_event",
    "utcnow",
]

INTERVIEW_TOPICS: tuple[str, ...] = tuple(get_topic(c) for c in EVENT_TYPES)


class InterviewsApplication(InterviewCommands, JobCommands):
    """The interview workflow: commands, authoritative state and history."""

    name = "interviews"
    snapshotting_intervals = {Interview: 100}  # eventsourcing's ClassVar
    # Commands load the same few aggregates again and again: keep recent ones in
    # memory. A cached aggregate is still fast-forwarded from the store (one query
    # for newer events instead of a snapshot lookup and an events query), so other
    # processes' writes are seen. The environment's AGGREGATE_CACHE_MAXSIZE wins.
    env = {"AGGREGATE_CACHE_MAXSIZE": "4096"}  # eventsourcing's ClassVar

    # ------------------------------------------------------------------ queries

    def get_interview(self, interview_id: UUID, version: int | None = None) -> Interview:
        return self._get_interview(interview_id, version)

    def interview_events(self, interview_id: UUID) -> list[Interview.Event]:
        # An interview's stream holds only Interview events.
        return cast(list[Interview.Event], list(self.events.get(interview_id)))

    def iter_interview_notifications(
        self, after: int = 0, limit: int = 1000
    ) -> Iterator[tuple[int, Interview.Event]]:
        """Interview events in global order after ``after``, with their positions."""
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, topics=INTERVIEW_TOPICS, inclusive_of_start=False
        )
        for n in notifications:
            # INTERVIEW_TOPICS selects Interview events only.
            yield n.id, cast(Interview.Event, self.mapper.to_domain_event(n))

    def interview_notifications_from_head(
        self, after: int, limit: int
    ) -> tuple[int, list[tuple[int, Interview.Event]]]:
        """The log's head and the interview events after ``after`` (at most
        ``limit``), read together: every event up to the head is among them or
        before ``after``, unless ``limit`` cut the read short."""
        head, notifications = self.interview_log_from_head(after, limit)
        to_domain = self.mapper.to_domain_event
        # INTERVIEW_TOPICS selects Interview events only.
        return head, [(n.id, cast(Interview.Event, to_domain(n))) for n in notifications]

    def interview_log_from_head(self, after: int, limit: int) -> tuple[int, list[Notification]]:
        """``interview_notifications_from_head`` as stored: the events not decoded."""
        return read_log(self.recorder, after, limit, INTERVIEW_TOPICS)

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def check_ready(self) -> None:
        """Raises if the event store cannot be reached."""
        self.recorder.max_notification_id()


def is_interview_event(event: DomainEventProtocol[Any]) -> bool:
    return isinstance(event, Interview.Event)
