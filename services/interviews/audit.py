"""Audit use cases: history, time travel, verification and export of the interview log.

Everything here reads; nothing changes or deletes history (checkpoints are
appended to their own table). The checks themselves live in
:mod:`.audit_log`, shared with the offline ``audit replay``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, cast
from uuid import UUID

from .adapters.audit_store import AuditStore, StoredRow
from .application import InterviewNotFoundError, InterviewsApplication
from .audit_export import write_line
from .audit_log import (
    EVENT_CLASSES_BY_TOPIC,
    ChainReport,
    LogChecker,
    LogReport,
    RecordedEvent,
    verify_chain,
)
from .domain import Interview

_TOPICS = tuple(EVENT_CLASSES_BY_TOPIC)
PAGE_SIZE = 5000
CHECKPOINT_EVERY = 1000

Progress = Callable[[int, int], None]  # (position reached, last position)


class BrokenHistoryError(Exception):
    """The interview's events cannot be replayed up to the requested point."""

    code = "broken_history"

    def __init__(self, interview_id: UUID, version: int, reason: str) -> None:
        super().__init__(
            f"interview {interview_id} cannot be rebuilt at v{version}: {reason} (see /verify)"
        )
        self.version = version


@dataclass(frozen=True)
class PastState:
    interview: Interview
    position: int | None


class InterviewAudit:
    """Reads the interview log as recorded, for auditors."""

    def __init__(self, app: InterviewsApplication) -> None:
        self.app = app
        self.store = AuditStore(app.recorder)

    # ---------------------------------------------------------------- history

    def history(self, interview_id: UUID) -> list[RecordedEvent]:
        """Every event of an interview, in the order it was recorded."""
        rows = self.store.interview_rows(interview_id)
        if not any(r.topic in EVENT_CLASSES_BY_TOPIC for r in rows):
            raise InterviewNotFoundError(f"interview {interview_id} not found")
        return [self._read(r) for r in rows]

    def log_page(self, after: int, limit: int) -> list[RecordedEvent]:
        """Interview events in global order after a position."""
        return [self._read(r) for r in self.store.log_rows(after, limit, _TOPICS)]

    def iter_log(self, progress: Progress | None = None) -> Iterator[RecordedEvent]:
        last = self.app.max_position()
        after = 0
        while True:
            rows = self.store.log_rows(after, PAGE_SIZE, _TOPICS)
            for row in rows:
                yield self._read(row)
            if len(rows) < PAGE_SIZE:
                if progress is not None:
                    progress(max(last, after), max(last, after))
                return
            after = rows[-1].position
            if progress is not None:
                progress(after, max(last, after))

    # ------------------------------------------------------------ time travel

    def state(
        self, interview_id: UUID, *, at: datetime | None = None, version: int | None = None
    ) -> PastState:
        """The interview as it was at a time or version, replayed from its events."""
        return state_at(self.history(interview_id), at=at, version=version)

    # ----------------------------------------------------------- verification

    def verify(self, interview_id: UUID) -> ChainReport:
        """Checks one interview's chain: every event's hash and link, no gaps."""
        return verify_chain(self.history(interview_id))

    def verify_all(self, progress: Progress | None = None) -> LogReport:
        """Checks every interview's chain and the log digest against the
        checkpoints, then records new checkpoints if all was well."""
        return self._walk(lambda _record, _digest: None, progress)

    def export(self, out: IO[str], progress: Progress | None = None) -> LogReport:
        """Writes the whole log, one JSON line per event, with its ``log_hash``."""
        return self._walk(lambda record, digest: write_line(out, record, digest), progress)

    def _walk(
        self, each: Callable[[RecordedEvent, str], None], progress: Progress | None
    ) -> LogReport:
        checker = LogChecker(self.store.checkpoints(), checkpoint_every=CHECKPOINT_EVERY)
        for record in self.iter_log(progress):
            each(record, checker.add(record))
        report = checker.finish()
        if report.ok:
            self.store.add_checkpoints(checker.fresh_checkpoints(self.app.clock().isoformat()))
        return report

    # --------------------------------------------------------------- decoding

    def _read(self, row: StoredRow) -> RecordedEvent:
        event_class = EVENT_CLASSES_BY_TOPIC.get(row.topic)
        try:
            state = self._decode(row.state)
            if not isinstance(state, dict):
                raise TypeError("not an object")
        except Exception as error:  # any failure means unreadable
            record = RecordedEvent(row.originator_id, row.version, row.position, event_class, 1, {})
            record.error = f"stored event no longer decodes: {error}"
            return record
        class_version = state.pop("class_version", 1)
        return RecordedEvent.read(
            event_class, row.originator_id, row.version, row.position, class_version, state
        )

    def _decode(self, state: bytes) -> Any:
        mapper = self.app.mapper
        if mapper.cipher:
            state = mapper.cipher.decrypt(state)
        if mapper.compressor:
            state = mapper.compressor.decompress(state)
        return mapper.transcoder.decode(state)


def state_at(
    records: list[RecordedEvent], *, at: datetime | None = None, version: int | None = None
) -> PastState:
    """Replays an interview's events up to ``version``, or the longest run of them
    recorded at or before ``at``."""
    interview_id = records[0].interview_id
    chosen: list[RecordedEvent] = []
    for record in records:
        if version is not None and len(chosen) == version:
            break
        if record.event is None:
            raise BrokenHistoryError(interview_id, record.version, record.error or "")
        if at is not None and record.event.timestamp > at:
            break
        chosen.append(record)
    if not chosen:
        when = f"at {at.isoformat()}" if at is not None else "yet"
        raise InterviewNotFoundError(f"interview {interview_id} did not exist {when}")
    if version is not None and len(chosen) < version:
        raise InterviewNotFoundError(
            f"interview {interview_id} has no version {version} (it has {len(chosen)})"
        )
    interview: Any = None
    for record in chosen:
        try:
            # Every chosen record has its event (one without raised BrokenHistoryError).
            interview = cast(Interview.Event, record.event).mutate(interview)
        except Exception as error:  # a broken stream, reported as such
            raise BrokenHistoryError(interview_id, record.version, str(error)) from None
    return PastState(interview, chosen[-1].position)
