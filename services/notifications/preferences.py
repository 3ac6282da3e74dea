"""Each user's preferences: the time zone every text they receive shows times in.

Texts (inbox, webhook, e-mail) are rendered once, when the notification is
recorded: the consumer renders an event's notifications in the recipients'
zones at that moment, the reminder worker a reminder's when it sends it. A
changed preference therefore applies to notifications recorded afterwards;
those already recorded keep the text they were sent with. A user who never
chose a zone reads UTC.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa

from ..common.db import upsert
from .adapters.tables import preferences

DEFAULT_TIME_ZONE = "UTC"
UTC_ZONE = ZoneInfo(DEFAULT_TIME_ZONE)


class UnknownTimeZoneError(ValueError):
    """Not an IANA time zone name known to this service's zone database."""


# Entries of a system zone directory that are no zones of their own.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _known() -> frozenset[str]:
    # ``tzdata`` (a dependency) guarantees the database on machines without one.
    return frozenset(
        name
        for name in available_timezones()
        if name not in _NOT_ZONES and not name.startswith(("posix/", "right/"))
    )


@functools.cache
def _by_lowercase() -> dict[str, str]:
    return {name.lower(): name for name in _known()}


def parse_time_zone(name: str) -> ZoneInfo:
    """The zone named ``name`` (exactly as IANA spells it, e.g. ``Europe/Berlin``)."""
    if name not in _known():
        hint = _by_lowercase().get(name.strip().lower())
        suggestion = f"; did you mean {hint!r}?" if hint else " (e.g. 'Europe/Berlin', 'UTC')"
        raise UnknownTimeZoneError(f"unknown time zone {name!r}{suggestion}")
    return ZoneInfo(name)


def zone_named(name: str | None) -> ZoneInfo:
    """The stored zone ``name`` (UTC for none, or one a later tzdata dropped: a
    recipient's texts fall back, never fail)."""
    try:
        return parse_time_zone(name) if name else UTC_ZONE
    except UnknownTimeZoneError:
        return UTC_ZONE


class Preferences:
    """A caller's own preferences (``GET``/``PUT /me/preferences``)."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def get(self, user_id: str) -> dict[str, Any]:
        """The stored preferences, or the defaults (``updated_at`` null) if none."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(preferences).where(preferences.c.user_id == user_id))
                .mappings()
                .first()
            )
        if row is None:
            return {"time_zone": DEFAULT_TIME_ZONE, "updated_at": None}
        return {"time_zone": row["time_zone"], "updated_at": row["updated_at"]}

    def set_time_zone(self, user_id: str, name: str) -> dict[str, Any]:
        """Stores ``name`` (UnknownTimeZoneError if it is none, and nothing changes)."""
        parse_time_zone(name)
        values = {"user_id": user_id, "time_zone": name, "updated_at": self.clock()}
        with self.engine.begin() as conn:
            conn.execute(
                upsert(conn, preferences, ["user_id"], ["time_zone", "updated_at"]).values(**values)
            )
        return {"time_zone": name, "updated_at": values["updated_at"]}
