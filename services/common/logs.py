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
import math
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
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
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
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
        fields = record.__dict__  # what getattr would read, without its lookups
        if not fields.get("service"):
            fields["service"] = service_var.get() or self.service
        if fields.get("correlation_id") is None:
            fields["correlation_id"] = correlation_id_var.get()
        if fields.get("interview_id") is None:
            interview_id = interview_id_var.get()
            fields["interview_id"] = None if interview_id is None else str(interview_id)
        if fields.get("trace_id") is None:
            fields["trace_id"] = _current_trace_id()
        return True


class _UtcSeconds:
    """``datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")``,
    the same text, with the date and time of the last second kept: the
    fraction is rounded to microseconds as ``fromtimestamp`` rounds it."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = (-1.0, "")  # one attribute: two threads cannot tear it

    def __call__(self, created: float) -> str:
        fraction, second = math.modf(created)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            micros -= 1_000_000
            second += 1.0
        if micros < 0:  # before 1970: as it always was
            return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        known, prefix = self.last
        if second != known:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self.last = (second, prefix)
        return f"{prefix}.{micros // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def __init__(self) -> None:
        super().__init__()
        self._time = _UtcSeconds()

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "service": fields.get("service"),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = fields.get(name)
            if value:
                line[name] = value
        standard = _STANDARD
        for name, value in fields.items():
            if name not in standard and name not in line and not name.startswith("_"):
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
        self._last = (-1, "")  # the last second and its text, one attribute

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``logging.Formatter``'s own text, with the last second's kept."""
        if datefmt is not None or self.converter is not time.localtime:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        known, stamp = self._last
        if second != known:
            stamp = time.strftime(self.default_time_format, time.localtime(record.created))
            self._last = (second, stamp)
        return self.default_msec_format % (stamp, record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        # ``logging.Formatter.format`` for this format, inlined.
        message = record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        text = "%s %-7s %s %s" % (record.asctime, record.levelname, record.name, message)  # noqa: UP031
        if record.exc_info or record.exc_text or record.stack_info:
            # As the base class adds a traceback (cached in ``exc_text``).
            if record.exc_info and not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            if record.exc_text:
                text = text + record.exc_text if text[-1:] == "\n" else f"{text}\n{record.exc_text}"
            if record.stack_info:
                stack = self.formatStack(record.stack_info)
                text = text + stack if text[-1:] == "\n" else f"{text}\n{stack}"
        fields = record.__dict__
        correlation_id, interview_id = fields.get("correlation_id"), fields.get("interview_id")
        if not correlation_id and not interview_id:
            return text
        if correlation_id and interview_id:
            ids = f"correlation_id={correlation_id} interview_id={interview_id}"
        elif correlation_id:
            ids = f"correlation_id={correlation_id}"
        else:
            ids = f"interview_id={interview_id}"
        head, sep, tail = text.partition("\n")  # keep a traceback below the ids
        return f"{head}  [{ids}]{sep}{tail}"


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


# A record's fields that ``log_line`` never varies, from one made the usual way.
_UNKNOWN_FILE = "(unknown file)"
_CONSTANT = logging.LogRecord("", 0, _UNKNOWN_FILE, 0, "", None, None)
_RESERVED = frozenset(vars(_CONSTANT)) | {"message", "asctime"}


def _record(
    logger: logging.Logger,
    level: int,
    msg: str,
    args: tuple[object, ...],
    extra: Mapping[str, object] | None,
) -> logging.LogRecord:
    """``logger.makeRecord(...)`` for a line without a caller's file: the same
    fields, set directly (``LogRecord.__init__`` spends a third of its time
    working out a file name and module that are the same every time). Made the
    usual way when anything customises records."""
    if (
        logging.getLogRecordFactory() is not logging.LogRecord
        or type(logger).makeRecord is not logging.Logger.makeRecord
        or not (logging.logThreads and logging.logProcesses and logging.logMultiprocessing)
        or (len(args) == 1 and isinstance(args[0], Mapping))
    ):
        return logger.makeRecord(logger.name, level, _UNKNOWN_FILE, 0, msg, args, None, None, extra)
    if extra is not None and not _RESERVED.isdisjoint(extra):
        key = next(key for key in extra if key in _RESERVED)
        raise KeyError(f"Attempt to overwrite {key!r} in LogRecord")
    now = time.time()
    process_name = "MainProcess"
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None:
        with contextlib.suppress(Exception):
            process_name = multiprocessing.current_process().name
    record = logging.LogRecord.__new__(logging.LogRecord)
    fields = record.__dict__
    fields.update(
        name=logger.name,
        msg=msg,
        args=args,
        levelname=logging.getLevelName(level),
        levelno=level,
        pathname=_UNKNOWN_FILE,
        filename=_CONSTANT.filename,
        module=_CONSTANT.module,
        exc_info=None,
        exc_text=None,
        stack_info=None,
        lineno=0,
        funcName=None,
        created=now,
        msecs=int((now - int(now)) * 1000) + 0.0,
        relativeCreated=(now - logging._startTime) * 1000,  # type: ignore[attr-defined]
        thread=threading.get_ident(),
        threadName=threading.current_thread().name,
        processName=process_name,
        process=os.getpid(),
    )
    if extra is not None:
        fields.update(extra)
    return record


def log_line(
    logger: logging.Logger,
    level: int,
    msg: str,
    args: tuple[object, ...],
    extra: Mapping[str, object] | None = None,
) -> None:
    """``logger.log(level, msg, *args, extra=extra)`` for a line written per
    request: the same record, less its caller's file, line and function, which
    ``logger.log`` looks up by walking the stack and no format of ours shows."""
    if logger.isEnabledFor(level):
        logger.handle(_record(logger, level, msg, args, extra))
