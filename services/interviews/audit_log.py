"""The audit log: interview events as recorded, and the checks that make it tamper-evident.

Pure (the standard library and the domain only), so ``interviewctl audit replay``
checks an export on a machine with no database and no broker, with the very
code the live ``audit verify`` runs.

Two chains cover the log:

* **Each interview's chain.** Every event carries ``hash``, SHA-256 over its
  canonical fields and ``prev_hash`` (see :mod:`.domain.hashing`), so changing
  an event, deleting one or swapping two breaks the chain at that event.
* **The log digest.** A running SHA-256 over ``(position, interview id,
  version, hash)`` of every interview event in global order. It catches what
  no interview chain can see: a whole interview deleted, or an interview's last
  event. The live store keeps it at checkpoints (table ``audit_checkpoints``,
  written by ``audit verify`` and ``audit export``); an export carries it on
  every line as ``log_hash``.

An event is checked in the shape it was recorded in: an old event upcast on read
(``Cancelled`` v1 gained ``cancelled_by`` in v2, ``InterviewStarted`` v1
``duration_minutes``, ``OfferDeclined`` v1 ``status``) is hashed over its fields
as they were when the hash was made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from .domain.hashing import GENESIS, chain_hash
from .domain.interview import BASE_FIELDS, EVENT_TYPES, META_FIELDS, TRACE_CONTEXT, Interview

# Interview events by class name (the name an exported line carries) and their
# published type names.
TYPE_NAMES: dict[str, str] = {cls.__name__: name for cls, name in EVENT_TYPES.items()}
EVENT_CLASSES: dict[str, type[Interview.Event]] = {cls.__name__: cls for cls in EVENT_TYPES}
EVENT_CLASSES_BY_TOPIC: dict[str, type[Interview.Event]] = {
    get_topic(c): c for c in EVENT_CLASSES.values()
}
LOG_GENESIS = ""
_NOT_HASHED = ("hash", "originator_topic")


def json_value(value: Any) -> Any:
    """A field value as JSON, by the same rules as :func:`.domain.hashing.canonical`."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    return value


def next_log_digest(
    digest: str, position: int, interview_id: UUID, version: int, hash_: str
) -> str:
    """The log digest after one more interview event."""
    line = f"{digest}|{position}|{interview_id}|{version}|{hash_}"
    return hashlib.sha256(line.encode()).hexdigest()


