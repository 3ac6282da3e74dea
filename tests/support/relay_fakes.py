"""Fakes of the relay's collaborators: a log, a broker that remembers what it
was asked to publish, its deliveries; and interview envelopes to feed them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from services.contracts import EventEnvelope
from services.interviews.adapters.envelope import event_id


def envelope(interview_id: UUID, version: int, position: int) -> EventEnvelope:
    return EventEnvelope(
        id=event_id(interview_id, version),
        type="interview.invited" if version == 1 else "interview.accepted",
        schema_version=1,
        interview_id=interview_id,
        version=version,
        position=position,
        occurred_at=datetime(2026, 11, 25, tzinfo=UTC),
        actor={"id": "c1", "role": "client"},  # type: ignore[arg-type]
        job_id="j",
        client_id="c1",
        freelancer_id="f1",
        correlation_id="r",
        causation_id="r",
        data={"message": None, "expires_at": None} if version == 1 else {},
    )


class FakeFeed:
    """A log with interview events at some positions and other aggregates' in between."""

    def __init__(self, events: list[EventEnvelope], max_position: int) -> None:
        self.events = events
        self.max = max_position

    def read(self, after: int, limit: int) -> list[EventEnvelope]:
        return [e for e in self.events if e.position > after][:limit]

    def read_from_head(self, after: int, limit: int) -> tuple[int, list[EventEnvelope]]:
        return self.max, self.read(after, limit)

    def max_position(self) -> int:
        return self.max


@dataclass
class FakeDelivery:
    is_done: bool = False
    exception: BaseException | None = None

    def failed(self) -> bool:
        return self.is_done and self.exception is not None


@dataclass
class FakeBroker:
    """Remembers what was published. With ``auto_ack`` it answers each send at once,
    refusing the first send of a position in ``refuse_once``; without, the sends
    wait for ``acknowledge()``."""

    published: list[EventEnvelope] = field(default_factory=list)
    pending: list[tuple[int, FakeDelivery]] = field(default_factory=list)
    refuse_once: set[int] = field(default_factory=set)  # positions refused the first time
    auto_ack: bool = True
    connections: int = 0
    flushes: int = 0
    lingering: list[bool] = field(default_factory=list)  # each ``linger`` call, in order

    def connect(self) -> FakeBroker:
        self.connections += 1
        return self

    def publish(self, event: EventEnvelope) -> FakeDelivery:
        self.published.append(event)
        delivery = FakeDelivery()
        self.pending.append((event.position, delivery))
        if self.auto_ack:
            self.acknowledge()
        return delivery

    def acknowledge(self) -> None:
        """The broker answers every send still waiting."""
        for position, delivery in self.pending:
            delivery.is_done = True
            if position in self.refuse_once:
                self.refuse_once.discard(position)
                delivery.exception = RuntimeError("broker refused")
        self.pending.clear()

    def flush(self, timeout: float) -> bool:
        self.flushes += 1
        return not self.pending

    def linger(self, on: bool) -> None:
        self.lingering.append(on)

    def close(self, timeout: float = 5.0) -> None:
        self.pending.clear()
