"""Logging for every process, configured in one place.

``LOG_FORMAT=json`` writes one JSON object a line (``time``, ``level``,
``service``, ``logger``, ``message``, and ``trace_id`` / ``correlation_id`` /
``interview_id`` where known) for a log shipper; the default (``text``) is one
readable line for a terminal. The ids come from context variables that the
HTTP layer sets per request and the consumer runner per event, so a library's
log line inside a request carries them too.

No free text a user wrote (messages, reasons, request bodies) is ever logged:
log ids, types, counts and error *types*; engines hide SQL parameters.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

try:  # the tracing SDK, when present, knows the current span
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - tracing is optional
    # None stands for "no tracing"; the one reader checks for it.
    _otel_trace = None  # type: ignore[assignment]

service_var: ContextVar[str | None] = ContextVar("log_service", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("log_correlation_id", default=None)
# A UUID or a string: made a string only when a line is written.
interview_id_var: ContextVar[object | None] = ContextVar("log_interview_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("log_trace_id", default=None)

_VARS: dict[str, ContextVar[Any]] = {
    "service": service_var,
    "correlation_id": correlation_id_var,
    "interview_id": interview_id_var,
    "trace_id": trace_id_var,
}
CONTEXT_FIELDS = ("trace_id", "correlation_id", "interview_id")

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")

# What every LogRecord has; anything else on a record came through ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "service",
    *CONTEXT_FIELDS,
}


def trace_id_from(traceparent: str | bytes | None) -> str | None:
    """The trace id of a W3C ``traceparent`` value, or None if it is not one."""
    if not traceparent or len(traceparent) != 55:
        return None
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("ascii", "replace")
    match = TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


Bound = list[tuple[ContextVar[Any], Token[Any]]]


def bind_log_context(**fields: str | None) -> Bound:
    """Sets ``service`` / ``correlation_id`` / ``interview_id`` / ``trace_id`` for
    every log line written until ``unbind_log_context`` (None leaves a field as it was)."""
    return [(_VARS[name], _VARS[name].set(value)) for name, value in fields.items() if value]


def unbind_log_context(bound: Bound) -> None:
    for var, token in reversed(bound):
        var.reset(token)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """``bind_log_context`` for the lines written inside the block."""
    bound = bind_log_context(**fields)
    try:
        yield
    finally:
        unbind_log_context(bound)


class EventLogContext:
    """``log_context`` for one consumed event, cheap enough to wrap every handler call."""

    __slots__ = ("correlation_id", "interview_id", "trace_id", "_tokens")

    def __init__(self, correlation_id: str, interview_id: object, trace_id: str | None) -> None:
        self.correlation_id = correlation_id
        self.interview_id = interview_id
        self.trace_id = trace_id

    def __enter__(self) -> None:
        self._tokens = (
            correlation_id_var.set(self.correlation_id),
            interview_id_var.set(self.interview_id),
            trace_id_var.set(self.trace_id),
        )

    def __exit__(self, *_: object) -> None:
        correlation, interview, trace = self._tokens
        trace_id_var.reset(trace)
        interview_id_var.reset(interview)
        correlation_id_var.reset(correlation)


def _current_trace_id() -> str | None:
    if _otel_trace is not None:
        context = _otel_trace.get_current_span().get_span_context()
        if context.is_valid:
            return format(context.trace_id, "032x")
    return trace_id_var.get()


class ContextFilter(logging.Filter):
    """Puts the context fields on every record (``extra=`` given by a call wins)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "service", None):
            record.service = service_var.get() or self.service
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = correlation_id_var.get()
        if getattr(record, "interview_id", None) is None:
            interview_id = interview_id_var.get()
            record.interview_id = None if interview_id is None else str(interview_id)
        if getattr(record, "trace_id", None) is None:
            record.trace_id = _current_trace_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value:
                line[name] = value
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_") and name not in line:
                line[name] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A terminal line: time, level, logger, message, then the ids that are known."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [
            f"{name}={value}"
            for name in ("correlation_id", "interview_id")
            if (value := getattr(record, name, None))
        ]
        if not ids:
            return text
        head, sep, tail = text.partition("\n")  # keep a traceback below the ids
        return f"{head}  [{' '.join(ids)}]{sep}{tail}"


def configure_logging(
    level: str = "INFO",
    log_format: str | None = None,
    service: str = "platform",
    stream: TextIO | None = None,
) -> None:
    """The root logger writes to stderr as text or JSON lines (``LOG_FORMAT``).

    Idempotent: a second call replaces the handler it installed the first time.
    uvicorn's own loggers propagate to it, so its lines share the format.
    """
    fmt = (log_format or os.environ.get("LOG_FORMAT") or "text").strip().lower()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter(service))
    handler.set_name("interview-platform")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "interview-platform"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    if fmt not in ("text", "json"):
        logging.getLogger(__name__).warning("LOG_FORMAT=%r is not text or json: text it is", fmt)
