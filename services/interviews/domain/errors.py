"""Domain errors. Each carries a machine-readable ``code``; the API maps them
to HTTP status codes, the domain itself knows nothing of HTTP."""

from __future__ import annotations

from datetime import datetime


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TransitionNotAllowedError(DomainError):
    """The interview's current state does not allow the attempted action."""

    code = "transition_not_allowed"

    def __init__(self, action: str, state: str, detail: str | None = None) -> None:
        super().__init__(
            detail or f"cannot {action} an interview that is {state.replace('_', ' ')}"
        )
        self.action = action
        self.state = state


class DeadlinePassedError(TransitionNotAllowedError):
    """The invitation or offer expired before the answer arrived."""

    code = "expired"

    def __init__(self, action: str, state: str, what: str, deadline: datetime) -> None:
        super().__init__(
            action, state, f"cannot {action}: the {what} expired at {deadline.isoformat()}"
        )
        self.what = what


class NotAllowedError(DomainError):
    """The caller is not a party allowed to take this action."""

    code = "forbidden"


class DuplicateOpenInterviewError(DomainError):
    code = "duplicate_open_interview"


class ExclusiveWindowError(DomainError):
    """A job's exclusive window is running: no new invitations until it ends."""

    code = "exclusive_window"

    def __init__(self, detail: str, ends_at: datetime) -> None:
        super().__init__(detail)
        self.ends_at = ends_at


class InvalidCommandError(DomainError):
    code = "invalid_command"


class InputOutOfBoundsError(InvalidCommandError):
    """A value outside DESIGN's input bounds; the detail names the field and the bound."""

    code = "invalid_input"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


class AlreadyScheduledError(DomainError):
    """A reschedule to the time and length the meeting already has."""

    code = "already_scheduled"


class NotYetDueError(DomainError):
    code = "not_yet_due"


class JobNotFoundError(DomainError):
    """No job with this id exists (or the caller may not know that it does)."""

    code = "job_not_found"


class JobClosedError(DomainError):
    """The job's client closed it: nobody is invited to it any more."""

    code = "job_closed"


class AlreadyHiredError(DomainError):
    """The freelancer was already hired for this job."""

    code = "already_hired"


class JobOwnerConflictError(DomainError):
    """The job id is already registered to another client."""

    code = "job_owner_conflict"
