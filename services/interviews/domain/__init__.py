"""The interview domain: pure Python and ``eventsourcing.domain``, no infrastructure."""

from .errors import (
    AlreadyHiredError,
    DeadlinePassedError,
    DomainError,
    DuplicateOpenInterviewError,
    ExclusiveWindowError,
    InvalidCommandError,
    JobClosedError,
    JobNotFoundError,
    JobOwnerConflictError,
    NotAllowedError,
    NotYetDueError,
    TransitionNotAllowedError,
)
from .interview import (
    ALL_STATES,
    FINAL_STATES,
    SYSTEM,
    Actor,
    CommandContext,
    Interview,
    OfferTerms,
)
from .job import Job

__all__ = [
    "ALL_STATES",
    "AlreadyHiredError",
    "FINAL_STATES",
    "SYSTEM",
    "Actor",
    "CommandContext",
    "DeadlinePassedError",
    "DomainError",
    "DuplicateOpenInterviewError",
    "ExclusiveWindowError",
    "Interview",
    "InvalidCommandError",
    "Job",
    "JobClosedError",
    "JobNotFoundError",
    "JobOwnerConflictError",
    "NotAllowedError",
    "NotYetDueError",
    "OfferTerms",
    "TransitionNotAllowedError",
]
