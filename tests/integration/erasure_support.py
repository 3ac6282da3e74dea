"""Sealed events fed to the projections and notifications consumers (the runner's own
code, over an in-memory log), and scans of everything they stored.

The interviews side (the writer that seals, the key store) is stood in for by
``InMemoryKeys`` and ``sealed_log``: events sealed exactly as the contract says
(each personal field under its author's key).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from services.common.privacy import InMemoryKeys, KeyService, seal
from services.contracts import SCHEMA_VERSIONS, EventEnvelope
from tests.support.consumers import InProcessConsumers, ReadLog

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# The subject of the erasure (freelancer f-1) writes these; c-1 and f-2 write the others.
SUBJECT = "f-1"
SUBJECT_WORDS = ("FIONA-decline-booked", "FIONA-offer-rate-low", "FIONA-cancel-moving")
OTHER_WORDS = ("CLIENT-ONE-invite-a", "CLIENT-ONE-invite-b", "CLIENT-ONE-offer", "FRANK-declines")


class SealedLog:
    """An event store's log of integration events, personal texts sealed per author."""

    def __init__(self, keys: InMemoryKeys) -> None:
        self.keys = keys
        self.events: list[EventEnvelope] = []
        self.versions: dict[uuid.UUID, int] = {}

    def read(self, after: int, limit: int) -> list[EventEnvelope]:
        return [e for e in self.events if e.position > after][:limit]

    def add(
        self,
        kind: str,
        interview: uuid.UUID,
        actor: tuple[str, str],
        parties: tuple[str, str, str],
        data: dict[str, Any] | None = None,
        text: str | None = None,
        at: datetime | None = None,
    ) -> EventEnvelope:
        """Appends ``interview.<kind>``; ``text`` goes into its personal field sealed
        with ``actor``'s key."""
        event_type = f"interview.{kind}"
        version = self.versions.get(interview, 0) + 1
        self.versions[interview] = version
        data = dict(data or {})
        if text is not None:
            field = {"invited": "message", "offer_extended": "message"}.get(kind, "reason")
            key_id, key = self.keys.key_for(actor[0])
            data[field] = seal(key, key_id, text)
        position = len(self.events) + 1
        job, client, freelancer = parties
        event = EventEnvelope(
            id=uuid.uuid5(interview, str(version)),
            type=event_type,  # type: ignore[arg-type]
            schema_version=SCHEMA_VERSIONS[event_type],
            interview_id=interview,
            version=version,
            position=position,
            occurred_at=at or T0 + timedelta(minutes=position),
            actor={"id": actor[0], "role": actor[1]},  # type: ignore[arg-type]
            job_id=job,
            client_id=client,
            freelancer_id=freelancer,
            correlation_id=f"corr-{position}",
            causation_id=f"cause-{position}",
            data=data,
        )
        self.events.append(event)
        return event


def scenario(log: SealedLog) -> dict[str, uuid.UUID]:
    """Three interviews: f-1 (the subject) declines one, declines an offer and cancels
    another; f-2 declines a third. Clients' messages are theirs, never erased."""
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pa, pb, pc = ("job-a", "c-1", SUBJECT), ("job-b", "c-1", SUBJECT), ("job-c", "c-2", "f-2")
    client, fiona, frank = ("c-1", "client"), (SUBJECT, "freelancer"), ("f-2", "freelancer")
    log.add("invited", a, client, pa, {}, OTHER_WORDS[0])
    log.add("declined", a, fiona, pa, {}, SUBJECT_WORDS[0])
    log.add("invited", b, client, pb, {}, OTHER_WORDS[1])
    log.add("accepted", b, fiona, pb)
    log.add("started", b, client, pb, {"duration_minutes": 30})
    offer = {"amount": "1200.00", "currency": "EUR", "rate_type": "fixed"}
    log.add("offer_extended", b, client, pb, offer, OTHER_WORDS[2])
    log.add("offer_declined", b, fiona, pb, {"status": "in_progress"}, SUBJECT_WORDS[1])
    log.add("cancelled", b, fiona, pb, {"cancelled_by": "freelancer"}, SUBJECT_WORDS[2])
    log.add("invited", c, ("c-2", "client"), pc, {})
    log.add("declined", c, frank, pc, {}, OTHER_WORDS[3])
    return {"a": a, "b": b, "c": c}


class Consumers(InProcessConsumers):
    """The projections and notifications consumers over a log of the test's own
    (``SealedLog.read``)."""

    def __init__(self, read: ReadLog, keys: KeyService, data_dir: Path, **options: Any) -> None:
        super().__init__(read, keys, data_dir, log_head=lambda: len(read(0, 10**9)), **options)


def rows_containing(engine: sa.Engine, words: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(table, column, word)`` for every stored value of every table holding a word."""
    words = list(words)
    found: list[tuple[str, str, str]] = []
    md = sa.MetaData()
    md.reflect(engine)
    with engine.connect() as conn:
        for table in md.sorted_tables:
            for record in conn.execute(sa.select(table)).mappings():
                for column, value in record.items():
                    text = str(value)
                    found += [(table.name, column, w) for w in words if w in text]
    return found


def files_containing(directory: Path, words: Iterable[str]) -> list[tuple[str, str]]:
    """``(file, word)`` for every file under ``directory`` whose bytes hold a word."""
    words = list(words)
    found = []
    for path in directory.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            found += [(str(path), w) for w in words if w.encode() in raw]
    return found
