"""The input bounds every command meets (DESIGN, "Input bounds").

Whatever a command accepts, every downstream service must be able to store,
show and compute with: a deadline the scheduler can add an hour to, an instant
PostgreSQL can hold, text a terminal shows as written. The API refuses values
outside these bounds at the edge and the aggregate refuses them again, so a
later bug in one layer cannot put them into the append-only log.

The ``*_problem`` functions say what is wrong with a value (or None) and know
no field names; the ``check_*`` functions raise :class:`InputOutOfBoundsError`
naming the field and the bound. Windows are closed at both ends unless stated.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from .errors import InputOutOfBoundsError

EXPIRY_WINDOW = timedelta(days=90)  # expires_at: after now, at most this far ahead
SCHEDULE_PAST = timedelta(days=7)  # scheduled_at: no earlier than this before now
ONE_YEAR = timedelta(days=365)  # scheduled_at and start_date: at most this far ahead
START_DATE_PAST = timedelta(days=1)  # start_date: yesterday (the client's zone may lag UTC)

MAX_AMOUNT = Decimal("10000000")
AMOUNT_DECIMALS = 2
MESSAGE_MAX_LENGTH = 2000
REASON_MAX_LENGTH = 500

# Line breaks and tabs are text; every other control character poisons a
# downstream store (PostgreSQL text cannot hold NUL) or a terminal.
ALLOWED_CONTROLS = frozenset("\t\n\r")
# Characters that reorder what is displayed around them ("Trojan Source"): a
# reason could read one way in the dashboard and mean another.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


# Format characters that show nothing: a text made of them and white space is blank.
INVISIBLE = (
    frozenset(
        "\u00ad\u180e\ufeff"
        + "".join(map(chr, range(0x200B, 0x2010)))
        + "".join(map(chr, range(0x2060, 0x2070)))
    )
    | BIDI_CONTROLS
)


def _is_invisible(char: str) -> bool:
    return char.isspace() or char in INVISIBLE


def text_problem(value: str, max_length: int) -> str | None:
    """What makes ``value`` unacceptable as free text, or None."""
    if len(value) > max_length:
        return f"must be at most {max_length} characters (got {len(value)})"
    for char in value:
        if char in BIDI_CONTROLS:
            return f"must not contain bidirectional control characters (found U+{ord(char):04X})"
        category = unicodedata.category(char)
        if (category == "Cc" and char not in ALLOWED_CONTROLS) or category == "Cs":
            return (
                "must not contain control characters other than tab and line breaks "
                f"(found U+{ord(char):04X})"
            )
    if all(_is_invisible(char) for char in value):
        return "must not be blank (it has no visible character)"
    return None


def amount_problem(value: Decimal) -> str | None:
    """What makes ``value`` unacceptable as an offer amount, or None."""
    if not value.is_finite():
        return "must be a finite number"
    if value <= 0:
        return "must be greater than 0"
    if value > MAX_AMOUNT:
        return f"must be at most {MAX_AMOUNT}"
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent < -AMOUNT_DECIMALS:
        return f"must have at most {AMOUNT_DECIMALS} decimals (got {value})"
    return None


def as_utc(value: datetime, field: str) -> datetime:
    """``value`` as a UTC instant; refused when naive or beyond year 1 to 9999 in UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputOutOfBoundsError(field, "must carry a time zone (e.g. Z or +02:00)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InputOutOfBoundsError(
            field, "is out of range: in UTC it falls outside the years 1 to 9999"
        ) from None


def check_expires_at(value: datetime, now: datetime, field: str = "expires_at") -> datetime:
    """A deadline after ``now`` and at most 90 days ahead, as UTC."""
    instant = as_utc(value, field)
    latest = now + EXPIRY_WINDOW
    if not now < instant <= latest:
        raise InputOutOfBoundsError(
            field,
            f"must be in the future and at most {EXPIRY_WINDOW.days} days ahead "
            f"(after {now.isoformat()}, until {latest.isoformat()})",
        )
    return instant


def check_scheduled_at(value: datetime, now: datetime, field: str = "scheduled_at") -> datetime:
    """An interview time between 7 days ago and one year ahead, as UTC."""
    instant = as_utc(value, field)
    earliest, latest = now - SCHEDULE_PAST, now + ONE_YEAR
    if not earliest <= instant <= latest:
        raise InputOutOfBoundsError(
            field,
            f"must be between {SCHEDULE_PAST.days} days ago and one year ahead "
            f"({earliest.isoformat()} to {latest.isoformat()})",
        )
    return instant


def check_start_date(value: date, today: date, field: str = "start_date") -> date:
    """A start date between yesterday and one year ahead (``today`` in UTC)."""
    earliest, latest = today - START_DATE_PAST, today + ONE_YEAR
    if not earliest <= value <= latest:
        raise InputOutOfBoundsError(
            field,
            f"must be between yesterday and one year ahead "
            f"({earliest.isoformat()} to {latest.isoformat()})",
        )
    return value


def today_of(now: datetime) -> date:
    """The UTC calendar day of ``now``: what ``check_start_date`` calls today."""
    return now.astimezone(UTC).date()


def check_amount(value: Decimal, field: str = "amount") -> Decimal:
    problem = amount_problem(value)
    if problem:
        raise InputOutOfBoundsError(field, problem)
    return value


def check_currency_code(value: str, field: str = "currency") -> str:
    """Three capital letters: the shape of an ISO 4217 code. The API checks the
    code against the published list; the domain keeps no copy of it."""
    if not _CURRENCY_CODE.match(value):
        raise InputOutOfBoundsError(field, "must be an ISO 4217 code such as EUR")
    return value


def check_text(value: str | None, field: str, max_length: int, *, required: bool = False) -> None:
    """Free text: absent where optional, never blank, control or bidi characters."""
    if value is None:
        if required:
            raise InputOutOfBoundsError(field, "is required")
        return
    problem = text_problem(value, max_length)
    if problem:
        raise InputOutOfBoundsError(field, problem)
