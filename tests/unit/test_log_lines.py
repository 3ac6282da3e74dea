"""The cheaper log path writes exactly what the standard one writes: the same
JSON and text lines, the same record fields, the same timestamps."""

from __future__ import annotations

import io
import json
import logging
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.common.logs import (
    JsonFormatter,
    TextFormatter,
    _UtcSeconds,
    configure_logging,
    log_context,
    log_line,
)


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def written(fmt: str, write: object) -> str:
    buffer = io.StringIO()
    configure_logging("INFO", fmt, service="interviews", stream=buffer)
    with log_context(correlation_id="corr-7", interview_id="iv-9"):
        write()  # type: ignore[operator]
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_line_writes_what_logger_log_writes(
    fmt: str, restore_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1764685871.123456)
    log = logging.getLogger("tests.lines")
    args = ("POST", "/interviews/1/accept", 200, 1.2345)
    extra = {"method": "POST", "status": 200, "ms": 1.23, "request_id": "r-1"}
    standard = written(fmt, lambda: log.info("%s %s %d %.2fms", *args, extra=extra))
    cheap = written(fmt, lambda: log_line(log, logging.INFO, "%s %s %d %.2fms", args, extra))
    assert cheap == standard
    assert "correlation_id" in cheap and "POST /interviews/1/accept 200 1.23ms" in cheap
    if fmt == "json":
        line = json.loads(cheap)
        assert (line["time"], line["status"], line["interview_id"]) == (
            "2025-12-02T14:31:11.123+00:00",
            200,
            "iv-9",
        )


def test_log_line_writes_nothing_below_the_level_and_refuses_a_reserved_extra(
    restore_root: None,
) -> None:
    log = logging.getLogger("tests.lines")
    assert written("json", lambda: log_line(log, logging.DEBUG, "quiet %s", ("x",))) == ""
    with pytest.raises(KeyError):
        log_line(log, logging.INFO, "m", (), {"msg": "overwritten"})


def test_a_record_from_log_line_has_the_standard_fields_in_order() -> None:
    log = logging.getLogger("tests.fields")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    log.addHandler(handler)
    log.propagate = False
    try:
        log_line(log, logging.WARNING, "n=%d", (3,), {"k": "v"})
    finally:
        log.removeHandler(handler)
        log.propagate = True
    made = log.makeRecord(
        log.name, logging.WARNING, "(unknown file)", 0, "n=%d", (3,), None, None, {"k": "v"}
    )
    (record,) = records
    assert list(vars(record)) == list(vars(made))
    varying = {"created", "msecs", "relativeCreated"}
    assert {k: v for k, v in vars(record).items() if k not in varying} == {
        k: v for k, v in vars(made).items() if k not in varying
    }
    assert record.getMessage() == "n=3"


def test_the_json_time_is_fromtimestamp_s_text_on_every_edge() -> None:
    stamp = _UtcSeconds()
    rng = random.Random(18)
    second = 1764685871.0
    values = [rng.uniform(0, 4e9) for _ in range(20_000)]
    values += [second + k / 1000 + d for k in range(1001) for d in (-5e-7, 5e-7, 0.0, 1e-9)]
    values += [second - 1e-7, second - 4e-7, second - 6e-7, 0.0, 59.9999996]
    for value in values:
        expected = datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")
        assert stamp(value) == expected, value


def test_the_text_time_is_the_standard_formatter_s_across_seconds() -> None:
    ours, standard = TextFormatter(), logging.Formatter()
    for created in (1764685871.999, 1764685872.0, 1764685872.5, 1764685871.2, 1764685873.001):
        record = logging.LogRecord("t", logging.INFO, "", 0, "m", None, None)
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        assert ours.formatTime(record) == standard.formatTime(record)


def test_a_traceback_and_a_stack_stay_below_the_ids_as_before() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t",
            logging.ERROR,
            "",
            0,
            "failed %s",
            ("x",),
            __import__("sys").exc_info(),
            None,
            {"correlation_id": "c-1"},
            "Stack (most recent call last):\n  here",
        )
    text = TextFormatter().format(record)
    base = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s %(message)s").format(record)
    head, _, tail = base.partition("\n")
    assert text == f"{head}  [correlation_id=c-1]\n{tail}"
    assert "ValueError: boom" in tail and tail.endswith("here")
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["exception"] and line["correlation_id"] == "c-1"
