"""The interview domain: pure Python and ``eventsourcing.domain``, no infrastructure."""

from .errors import (
    AlreadyScheduledError,
    DeadlinePassedError,
    DomainError,
    DuplicateOpenInterviewError,
    ExclusiveWindowError,
    InputOutOfBoundsError,
    InvalidCommandError,
    NotAllowedError,
    NotYetDueError,
    TransitionNotAllowedError,
)
from .interview import (
    ALL_STATES,
    DEFAULT_DURATION_MINUTES,
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
    "AlreadyScheduledError",
    "DEFAULT_DURATION_MINUTES",
    "FINAL_STATES",
    "SYSTEM",
    "Actor",
    "CommandContext",
    "DeadlinePassedError",
    "DomainError",
    "DuplicateOpenInterviewError",
    "ExclusiveWindowError",
    "InputOutOfBoundsError",
    "Interview",
    "InvalidCommandError",
    "Job",
    "NotAllowedError",
    "NotYetDueError",
    "OfferTerms",
    "TransitionNotAllowedError",
]
