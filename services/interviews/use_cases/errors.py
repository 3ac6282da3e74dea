"""What a use case answers instead of a result: the errors of the application itself
(the domain's own are ``services.interviews.domain.errors``). Each has the ``code``
the HTTP API answers with."""

from __future__ import annotations


class InterviewNotFoundError(Exception):
    code = "not_found"


class VersionMismatchError(Exception):
    """``If-Match`` named a version that is not the current one."""

    code = "version_mismatch"

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"If-Match expected version {expected}, the interview is at {actual}")
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReusedError(Exception):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used for a different request")


class ConcurrencyConflictError(Exception):
    code = "conflict"

    def __init__(self) -> None:
        super().__init__("the interview changed concurrently too often; retry the command")
