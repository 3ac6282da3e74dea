"""Instants at the edges of the calendar convert to UTC without overflowing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.common.instants import UTC_MAX, UTC_MIN, shifted, to_utc

pytestmark = pytest.mark.unit


def zone(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def test_an_instant_past_year_9999_in_utc_is_clamped_to_the_last_one() -> None:
    assert to_utc(datetime(9999, 12, 31, 23, 59, 59, tzinfo=zone(-1))) == UTC_MAX
    assert to_utc(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=zone(-14))) == UTC_MAX


def test_an_instant_before_year_1_in_utc_is_clamped_to_the_first_one() -> None:
    assert to_utc(datetime(1, 1, 1, tzinfo=zone(14))) == UTC_MIN
    assert to_utc(datetime(1, 1, 1, 13, 59, tzinfo=zone(14))) == UTC_MIN


def test_every_other_instant_is_converted_exactly() -> None:
    assert to_utc(datetime(9999, 12, 31, 22, 59, tzinfo=zone(-1))) == datetime(
        9999, 12, 31, 23, 59, tzinfo=UTC
    )
    assert to_utc(datetime(1, 1, 1, 14, 0, tzinfo=zone(14))) == datetime(1, 1, 1, tzinfo=UTC)
    assert to_utc(datetime(2026, 11, 25, 12, 0)) == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_shifting_past_the_calendar_stops_at_its_edge() -> None:
    assert shifted(datetime(1, 1, 1, 12, tzinfo=UTC), -timedelta(days=1)) == UTC_MIN
    assert shifted(UTC_MAX - timedelta(hours=1), timedelta(days=1)) == UTC_MAX
    assert shifted(datetime(2026, 1, 2, tzinfo=UTC), -timedelta(days=1)) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