@dataclass
class RecordedEvent:
    """One interview event as it sits in the log.

    ``recorded`` holds its fields in the shape they were stored in (no
    ``originator_id``/``originator_version``, which are columns, and no
    ``class_version``); ``event`` is the domain event read from them (upcast to
    the current class version), or None with ``error`` when it cannot be read.
    """

    interview_id: UUID
    version: int
    position: int | None
    event_class: type[Interview.Event] | None
    class_version: int
    recorded: dict[str, Any]
    event: Interview.Event | None = None
    error: str | None = None

    @classmethod
    def read(
        cls,
        event_class: type[Interview.Event] | None,
        interview_id: UUID,
        version: int,
        position: int | None,
        class_version: int,
        recorded: dict[str, Any],
    ) -> RecordedEvent:
        """Builds the domain event like the event store's mapper: upcast, then construct.

        The command's ``traceparent`` stored beside the fields is left out: it is
        not part of the event, and the hash never covered it.
        """
        recorded = {k: v for k, v in recorded.items() if k != TRACE_CONTEXT}
        record = cls(interview_id, version, position, event_class, class_version, recorded)
        if event_class is None:
            record.error = "not an interview event type"
            return record
        if type(class_version) is not int or class_version < 1:
            record.class_version = 0
            record.error = f"stored class_version {class_version!r} is not a version number"
            return record
        state = dict(recorded)
        state["originator_id"] = interview_id
        state["originator_version"] = version
        current = getattr(event_class, "class_version", 1)
        try:
            for v in range(class_version, current):
                getattr(event_class, f"upcast_v{v}_v{v + 1}")(state)
        except Exception as error:  # any failure means unreadable
            record.error = f"stored event cannot be upcast: {error}"
            return record
        # class_version is not hashed: an upcast may add fields, never change
        # recorded ones, or the event read would differ from the event verified.
        changed = [k for k, v in recorded.items() if state.get(k, v) != v]
        if changed:
            record.error = (
                f"stored as v{class_version} but upcasting changes {', '.join(changed)}: "
                "its class_version was altered"
            )
            return record
        problem = _shape_problem(event_class, state)
        if problem is not None:
            record.error = f"stored event does not fit {event_class.__name__}: {problem}"
            return record
        event = object.__new__(event_class)
        object.__setattr__(event, "__dict__", state)
        record.event = event
        return record

    @property
    def event_name(self) -> str | None:
        return self.event_class.__name__ if self.event_class else None

    @property
    def hash(self) -> str:
        value = self.recorded.get("hash")
        return value if isinstance(value, str) else ""

    def link_problem(self, prev_hash: str) -> str | None:
        """Why this event does not follow ``prev_hash`` in its chain, or None if it does."""
        if self.error is not None or self.event is None or self.event_class is None:
            return self.error or "stored event cannot be read"
        if self.class_version == getattr(self.event_class, "class_version", 1):
            return self.event.verify_link(prev_hash)
        # Recorded in an older shape: the hash covers the fields as they were then.
        if self.recorded.get("prev_hash") != prev_hash:
            return "prev_hash does not match the previous event's hash"
        fields = {k: v for k, v in self.recorded.items() if k not in _NOT_HASHED}
        fields.update(
            originator_id=self.interview_id,
            originator_version=self.version,
            type=self.event_class.__name__,
        )
        if chain_hash(prev_hash, fields) != self.hash:
            return "hash does not match the event's content"
        return None

    # ------------------------------------------------------------ JSON form

    def to_json(self) -> dict[str, Any]:
        """The event as the audit API shows it and an export line holds it.

        Every value is exactly what the hash was computed over, so anyone can
        re-verify the chain from this form (``audit replay`` does).
        """
        r = self.recorded
        data = {
            k: json_value(v) for k, v in r.items() if k not in META_FIELDS and k not in BASE_FIELDS
        }
        return {
            "interview_id": str(self.interview_id),
            "position": self.position,
            "version": self.version,
            "type": TYPE_NAMES.get(self.event_name or ""),
            "event": self.event_name,
            "class_version": self.class_version,
            "occurred_at": json_value(r.get("timestamp")),
            "actor": {"id": r.get("actor_id"), "role": r.get("actor_role")},
            "correlation_id": r.get("correlation_id"),
            "causation_id": r.get("causation_id"),
            "data": data,
            "prev_hash": r.get("prev_hash"),
            "hash": r.get("hash"),
            "error": self.error,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RecordedEvent:
        """Reads :meth:`to_json`'s form back (an export line)."""
        event_class = EVENT_CLASSES.get(str(obj.get("event")))
        actor = obj.get("actor") or {}
        raw: dict[str, Any] = {
            "timestamp": obj.get("occurred_at"),
            "actor_id": actor.get("id"),
            "actor_role": actor.get("role"),
            "correlation_id": obj.get("correlation_id"),
            "causation_id": obj.get("causation_id"),
            "prev_hash": obj.get("prev_hash"),
            "hash": obj.get("hash"),
            **(obj.get("data") or {}),
        }
        interview_id = UUID(str(obj["interview_id"]))
        version = int(obj["version"])
        position = obj.get("position")
        class_version = int(obj.get("class_version") or 1)
        if event_class is None:
            return cls.read(None, interview_id, version, position, class_version, raw)
        try:
            recorded = {k: _typed(event_class, k, v) for k, v in raw.items()}
        except (TypeError, ValueError, ArithmeticError) as error:
            record = cls(interview_id, version, position, event_class, class_version, raw)
            record.error = f"a field does not have its type: {error}"
            return record
        if issubclass(event_class, Interview.Invited):
            recorded["originator_topic"] = get_topic(Interview)
        return cls.read(event_class, interview_id, version, position, class_version, recorded)


def _typed(event_class: type[Interview.Event], name: str, value: Any) -> Any:
    """A JSON value back as the field's Python type (datetime, date, Decimal, UUID)."""
    spec = _fields(event_class).get(name)
    if value is None or spec is None or spec.convert is None:
        return value
    return spec.convert(value)


def _shape_problem(event_class: type[Interview.Event], state: dict[str, Any]) -> str | None:
    """A field missing or of the wrong type (a decoded event is otherwise unchecked)."""
    for name, spec in _fields(event_class).items():
        if name not in state:
            return f"{name} is missing"
        value = state[name]
        if spec.kinds and not isinstance(value, spec.kinds):
            return f"{name} is a {type(value).__name__}"
        if isinstance(value, datetime) and value.tzinfo is None:
            return f"{name} has no time zone"
    return None


@dataclass(frozen=True)
class _Field:
    kinds: tuple[type, ...]  # the types it may hold; empty: not checked
    convert: Callable[[Any], Any] | None  # from its JSON form, where that is not the value


_FROM_JSON: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (datetime, datetime.fromisoformat),
    (date, date.fromisoformat),
    (Decimal, lambda v: Decimal(str(v))),
    (UUID, lambda v: UUID(str(v))),
)
_FIELDS: dict[type[Any], dict[str, _Field]] = {}


