"""The Erasure aggregate: the audit trail of a right-to-erasure request.

An admin asks to erase a person (the *subject*); the person's data keys are
destroyed in the same transaction that records :class:`Erasure.Requested`.
The event says who asked, when and why (the admin's reason) and which keys
were destroyed: never anything the subject wrote.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate

from . import bounds
from .errors import InvalidCommandError, NotAllowedError
from .interview import CommandContext

SUBJECT_MAX_LENGTH = 128


class Erasure(Aggregate):
    """One erasure of one person's words."""

    class Requested(Aggregate.Created):
        subject_id: str
        requested_by: str
        reason: str
        key_ids: list[str]
        correlation_id: str

    def __init__(
        self,
        subject_id: str,
        requested_by: str,
        reason: str,
        key_ids: list[str],
        correlation_id: str,
    ) -> None:
        self.subject_id = subject_id
        self.requested_by = requested_by
        self.reason = reason
        self.key_ids = key_ids
        self.correlation_id = correlation_id

    @staticmethod
    def check_request(ctx: CommandContext, subject_id: str, reason: str) -> None:
        """Only an admin erases; the subject and the reason meet the input bounds."""
        if ctx.actor.role != "admin":
            raise NotAllowedError("only an admin erases a person's data")
        if not subject_id.strip() or subject_id != subject_id.strip():
            raise InvalidCommandError("subject_id must not be blank or padded with spaces")
        if len(subject_id) > SUBJECT_MAX_LENGTH:
            raise InvalidCommandError(f"subject_id must be at most {SUBJECT_MAX_LENGTH} characters")
        bounds.check_text(reason, "reason", bounds.REASON_MAX_LENGTH, required=True)

    @classmethod
    def request(
        cls,
        ctx: CommandContext,
        *,
        erasure_id: UUID,
        subject_id: str,
        reason: str,
        key_ids: list[str],
    ) -> Erasure:
        """Records that ``ctx.actor`` erased ``subject_id``'s keys ``key_ids``."""
        cls.check_request(ctx, subject_id, reason)
        return cls._create(
            cls.Requested,
            id=erasure_id,
            timestamp=ctx.at,
            subject_id=subject_id,
            requested_by=ctx.actor.id,
            reason=reason,
            key_ids=list(key_ids),
            correlation_id=ctx.correlation_id,
        )
