"""When a consumer cannot do its work: the rules its ``/readyz`` applies, and the
errors that mean "this database holds a schema the code does not know".

A consumer is unready when it stopped consuming because of an unknown schema,
when it parked each of the last ``parked_window`` events it met, when it has
been behind by more than ``max_lag`` events for longer than ``lag_seconds``,
or when its database or broker does not answer (``ConsumerRunner.check_ready``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import psycopg.errors


class NotReadyError(Exception):
    """The process cannot do its work; the message says why (``/readyz`` shows it)."""


class UnknownSchemaError(RuntimeError):
    """The consumer's database holds a schema this code does not know (written by a
    newer release, or of a shape the code no longer matches). Never a reason to
    park an event: the consumer stops, keeps its position and fails readiness."""


@dataclass(frozen=True)
class ReadinessRules:
    """``CONSUMER_READY_*`` settings (see ``CommonSettings.readiness_rules``)."""

    max_lag: int = 1000
    lag_seconds: float = 120.0
    parked_window: int = 20
    # How long a consumer that met an unknown schema waits before it tries again
    # (after a migration, say); meanwhile it holds no partition.
    halt_retry_seconds: float = 30.0


_SQLITE_SCHEMA_MESSAGES = ("no such column", "has no column named", "no such table")


def schema_problem(error: BaseException | None) -> str | None:
    """What is wrong with the schema, if ``error`` (or what it wraps) says the
    database's tables are not the ones the code expects; else None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UnknownSchemaError):
            return f"{type(error).__name__}: {error}"
        original = getattr(error, "orig", None)
        if isinstance(original, psycopg.errors.UndefinedColumn | psycopg.errors.UndefinedTable):
            return f"{type(original).__name__}: {_first_line(original)}"
        if isinstance(original, sqlite3.OperationalError) and any(
            m in str(original) for m in _SQLITE_SCHEMA_MESSAGES
        ):
            return f"OperationalError: {_first_line(original)}"
        wrapped = getattr(error, "error", None)
        error = wrapped if isinstance(wrapped, BaseException) else error.__cause__
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
