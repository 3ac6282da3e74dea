"""Use cases of the right to erasure (crypto-shredding) on the interview side.

An admin's request destroys the subject's data keys and records the
:class:`~.domain.Erasure` event in one transaction; every sealed copy of the
subject's words (event store, Kafka, exports, consumers' stores) is unreadable
from then on. Consumer services then redact their own copies and report done
(``/internal/erasures``); the erasure is ``done`` once every service listed in
``ERASURE_SERVICES`` has.
"""

from __future__ import annotations

import logging
from uuid import UUID, uuid4

from .adapters.atomic_record import record_with
from .adapters.key_store import ErasureRecord, SqlKeyStore
from .application import InterviewsApplication
from .domain import CommandContext, Erasure

log = logging.getLogger(__name__)


class ErasureService:
    """Requests erasures and reports their progress."""

    def __init__(self, app: InterviewsApplication, store: SqlKeyStore) -> None:
        self.app = app
        self.store = store

    def request(
        self, ctx: CommandContext, subject_id: str, reason: str, erasure_id: UUID | None = None
    ) -> ErasureRecord:
        """Destroys every data key of ``subject_id`` and records who asked, when
        and why. A subject erased before, or who never wrote anything, is fine:
        the erasure is recorded with the keys it destroyed (possibly none)."""
        Erasure.check_request(ctx, subject_id, reason)
        erasure_id = erasure_id or uuid4()

        def work(cursor: object) -> list[Erasure]:
            key_ids = self.store.destroy_keys(
                cursor,
                erasure_id=str(erasure_id),
                subject_id=subject_id,
                at=ctx.at,
                requested_by=ctx.actor.id,
                reason=reason,
            )
            return [
                Erasure.request(
                    ctx,
                    erasure_id=erasure_id,
                    subject_id=subject_id,
                    reason=reason,
                    key_ids=list(key_ids),
                )
            ]

        record_with(self.app, work)
        self.store.forget_subject(subject_id)
        forget = getattr(self.app.reader, "forget", None)
        if forget is not None:
            forget(None)  # this process's cached keys: the destroyed ones must go now
        self.store.scrub()
        record = self.store.erasure(str(erasure_id))
        log.info(
            "erasure %s of subject %s by %s: %d data keys destroyed",
            record.id,
            subject_id,
            ctx.actor.id,
            len(record.key_ids),
            extra={"correlation_id": ctx.correlation_id},
        )
        return record

    def status(self, erasure_id: str) -> ErasureRecord:
        """The erasure and each service's progress; raises UnknownErasureError."""
        return self.store.erasure(erasure_id)
