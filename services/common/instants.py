"""Instants at the edges of the calendar, stored without overflowing.

Python's ``datetime`` (and the databases' timestamp columns) stop at year 1
and year 9999. An aware datetime inside that range can still lie outside it
once converted to UTC: ``9999-12-31T23:59:59-01:00`` is an hour into year
10000 in UTC, ``0001-01-01T00:00:00+14:00`` fourteen hours before year 1.
``astimezone(UTC)`` raises ``OverflowError`` on both, and an event carrying
one would stop every consumer, index and rebuild that stores it in UTC.

Every downstream service converts through :func:`to_utc`, which clamps such
an instant to the nearest one UTC can hold (``9999-12-31T23:59:59.999999Z``
or ``0001-01-01T00:00:00Z``): at most 14 hours off, at the very end (or
start) of the calendar, where it changes no decision (a deadline there never
comes; one there has always passed). The event itself keeps the original
value and offset; only the stored UTC copy is clamped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

UTC_MIN = datetime.min.replace(tzinfo=UTC)
UTC_MAX = datetime.max.replace(tzinfo=UTC)


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC (a naive one is taken as UTC), clamped to what UTC can hold."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return UTC_MAX if value.year > 1 else UTC_MIN


def shifted(value: datetime, delta: timedelta) -> datetime:
    """``value + delta``, clamped to the calendar (in ``value``'s zone, UTC if it overflows)."""
    try:
        return value + delta
    except OverflowError:
        return UTC_MAX if delta > timedelta(0) else UTC_MIN
