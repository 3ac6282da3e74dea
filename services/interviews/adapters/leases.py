"""Leadership among instances of a worker (the deadline scheduler, the relay).

Only one instance of each works at a time, so they do not duplicate effort;
correctness never rests on it (the scheduler's expiries are guarded by the
aggregate's version, the relay's duplicates by event ids).

PostgreSQL gives a session advisory lock that the server releases as soon as
the holder's connection dies. On SQLite a lease row with an expiry is renewed
by its holder and taken over once it lapses, or at once when its holder was a
process of this machine that no longer exists (an SQLite file is local, so a
SIGKILLed holder does not block its replacement for the whole lease).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Protocol
from uuid import uuid4

import sqlalchemy as sa

from ...common.db import insert_ignore
from .tables import LEASES

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def new_holder() -> str:
    """``host:pid:random``: who holds a lease, and whether it can still be alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"


class Lease(Protocol):
    """Who may work: ``acquire`` takes or keeps it (call it again to renew)."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


def leader_lease(engine: sa.Engine, name: str, holder: str, *, ttl: float) -> Lease:
    """The advisory lock on PostgreSQL, a lease row on SQLite."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, lock_key(f"interviews.{name}"), name=name)
    return LeaseRow(engine, holder, ttl=ttl, name=name)


class AdvisoryLock:
    """PostgreSQL: a session advisory lock on a connection held while leading.

    The server drops the lock the moment that connection ends, so a crashed
    leader is replaced at the next attempt of another instance."""

    def __init__(self, engine: sa.Engine, key: int, *, name: str = "lock") -> None:
        self.engine = engine
        self.key = key
        self.name = name
        self._conn: sa.Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT 1"))
                self._conn.commit()
                return True
            except sa.exc.DBAPIError:
                log.warning("the %s lock's connection broke; the lock is gone", self.name)
                self._discard()
        conn = self.engine.connect()
        try:
            got = bool(
                conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                ).scalar()
            )
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            self._conn.commit()
            self._conn.close()
            self._conn = None
        except sa.exc.DBAPIError:
            self._discard()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.invalidate()  # closes the session, so the server frees the lock
            conn.close()
        except Exception:  # the connection is gone either way
            log.debug("closing a broken lock connection failed", exc_info=True)


class LeaseRow:
    """A row naming the holder until ``expires_at``, renewed after a third of it.

    A crashed holder blocks others for at most ``ttl`` seconds of ``clock``
    (wall-clock time: the lease guards against processes, not domain time),
    and not at all when it was a process of this machine that is gone."""

    def __init__(
        self,
        engine: sa.Engine,
        holder: str,
        *,
        ttl: float,
        name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl = ttl
        self.name = name
        self.clock = clock
        self._renewed_at: float | None = None

    def acquire(self) -> bool:
        now = self.clock()
        if self._renewed_at is not None and now - self._renewed_at < self.ttl / 3:
            return True  # nobody can have taken it yet: spare the database a write
        values = {"holder": self.holder, "expires_at": now + self.ttl}
        with self.engine.begin() as conn:
            current = conn.execute(
                sa.select(LEASES.c.holder).where(LEASES.c.name == self.name)
            ).scalar()
            takeable = [LEASES.c.holder == self.holder, LEASES.c.expires_at < now]
            if current is not None and current != self.holder and holder_gone(current):
                log.info("lease %s: its holder %s is no longer running; taking it", self.name,
                         current)  # fmt: skip
                takeable.append(LEASES.c.holder == current)
            taken = conn.execute(
                sa.update(LEASES)
                .where(LEASES.c.name == self.name, sa.or_(*takeable))
                .values(**values)
            ).rowcount
            if taken != 1:
                taken = conn.execute(
                    insert_ignore(self.engine, LEASES, ["name"]).values(name=self.name, **values)
                ).rowcount
        self._renewed_at = now if taken == 1 else None
        return taken == 1

    def release(self) -> None:
        self._renewed_at = None
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(LEASES).where(LEASES.c.name == self.name, LEASES.c.holder == self.holder)
            )


def holder_gone(holder: str) -> bool:
    """True when ``holder`` names a process of this machine that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another instance in this very process: alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by someone else
    return False