def _fields(event_class: type[Interview.Event]) -> dict[str, _Field]:
    """Each dataclass field of an event class, from its type hints (cached)."""
    if event_class not in _FIELDS:
        hints = typing.get_type_hints(event_class)
        fields = {}
        for f in dataclasses.fields(event_class):
            hint = hints.get(f.name)
            options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
            # dict[str, str] (sealed text) is checked as a dict.
            origins = tuple(typing.get_origin(o) or o for o in options)
            kinds = tuple(o for o in origins if isinstance(o, type))
            convert = next((c for kind, c in _FROM_JSON if kind in options), None)
            fields[f.name] = _Field(kinds if len(kinds) == len(options) else (), convert)
        _FIELDS[event_class] = fields
    return _FIELDS[event_class]


# ---------------------------------------------------------------- checking


@dataclass(frozen=True)
class BrokenLink:
    """The first link of an interview's chain that does not hold, and why."""

    interview_id: UUID
    version: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    """``GET /audit/interviews/{id}/verify``'s answer."""

    ok: bool
    checked: int
    broken: BrokenLink | None = None


@dataclass(frozen=True)
class Checkpoint:
    """The log digest after ``events`` interview events, the last at ``position``."""

    position: int
    events: int
    digest: str
    created_at: str = ""


@dataclass(frozen=True)
class LogProblem:
    position: int
    reason: str


@dataclass
class LogReport:
    """The outcome of checking the whole log."""

    checked: int
    interviews: int
    position: int
    digest: str
    broken: list[BrokenLink] = field(default_factory=list)
    log_problem: LogProblem | None = None

    @property
    def ok(self) -> bool:
        return not self.broken and self.log_problem is None


