"""The interview domain: pure Python and ``eventsourcing.domain``, no infrastructure."""

from .erasure import Erasure
from .errors import (
    AlreadyHiredError,
    AlreadyScheduledError,
    DeadlinePassedError,
    DomainError,
    DuplicateOpenInterviewError,
    ExclusiveWindowError,
    InputOutOfBoundsError,
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
    DEFAULT_DURATION_MINUTES,
    FINAL_STATES,
    SYSTEM,
    Actor,
    CommandContext,
    Interview,
    OfferTerms,
    PersonalText,
)
from .job import Job

__all__ = [
    "ALL_STATES",
    "AlreadyScheduledError",
    "DEFAULT_DURATION_MINUTES",
    "AlreadyHiredError",
    "FINAL_STATES",
    "SYSTEM",
    "Actor",
    "CommandContext",
    "DeadlinePassedError",
    "DomainError",
    "DuplicateOpenInterviewError",
    "Erasure",
    "ExclusiveWindowError",
    "InputOutOfBoundsError",
    "Interview",
    "InvalidCommandError",
    "Job",
    "JobClosedError",
    "JobNotFoundError",
    "JobOwnerConflictError",
    "NotAllowedError",
    "NotYetDueError",
    "OfferTerms",
    "PersonalText",
    "TransitionNotAllowedError",
]
