"""The key store: each author's data keys, wrapped, in the interviews database.

:class:`SqlKeyStore` is the :class:`~services.common.privacy.KeyIssuer` the
writer seals with and the :class:`~services.common.privacy.KeyService` readers
reveal through (in-process, or behind ``/internal/keys``). A data key is kept
only wrapped (AES-256-GCM) by the key-encryption key; an erasure removes the
wrapped bytes and leaves a tombstone row, so the key id then answers
:class:`KeyErased`, never "unknown".

Destroying a subject's keys happens inside the event store's own transaction
(:meth:`SqlKeyStore.destroy_keys`, called with the recorder's cursor), so the
``Erasure`` event and the destruction are recorded together or not at all.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ...common.db import DATABASE_OUTAGES, create_engine
from ...common.privacy import (
    ErasureTask,
    KeyErased,
    KeyNotFound,
    KeyServiceUnavailable,
    forget_ciphers,
    new_data_key,
)
from ..settings import InterviewsSettings
from .key_encryption import KeyEncryptionKeyError, kek_id, load_kek, unwrap, wrap
from .key_tables import DATA_KEYS, ERASURE_REPORTS, ERASURES
from .leases import lock_key

log = logging.getLogger(__name__)


CURRENT_KEYS_KEPT = 100_000
ISSUING_STRIPES = 64


class UnknownErasureError(LookupError):
    """No erasure has this id."""


@dataclass(frozen=True)
class ErasureRecord:
    """An erasure as ``GET /admin/erasures/{id}`` reports it."""

    id: str
    subject_id: str
    requested_at: datetime
    requested_by: str
    reason: str
    key_ids: tuple[str, ...]
    keys_destroyed_at: datetime
    services: tuple[str, ...]  # the consumer services that must report done
    done: dict[str, datetime] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "done" if all(s in self.done for s in self.services) else "pending"

    @property
    def done_at(self) -> datetime | None:
        if self.status != "done":
            return None
        return max(self.done.values(), default=self.keys_destroyed_at)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_time(at: datetime) -> str:
    """An instant as SQLAlchemy's SQLite DateTime stores it (naive UTC text)."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class SqlKeyStore:
    """KeyIssuer and KeyService over the interviews database (PostgreSQL or SQLite)."""

    def __init__(
        self,
        engine: sa.Engine,
        kek: bytes,
        *,
        services: Sequence[str] = ("projections", "notifications"),
        issue_ttl_seconds: float = 5.0,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.kek = kek
        self.kek_id = kek_id(kek)
        self.services = tuple(services)
        self.issue_ttl = issue_ttl_seconds
        self.clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # One of these is held while a subject's current key is looked up or created,
        # so two threads never create two keys for one author (processes: an advisory
        # lock below); authors on other stripes are served meanwhile.
        self._issuing = tuple(threading.Lock() for _ in range(ISSUING_STRIPES))
        # subject -> (key id, key): the author's current key, so a command seals
        # without a query or a lock. Dropped whole when the erasures table changed
        # (checked at most every ``issue_ttl`` seconds, by one thread at a time):
        # another process's erasure is seen within that time, at the cost of one
        # query, not one per author.
        self._current: dict[str, tuple[str, bytes]] = {}
        self._generation = 0  # bumped whenever current keys are dropped
        self._checking = threading.Lock()
        self._erasures_seen: tuple[Any, ...] | None = None
        self._erasures_checked = -1e18

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    # ------------------------------------------------------------- KeyIssuer

    def key_for(self, subject_id: str) -> tuple[str, bytes]:
        """The subject's current data key, created on first use (or after an erasure)."""
        self._drop_current_keys_after_erasures()
        hit = self._current.get(subject_id)  # one dict read: atomic, no lock needed
        if hit is not None:
            return hit
        with self._issuing[hash(subject_id) % ISSUING_STRIPES]:
            hit = self._current.get(subject_id)  # issued by another thread meanwhile
            if hit is not None:
                return hit
            generation = self._generation
            key_id, key = self._current_key_in_database(subject_id)
            with self._lock:
                # Current keys dropped while this one was read (an erasure seen): it
                # may be a destroyed key, so it serves this command only.
                if generation == self._generation:
                    if len(self._current) >= CURRENT_KEYS_KEPT:
                        self._current.pop(next(iter(self._current)))  # the oldest issued
                    self._current[subject_id] = (key_id, key)
        return key_id, key

    def cached_key_for(self, subject_id: str) -> tuple[str, bytes] | None:
        """What ``key_for`` answers when it would answer without a query or a wait;
        None when it would ask the database (a key not held, or erasures due for
        their check)."""
        if self._monotonic() - self._erasures_checked >= self.issue_ttl:
            return None
        return self._current.get(subject_id)

    def _current_key_in_database(self, subject_id: str) -> tuple[str, bytes]:
        with self._outage_guard(), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two API processes inviting for one new author at once must agree on
                # one key (idempotency fingerprints are keyed by it): the second waits
                # for the first's commit and then finds its key.
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": lock_key(f"interviews.data-key:{subject_id}")},
                )
            row = conn.execute(
                sa.select(DATA_KEYS.c.key_id, DATA_KEYS.c.wrapped_key)
                .where(DATA_KEYS.c.subject_id == subject_id, DATA_KEYS.c.erased_at.is_(None))
                .order_by(DATA_KEYS.c.created_at.desc())
                .limit(1)
            ).first()
            if row is not None and row.wrapped_key is not None:
                return row.key_id, unwrap(self.kek, row.key_id, bytes(row.wrapped_key))
            key_id, key = str(uuid.uuid4()), new_data_key()
            conn.execute(
                DATA_KEYS.insert().values(
                    key_id=key_id,
                    subject_id=subject_id,
                    wrapped_key=wrap(self.kek, key_id, key),
                    kek_id=self.kek_id,
                    created_at=self.clock(),
                )
            )
        return key_id, key

    def _drop_current_keys_after_erasures(self) -> None:
        now = self._monotonic()
        if now - self._erasures_checked < self.issue_ttl:
            return
        if not self._checking.acquire(blocking=False):
            return  # another thread is asking right now
        try:
            with self._outage_guard(), self.engine.connect() as conn:
                seen = tuple(
                    conn.execute(
                        sa.select(sa.func.count(), sa.func.max(ERASURES.c.keys_destroyed_at))
                    ).one()
                )
            with self._lock:
                if seen != self._erasures_seen:
                    self._drop_current_keys()
                    self._erasures_seen = seen
                self._erasures_checked = now
        finally:
            self._checking.release()

    def _drop_current_keys(self) -> None:
        """With ``_lock`` held: forgets every author's current key (and its cipher)."""
        forget_ciphers([key for _, key in self._current.values()])
        self._current = {}
        self._generation += 1

    # ------------------------------------------------------------ KeyService

    def data_key(self, key_id: str) -> bytes:
        """The data key, read now (no cache: callers wrap this in CachingKeys)."""
        with self._outage_guard(), self.engine.connect() as conn:
            row = conn.execute(
                sa.select(DATA_KEYS.c.wrapped_key, DATA_KEYS.c.erased_at).where(
                    DATA_KEYS.c.key_id == key_id
                )
            ).first()
        if row is None:
            raise KeyNotFound(key_id)
        if row.erased_at is not None or row.wrapped_key is None:
            raise KeyErased(key_id)
        return unwrap(self.kek, key_id, bytes(row.wrapped_key))

    def pending_erasures(self, service: str) -> list[ErasureTask]:
        """Erasures ``service`` has not reported done, oldest first."""
        reported = sa.select(ERASURE_REPORTS.c.erasure_id).where(
            ERASURE_REPORTS.c.service == service
        )
        with self._outage_guard(), self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ERASURES)
                .where(ERASURES.c.id.not_in(reported))
                .order_by(ERASURES.c.keys_destroyed_at, ERASURES.c.id)
            ).all()
        return [
            ErasureTask(r.id, r.subject_id, tuple(json.loads(r.key_ids)), r.keys_destroyed_at)
            for r in rows
        ]

    def erasure_done(self, erasure_id: str, service: str) -> None:
        """Records that ``service`` redacted its copies (again: no change)."""
        with self._outage_guard(), self.engine.begin() as conn:
            if (
                conn.execute(sa.select(ERASURES.c.id).where(ERASURES.c.id == erasure_id)).first()
                is None
            ):
                raise UnknownErasureError(erasure_id)
            exists = conn.execute(
                sa.select(ERASURE_REPORTS.c.service).where(
                    ERASURE_REPORTS.c.erasure_id == erasure_id,
                    ERASURE_REPORTS.c.service == service,
                )
            ).first()
            if exists is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            ERASURE_REPORTS.insert().values(
                                erasure_id=erasure_id, service=service, done_at=self.clock()
                            )
                        )
                except sa.exc.IntegrityError:
                    pass  # reported concurrently: the same answer

    # ------------------------------------------------------------- erasures

    def erasure(self, erasure_id: str) -> ErasureRecord:
        with self._outage_guard(), self.engine.connect() as conn:
            row = conn.execute(sa.select(ERASURES).where(ERASURES.c.id == erasure_id)).first()
            if row is None:
                raise UnknownErasureError(erasure_id)
            reports = conn.execute(
                sa.select(ERASURE_REPORTS.c.service, ERASURE_REPORTS.c.done_at).where(
                    ERASURE_REPORTS.c.erasure_id == erasure_id
                )
            ).all()
        return ErasureRecord(
            id=row.id,
            subject_id=row.subject_id,
            requested_at=row.requested_at,
            requested_by=row.requested_by,
            reason=row.reason,
            key_ids=tuple(json.loads(row.key_ids)),
            keys_destroyed_at=row.keys_destroyed_at,
            services=tuple(json.loads(row.services)),
            done={r.service: r.done_at for r in reports},
        )

    def destroy_keys(
        self,
        cursor: Any,
        *,
        erasure_id: str,
        subject_id: str,
        at: datetime,
        requested_by: str,
        reason: str,
    ) -> tuple[str, ...]:
        """Inside the caller's transaction (a DB-API cursor of this same database):
        removes the subject's wrapped keys, keeps tombstones, records the erasure.
        Returns the ids of the keys destroyed now (none for a subject with no keys
        left, e.g. erased before or who never wrote anything)."""
        mark = "?" if self.is_sqlite else "%s"
        when: Any = _sqlite_time(at) if self.is_sqlite else at
        # Write first: an SQLite transaction that read before writing could be
        # refused its write lock (a snapshot older than another writer's commit).
        cursor.execute(
            f"UPDATE {DATA_KEYS.name} SET wrapped_key = NULL, kek_id = NULL, "
            f"erased_at = {mark}, erasure_id = {mark} "
            f"WHERE subject_id = {mark} AND erased_at IS NULL",
            (when, erasure_id, subject_id),
        )
        cursor.execute(
            f"SELECT key_id FROM {DATA_KEYS.name} WHERE erasure_id = {mark} ORDER BY key_id",
            (erasure_id,),
        )
        key_ids = tuple(
            str(row["key_id"] if isinstance(row, dict) else row[0]) for row in cursor.fetchall()
        )
        cursor.execute(
            f"INSERT INTO {ERASURES.name} (id, subject_id, requested_at, requested_by, reason, "
            f"key_ids, keys_destroyed_at, services) VALUES ({', '.join([mark] * 8)})",
            (
                erasure_id,
                subject_id,
                when,
                requested_by,
                reason,
                json.dumps(list(key_ids)),
                when,
                json.dumps(list(self.services)),
            ),
        )
        return key_ids

    def forget_subject(self, subject_id: str) -> None:
        """Drops the subject's current key (and its cipher) from this process's memory."""
        with self._lock:
            dropped = self._current.pop(subject_id, None)
            self._generation += 1
        if dropped is not None:
            forget_ciphers([dropped[1]])

    def scrub(self) -> None:
        """SQLite: moves every WAL frame into the database and truncates the WAL, so
        no old page (a destroyed key's, a redacted text's) survives in it; with
        secure_delete the freed space in the database is zeroed too."""
        if not self.is_sqlite:
            return
        for _ in range(20):
            with self.engine.connect() as conn:
                busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
            if busy is None or busy[0] == 0:
                return
            time.sleep(0.05)  # a reader holds an old snapshot: try again shortly
        log.warning("the WAL could not be truncated after an erasure: a reader kept it busy")

    # ------------------------------------------------------------- rotation

    def check_kek(self) -> None:
        """Raises KeyEncryptionKeyError if a live key was wrapped by another KEK."""
        with self.engine.connect() as conn:
            other = conn.execute(
                sa.select(DATA_KEYS.c.kek_id)
                .where(DATA_KEYS.c.wrapped_key.is_not(None), DATA_KEYS.c.kek_id != self.kek_id)
                .limit(1)
            ).first()
        if other is not None:
            raise KeyEncryptionKeyError(
                "the data keys were wrapped by another key-encryption key than the one "
                "configured (KEY_ENCRYPTION_KEY or the key file under DATA_DIR); start with "
                "the right one, or rotate with `interviewctl keys rotate`"
            )

    def rotate(self, new_kek: bytes) -> int:
        """Re-wraps every live data key under ``new_kek`` in one transaction; from
        then on this store uses the new KEK. Returns how many keys were re-wrapped."""
        new_id = kek_id(new_kek)
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(DATA_KEYS.c.key_id, DATA_KEYS.c.wrapped_key).where(
                    DATA_KEYS.c.wrapped_key.is_not(None)
                )
            ).all()
            for row in rows:
                key = unwrap(self.kek, row.key_id, bytes(row.wrapped_key))
                conn.execute(
                    DATA_KEYS.update()
                    .where(DATA_KEYS.c.key_id == row.key_id)
                    .values(wrapped_key=wrap(new_kek, row.key_id, key), kek_id=new_id)
                )
        self.kek, self.kek_id = new_kek, new_id
        self.scrub()
        return len(rows)

    def _outage_guard(self) -> _OutageGuard:
        return _OutageGuard()


class _OutageGuard:
    """The database failing becomes KeyServiceUnavailable: retry, never "erased"."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and isinstance(exc, DATABASE_OUTAGES):
            raise KeyServiceUnavailable(str(exc).splitlines()[0]) from exc


def build_key_store(
    settings: InterviewsSettings, *, sqlite_path: Path | None = None, create: bool = True
) -> SqlKeyStore:
    """The key store (``KeyIssuer`` and ``KeyService``) of the interviews database,
    for the interview service and, embedded, for the consumers in the same process.
    Raises KeyEncryptionKeyError for a malformed key-encryption key (or, with
    ``create=False``, none at all)."""
    kek = load_kek(
        settings.key_encryption_key,
        settings.data_dir,
        postgres=bool(settings.database_url),
        create=create,
    )
    engine = create_engine(settings.database_url, sqlite_path or settings.sqlite_path)
    return SqlKeyStore(
        engine,
        kek,
        services=settings.erasure_service_names,
        issue_ttl_seconds=settings.key_cache_ttl_seconds,
    )