class LogChecker:
    """Follows the interview log in global order, checking every interview's
    chain and the log digest against the given checkpoints.

    Fed one interview's events, it verifies that interview's chain alone.
    """

    def __init__(self, checkpoints: Sequence[Checkpoint] = (), checkpoint_every: int = 0) -> None:
        self.digest = LOG_GENESIS
        self.events = 0
        self.position = 0
        self.heads: dict[UUID, tuple[int, str]] = {}
        self.broken: dict[UUID, BrokenLink] = {}
        self.log_problem: LogProblem | None = None
        self.new_checkpoints: list[Checkpoint] = []
        self._checkpoints = sorted(checkpoints, key=lambda c: c.position)
        self._next = 0
        self._matched: Checkpoint | None = None
        self._every = checkpoint_every

    def add(self, record: RecordedEvent) -> str:
        """Checks one more event; returns the log digest after it."""
        position = record.position or 0
        self._compare_checkpoints(before=position)
        self._check_link(record)
        self.digest = next_log_digest(
            self.digest, position, record.interview_id, record.version, record.hash
        )
        self.events += 1
        self.position = position
        if self._every and self.events % self._every == 0:
            self.new_checkpoints.append(Checkpoint(position, self.events, self.digest))
        return self.digest

    def note_log_problem(self, position: int, reason: str) -> None:
        if self.log_problem is None:
            self.log_problem = LogProblem(position, reason)

    def finish(self) -> LogReport:
        self._compare_checkpoints(before=None)
        if (
            self._every
            and self.events
            and (not self.new_checkpoints or self.new_checkpoints[-1].position != self.position)
        ):
            self.new_checkpoints.append(Checkpoint(self.position, self.events, self.digest))
        return LogReport(
            checked=self.events,
            interviews=len(self.heads.keys() | self.broken.keys()),
            position=self.position,
            digest=self.digest,
            broken=sorted(self.broken.values(), key=lambda b: (str(b.interview_id), b.version)),
            log_problem=self.log_problem,
        )

    def fresh_checkpoints(self, created_at: str) -> list[Checkpoint]:
        """Checkpoints of this walk beyond the last one known before it."""
        known = self._checkpoints[-1].position if self._checkpoints else 0
        return [
            dataclasses.replace(c, created_at=created_at)
            for c in self.new_checkpoints
            if c.position > known
        ]

    def chain_report(self) -> ChainReport:
        """The verdict on a single interview's events."""
        broken = next(iter(self.broken.values()), None)
        return ChainReport(ok=broken is None, checked=self.events, broken=broken)

    def _check_link(self, record: RecordedEvent) -> None:
        iid = record.interview_id
        if iid in self.broken:
            return
        version, prev_hash = self.heads.get(iid, (0, GENESIS))
        expected = version + 1
        if record.version != expected:
            after = f"v{version}" if version else "the start"
            reason = f"v{record.version} follows {after}: " + (
                f"event v{expected} is missing, or events were swapped"
                if record.version > expected
                else "events were swapped or reordered"
            )
            self.broken[iid] = BrokenLink(iid, expected, reason)
            return
        problem = record.link_problem(prev_hash)
        if problem is not None:
            self.broken[iid] = BrokenLink(iid, record.version, problem)
            return
        self.heads[iid] = (record.version, record.hash)

    def _compare_checkpoints(self, before: int | None) -> None:
        while self._next < len(self._checkpoints):
            cp = self._checkpoints[self._next]
            if before is not None and cp.position >= before:
                return
            self._next += 1
            if cp.events == self.events and cp.digest == self.digest:
                self._matched = cp
                continue
            since = (
                f" (it matched the checkpoint at position {self._matched.position})"
                if self._matched
                else ""
            )
            if cp.events != self.events:
                what = (
                    f"held {cp.events} interview events at its checkpoint and now holds "
                    f"{self.events}: events or whole interviews were deleted or inserted"
                )
            else:
                what = "differs from its checkpoint: an event's hash or position was changed"
            self.note_log_problem(
                cp.position, f"the log up to position {cp.position} {what}{since}"
            )


def verify_chain(records: Iterable[RecordedEvent]) -> ChainReport:
    """One interview's events, in the order they were recorded; stops at the
    first broken link (``checked`` counts the events looked at)."""
    checker = LogChecker()
    for record in records:
        checker.add(record)
        if checker.broken:
            break
    return checker.chain_report()


# ----------------------------------------------------------------- replay
