"""Erasures of the store's notification log, as ``subject.erased`` announcements.

The relay follows the log for these as it does for interview events (an outbox:
at least once, in order), and publishes each on ``privacy.erasures`` keyed by
the subject's id, for the marketplace's other services:
``{id, type: "subject.erased", subject_id, occurred_at}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from .adapters.log_reader import read_log
from .application import InterviewsApplication
from .domain import Erasure

SUBJECT_ERASED = "subject.erased"
ERASURE_TOPICS = (get_topic(Erasure.Requested),)


@dataclass(frozen=True)
class ErasureAnnouncement:
    """One erasure as announced on ``privacy.erasures``."""

    id: str
    subject_id: str
    occurred_at: datetime
    position: int  # in the event store's log (the relay's checkpoint)

    @property
    def key(self) -> str:
        return self.subject_id

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "type": SUBJECT_ERASED,
            "subject_id": self.subject_id,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json()).encode()


class ErasureFeed:
    """``read(after, limit)``: announcements of the erasures after a position."""

    def __init__(self, app: InterviewsApplication) -> None:
        self.app = app

    def read(self, after: int, limit: int) -> list[ErasureAnnouncement]:
        notifications = self.app.recorder.select_notifications(
            start=after, limit=limit, topics=ERASURE_TOPICS, inclusive_of_start=False
        )
        return self._announcements(notifications)

    def read_from_head(self, after: int, limit: int) -> tuple[int, list[ErasureAnnouncement]]:
        """The log's head and ``read(after, limit)``, in one round trip."""
        head, notifications = read_log(self.app.recorder, after, limit, ERASURE_TOPICS)
        return head, self._announcements(notifications)

    def _announcements(self, notifications: Sequence[Notification]) -> list[ErasureAnnouncement]:
        announcements = []
        for n in notifications:
            event = cast(Erasure.Requested, self.app.mapper.to_domain_event(n))
            announcements.append(
                ErasureAnnouncement(
                    str(event.originator_id), event.subject_id, event.timestamp, n.id
                )
            )
        return announcements

    def max_position(self) -> int:
        return self.app.max_position()
