"""How far the relay has published, and which relay may publish: the
``relay_position`` row of each topic, its epoch, and the fenced lease built on it.

The table comes from the interviews migrations (``adapters/tables.py``); the
topic's row is made by ``PositionStore``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ...common.db import insert_ignore
from ..settings import RelaySettings
from .leases import AdvisoryLock, Lease, holder_gone, lock_key, new_holder
from .tables import relay_position

# The columns of a topic's row, as the statements below name them.
relay = relay_position.c

log = logging.getLogger(__name__)


class LostLeadershipError(RuntimeError):
    """Another relay took over (a newer epoch): this one must not publish or record."""


@dataclass(frozen=True)
class PositionRow:
    position: int
    epoch: int
    holder: str | None
    heartbeat: int


class PositionStore:
    """How far the relay has published, per topic, and who leads (the epoch), in
    the interviews database."""

    def __init__(self, engine: sa.Engine, topic: str) -> None:
        self.engine = engine
        self.topic = topic
        # The table comes from the interviews migrations; the topic's row is made here.
        with engine.begin() as conn:
            conn.execute(
                insert_ignore(engine, relay_position, ["topic"]).values(
                    topic=topic, position=0, updated_at=datetime.now(UTC), epoch=0
                )
            )

    def load(self) -> int:
        return self.row().position

    def row(self) -> PositionRow:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(relay_position).where(relay_position.c.topic == self.topic)
            ).one()
        return PositionRow(int(row.position), int(row.epoch), row.holder, int(row.heartbeat))

    def save(self, position: int, epoch: int | None = None) -> None:
        """Records ``position``; never moves backwards. With ``epoch``, only while that
        epoch is the current one, else ``LostLeadershipError`` (one statement: a
        takeover either happened before it, and it changes nothing, or after)."""
        fence = [] if epoch is None else [relay.epoch == epoch]
        updated = self._update(
            relay.position < position, *fence, position=position, updated_at=datetime.now(UTC)
        )
        if not updated and epoch is not None:
            self.check_epoch(epoch)

    def check_epoch(self, epoch: int) -> None:
        current = self.row().epoch
        if current != epoch:
            raise LostLeadershipError(f"epoch {epoch} is over: relay epoch {current} leads")

    def heartbeat(self, epoch: int, holder: str) -> bool:
        """The leader's beat; False when its epoch is over."""
        return self._update(
            relay.epoch == epoch, relay.holder == holder, heartbeat=relay.heartbeat + 1
        )

    def take_over(self, seen_epoch: int, holder: str) -> bool:
        """Compare-and-set: epoch ``seen_epoch`` + 1 is ``holder``'s, unless another
        relay moved the epoch first."""
        return self._update(
            relay.epoch == seen_epoch, epoch=seen_epoch + 1, holder=holder, heartbeat=0
        )

    def release(self, epoch: int, holder: str) -> None:
        self._update(relay.epoch == epoch, relay.holder == holder, holder=None)

    def _update(self, *where: sa.ColumnElement[bool], **values: Any) -> bool:
        """One statement on this topic's row, where ``where`` holds: True when it
        changed the row."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    relay_position.update()
                    .where(relay.topic == self.topic, *where)
                    .values(**values)
                ).rowcount
            )


class FencedLease:
    """Leadership of the relay: an epoch in the position's row, a heartbeat, and a
    standby that watches both with its own clock.

    The leader beats about once a second. A standby takes over (epoch + 1, a
    compare-and-set) when nobody holds the row, when the holder is a process of
    this machine that no longer exists, when (PostgreSQL) the holder's session
    no longer holds its advisory lock, when the beat has not moved for
    ``lease_seconds``, or when the log head is past the recorded position and
    the position has not moved for ``takeover_seconds``. An advisory lock alone
    is not enough: a hung (SIGSTOPped) process keeps its connection and its lock.
    The epoch fences the old leader: its position updates are conditional on
    its epoch, and it checks the epoch before it publishes each batch, so a
    leader that wakes up after a takeover records nothing and publishes at most
    the batch it had already checked (duplicates the consumers drop by id).
    """

    def __init__(
        self,
        positions: PositionStore,
        holder: str,
        *,
        lease_seconds: float,
        takeover_seconds: float,
        head: Callable[[], int],
        liveness: Lease | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.positions = positions
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.takeover_seconds = takeover_seconds
        self.head = head
        self.liveness = liveness
        self.clock = clock
        self.epoch: int | None = None
        self._beat: tuple[int, int] | None = None  # (epoch, heartbeat) last seen
        self._beat_seen_at = 0.0
        self._position: int | None = None
        self._position_seen_at = 0.0

    def acquire(self) -> bool:
        if self.epoch is not None:
            if self.positions.heartbeat(self.epoch, self.holder):
                if self.liveness is not None:
                    self.liveness.acquire()  # held by the leader whenever it can be
                return True
            log.warning("relay: epoch %d is over: another relay took over", self.epoch)
            self.epoch = None
            self._release_liveness()
            return False
        row = self.positions.row()
        reason = self._takeover_reason(row)
        if reason is None:
            return False
        if not self.positions.take_over(row.epoch, self.holder):
            self._release_liveness()  # a standby never sits on the lock
            return False
        self.epoch = row.epoch + 1
        log.warning("relay: taking over as epoch %d: %s", self.epoch, reason)
        if self.liveness is not None:
            self.liveness.acquire()
        return True

    def _takeover_reason(self, row: PositionRow) -> str | None:
        now = self.clock()
        if self._beat != (row.epoch, row.heartbeat):
            self._beat, self._beat_seen_at = (row.epoch, row.heartbeat), now
        if self._position != row.position:
            self._position, self._position_seen_at = row.position, now
        if row.holder is None:
            return "no relay leads"
        if holder_gone(row.holder):
            return f"the leader {row.holder} is no longer running"
        if self.liveness is not None and self.liveness.acquire():
            return f"the leader {row.holder} lost its database session"
        if now - self._beat_seen_at >= self.lease_seconds:
            return f"the leader {row.holder} has not beaten for {now - self._beat_seen_at:.1f}s"
        if now - self._position_seen_at >= self.takeover_seconds and self.head() > row.position:
            return (
                f"the leader {row.holder} has not moved position {row.position} for "
                f"{now - self._position_seen_at:.1f}s while the log is ahead"
            )
        return None

    def release(self) -> None:
        if self.epoch is not None:
            self.positions.release(self.epoch, self.holder)
            self.epoch = None
        self._release_liveness()

    def _release_liveness(self) -> None:
        if self.liveness is not None:
            with contextlib.suppress(Exception):
                self.liveness.release()


def fenced_lease(
    positions: PositionStore, settings: RelaySettings, head: Callable[[], int]
) -> FencedLease:
    """The relay's leadership; on PostgreSQL an advisory lock tells a standby at once
    that a crashed leader's session is gone."""
    engine = positions.engine
    liveness = (
        AdvisoryLock(engine, lock_key(f"interviews.relay:{settings.topic}"), name="relay")
        if engine.dialect.name == "postgresql"
        else None
    )
    return FencedLease(
        positions,
        new_holder(),
        lease_seconds=settings.lease_seconds,
        takeover_seconds=settings.takeover_seconds,
        head=head,
        liveness=liveness,
    )
