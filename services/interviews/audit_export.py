"""The export file and the offline replay of ``interviewctl audit``.

``write_line`` writes one recorded event per JSON line with the running log
digest; ``replay`` checks such a file on a machine with no database and no
broker (every chain, the log digest, and each interview folded to its state),
with the very checks of :mod:`.audit_log` the live ``audit verify`` runs.
Sealed personal text stays sealed: with no keys, ``interview_state`` shows it as
erased.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from uuid import UUID

from ..common.privacy import is_sealed
from .audit_log import LogChecker, LogReport, RecordedEvent, json_value
from .domain.interview import Interview


def interview_state(interview: Interview) -> dict[str, Any]:
    """An interview's state as JSON (the fields of ``GET /interviews/{id}``)."""
    offer = None
    if interview.offer is not None:
        offer = {
            **{k: json_value(v) for k, v in dataclasses.asdict(interview.offer).items()},
            "expires_at": json_value(interview.offer_expires_at),
        }
    names = (
        "status",
        "version",
        "job_id",
        "client_id",
        "freelancer_id",
        "message",
        "invited_at",
        "invitation_expires_at",
        "accepted_at",
        "started_at",
        "scheduled_at",
        "offer",
        "offers_extended",
        "hired_at",
        "closed_reason",
        "cancelled_by",
        "updated_at",
    )
    state = {"id": str(interview.id), **{n: json_value(getattr(interview, n)) for n in names}}
    state["offer"] = offer
    state["duration_minutes"] = interview.meeting_minutes
    state["reschedules"] = interview.reschedules
    # Offline there is no key service: sealed text cannot be opened, so it shows
    # as erased (null, named in erased_fields), as if its author had been erased.
    erased = []
    for name, holder in (("message", state), ("closed_reason", state), ("offer.message", offer)):
        key = name.rsplit(".", 1)[-1]
        if holder is not None and is_sealed(holder.get(key)):
            holder[key] = None
            erased.append(name)
    state["erased_fields"] = erased
    return state


@dataclass
class ReplayReport:
    """What ``audit replay`` found in an export."""

    log: LogReport
    states: dict[UUID, dict[str, Any]]
    unreadable: dict[UUID, str]
    bad_lines: list[str] = field(default_factory=list)  # lines that are not an event at all

    @property
    def ok(self) -> bool:
        return self.log.ok and not self.unreadable and not self.bad_lines


def replay(lines: Iterable[str]) -> ReplayReport:
    """Verifies an export (every chain, and each line's ``log_hash``) and rebuilds
    every interview's final state from it."""
    checker = LogChecker()
    interviews: dict[UUID, Interview | None] = {}
    unreadable: dict[UUID, str] = {}
    bad_lines: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            record = RecordedEvent.from_json(obj)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
            # RecursionError: a line nested past the JSON parser's depth.
            bad_lines.append(f"line {number} cannot be read: {error}")
            checker.note_log_problem(checker.position, bad_lines[-1])
            continue
        digest = checker.add(record)
        if obj.get("log_hash") != digest:
            checker.note_log_problem(
                checker.position,
                f"line {number}: log_hash does not match: a line at or before it was "
                "removed, inserted or changed",
            )
        iid = record.interview_id
        if iid not in unreadable:
            try:
                if record.event is None:
                    raise ValueError(record.error)
                interviews[iid] = record.event.mutate(interviews.get(iid))
            except Exception as error:  # reported per interview
                unreadable[iid] = f"v{record.version}: {error}"
    states = {iid: interview_state(i) for iid, i in interviews.items() if i is not None}
    return ReplayReport(checker.finish(), states, unreadable, bad_lines)


def read_export(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        yield from handle


def write_line(out: IO[str], record: RecordedEvent, log_hash: str) -> None:
    out.write(json.dumps({**record.to_json(), "log_hash": log_hash}, ensure_ascii=False))
    out.write("\n")
