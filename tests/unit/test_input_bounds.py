"""DESIGN's input bounds as the domain states them (``domain/bounds.py``), the
aggregate refusing values outside them on its own, and the OpenAPI pattern for
free text agreeing with the domain character for character."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import uuid4

import pytest

from services.interviews.domain import (
    Actor,
    CommandContext,
    InputOutOfBoundsError,
    Interview,
    InvalidCommandError,
    OfferTerms,
    bounds,
)
from services.interviews.entrypoints.schemas import TEXT_PATTERN

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TODAY = date(2026, 11, 25)
SECOND = timedelta(seconds=1)
PLUS_14 = timezone(timedelta(hours=14))
MINUS_14 = timezone(timedelta(hours=-14))
CLIENT = Actor("client-1", "client")
FREELANCER = Actor("freelancer-1", "freelancer")
BIDI = [
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
]


def refused(call: object, *args: object, **kwargs: object) -> InputOutOfBoundsError:
    with pytest.raises(InputOutOfBoundsError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


# ------------------------------------------------------------------ instants


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (NOW, False),
        (NOW + SECOND, True),
        (NOW + timedelta(days=90), True),
        (NOW + timedelta(days=90) + SECOND, False),
        (NOW - timedelta(days=1), False),
    ],
    ids=["now", "a-second-ahead", "90-days", "90-days-and-a-second", "yesterday"],
)
def test_expires_at_lies_in_the_future_and_at_most_90_days_ahead(value: datetime, ok: bool) -> None:
    if ok:
        assert bounds.check_expires_at(value, NOW) == value
    else:
        error = refused(bounds.check_expires_at, value, NOW)
        assert error.field == "expires_at"
        assert "90 days" in error.detail and error.detail.startswith("expires_at ")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (NOW - timedelta(days=7), True),
        (NOW - timedelta(days=7) - SECOND, False),
        (NOW + timedelta(days=365), True),
        (NOW + timedelta(days=365) + SECOND, False),
    ],
    ids=["7-days-ago", "just-before", "a-year-ahead", "just-after"],
)
def test_scheduled_at_lies_between_7_days_ago_and_a_year_ahead(value: datetime, ok: bool) -> None:
    if ok:
        assert bounds.check_scheduled_at(value, NOW) == value
    else:
        error = refused(bounds.check_scheduled_at, value, NOW)
        assert error.field == "scheduled_at"
        assert "7 days ago and one year ahead" in error.detail


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (TODAY - timedelta(days=1), True),
        (TODAY - timedelta(days=2), False),
        (TODAY + timedelta(days=365), True),
        (TODAY + timedelta(days=366), False),
        (date(1, 1, 1), False),
        (date(9999, 12, 31), False),
    ],
    ids=["yesterday", "two-days-ago", "a-year-ahead", "a-day-more", "year-1", "year-9999"],
)
def test_start_date_lies_between_yesterday_and_a_year_ahead(value: date, ok: bool) -> None:
    if ok:
        assert bounds.check_start_date(value, TODAY) == value
    else:
        error = refused(bounds.check_start_date, value, TODAY)
        assert error.field == "start_date"
        assert "yesterday and one year ahead" in error.detail


def test_an_accepted_instant_comes_back_in_utc() -> None:
    local = datetime(2026, 11, 26, 8, 0, tzinfo=PLUS_14)

    accepted = bounds.check_scheduled_at(local, NOW)

    assert accepted.utcoffset() == timedelta(0)
    assert accepted == local
    assert bounds.check_expires_at(local, NOW).tzinfo == UTC


@pytest.mark.parametrize(
    "value",
    [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=MINUS_14),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))),
        datetime(1, 1, 1, 0, 0, tzinfo=PLUS_14),
    ],
    ids=["9999-minus-14", "9999-minus-1", "year-1-plus-14"],
)
@pytest.mark.parametrize("check", [bounds.check_expires_at, bounds.check_scheduled_at])
def test_an_instant_beyond_the_calendar_in_utc_is_refused_not_an_overflow(
    check: object, value: datetime
) -> None:
    error = refused(check, value, NOW)

    assert "out of range" in error.detail


def test_a_naive_instant_is_refused() -> None:
    error = refused(bounds.check_scheduled_at, datetime(2026, 12, 1, 10, 0), NOW)

    assert "time zone" in error.detail


# --------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        ("0.01", None),
        ("1", None),
        ("10000000", None),
        ("10000000.00", None),
        ("10000000.01", "at most 10000000"),
        ("0.001", "at most 2 decimals"),
        ("0", "greater than 0"),
        ("-5", "greater than 0"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
    ],
)
def test_an_amount_is_positive_at_most_ten_million_with_two_decimals(
    amount: str, problem: str | None
) -> None:
    found = bounds.amount_problem(Decimal(amount))

    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


# ----------------------------------------------------------------- free text


@pytest.mark.parametrize(
    "text",
    ["hello", "two\nlines\r\nand\ttabs", "Grüße 🎉", "  padded  ", "x" * 500, "a\u200bb"],
)
def test_ordinary_text_is_accepted(text: str) -> None:
    assert bounds.text_problem(text, 500) is None


@pytest.mark.parametrize("char", BIDI, ids=lambda c: f"U+{ord(c):04X}")
def test_bidirectional_controls_are_refused(char: str) -> None:
    problem = bounds.text_problem(f"pay {char}ti 0001{char} now", 500)

    assert problem is not None and f"U+{ord(char):04X}" in problem


@pytest.mark.parametrize(
    "char", ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9b", "\ud800"]
)
def test_control_characters_and_lone_surrogates_are_refused(char: str) -> None:
    problem = bounds.text_problem(f"a{char}b", 500)

    assert problem is not None and "control" in problem


@pytest.mark.parametrize("text", ["", " ", "\t\n", "\u00a0\u3000", "\u200b\ufeff", " \u2060 "])
def test_blank_text_is_refused(text: str) -> None:
    problem = bounds.text_problem(text, 500)

    assert problem is not None and "blank" in problem


def test_text_is_bounded_in_length() -> None:
    problem = bounds.text_problem("x" * 501, 500)

    assert problem is not None and "at most 500" in problem


def test_an_absent_optional_text_is_fine_and_a_required_one_is_not() -> None:
    bounds.check_text(None, "reason", 500)

    assert "reason" in refused(bounds.check_text, None, "reason", 500, required=True).detail


def _characters_to_compare() -> list[str]:
    """Every character of the Basic Multilingual Plane (where every character the
    rules name lives) and a sample of the others, tag characters included."""
    astral = [*range(0x10000, 0x110000, 997), 0x1F389, 0xE0001, 0xE0020, 0x10FFFF]
    surrogates = range(0xD800, 0xE000)  # refused by the domain, unstated by the pattern
    return [chr(n) for n in (*range(0x10000), *astral) if n not in surrogates]


def test_the_openapi_text_pattern_agrees_with_the_domain_character_by_character() -> None:
    """The pattern tells generated clients the rule; one character at a time
    (alone, and after a visible one) it accepts exactly what the domain accepts."""
    pattern = re.compile(TEXT_PATTERN)
    disagreements = [
        f"U+{ord(char):04X} in {text!r}"
        for char in _characters_to_compare()
        for text in (char, "a" + char)
        if (pattern.match(text) is not None) != (bounds.text_problem(text, 10) is None)
    ]

    assert disagreements == []


# ----------------------------------------------------- the aggregate refuses


def ctx(actor: Actor, at: datetime = NOW) -> CommandContext:
    return CommandContext(actor=actor, at=at, correlation_id="c", causation_id="r")


def accepted_interview() -> Interview:
    interview = Interview.invite(
        ctx(CLIENT), interview_id=uuid4(), job_id="job-1", freelancer_id=FREELANCER.id
    )
    interview.accept(ctx(FREELANCER))
    interview.collect_events()
    return interview


def test_the_aggregate_refuses_an_invitation_expiring_beyond_90_days() -> None:
    error = refused(
        Interview.invite,
        ctx(CLIENT),
        interview_id=uuid4(),
        job_id="job-1",
        freelancer_id=FREELANCER.id,
        expires_at=NOW + timedelta(days=91),
    )

    assert isinstance(error, InvalidCommandError)
    assert error.code == "invalid_input"


@pytest.mark.parametrize("message", ["   ", "\u202eevil", "nul\x00"])
def test_the_aggregate_refuses_a_bad_invitation_message(message: str) -> None:
    error = refused(
        Interview.invite,
        ctx(CLIENT),
        interview_id=uuid4(),
        job_id="job-1",
        freelancer_id=FREELANCER.id,
        message=message,
    )

    assert error.field == "message"


def test_the_aggregate_stores_deadlines_and_schedules_in_utc() -> None:
    interview = Interview.invite(
        ctx(CLIENT),
        interview_id=uuid4(),
        job_id="job-1",
        freelancer_id=FREELANCER.id,
        expires_at=datetime(2026, 11, 27, 9, 0, tzinfo=PLUS_14),
    )
    interview.accept(ctx(FREELANCER))
    interview.start(ctx(CLIENT), scheduled_at=datetime(2026, 11, 30, 1, 0, tzinfo=MINUS_14))

    assert interview.invitation_expires_at == datetime(2026, 11, 26, 19, 0, tzinfo=UTC)
    assert interview.invitation_expires_at.tzinfo == UTC  # type: ignore[union-attr]
    assert interview.scheduled_at is not None and interview.scheduled_at.tzinfo == UTC
    [*_, started] = interview.collect_events()
    assert started.scheduled_at == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # type: ignore[attr-defined]


def test_the_aggregate_refuses_a_schedule_out_of_its_window_and_records_nothing() -> None:
    interview = accepted_interview()

    error = refused(interview.start, ctx(CLIENT), NOW - timedelta(days=8))

    assert error.field == "scheduled_at"
    assert interview.status == "accepted"
    assert interview.collect_events() == []


@pytest.mark.parametrize(
    ("terms", "expires_at", "field"),
    [
        (OfferTerms(Decimal("10000000.01"), "EUR", "fixed"), None, "amount"),
        (OfferTerms(Decimal("12.345"), "EUR", "fixed"), None, "amount"),
        (OfferTerms(Decimal("100"), "eur", "fixed"), None, "currency"),
        (OfferTerms(Decimal("100"), "EUR", "fixed", date(1, 1, 1)), None, "start_date"),
        (OfferTerms(Decimal("100"), "EUR", "fixed", message="\u2066x"), None, "message"),
        (OfferTerms(Decimal("100"), "EUR", "fixed"), NOW + timedelta(days=91), "expires_at"),
    ],
    ids=["amount-max", "amount-decimals", "currency", "start-date", "message", "expires-at"],
)
def test_the_aggregate_refuses_offers_out_of_bounds(
    terms: OfferTerms, expires_at: datetime | None, field: str
) -> None:
    interview = accepted_interview()

    error = refused(interview.extend_offer, ctx(CLIENT), terms, expires_at)

    assert error.field == field
    assert interview.collect_events() == []


def test_the_aggregate_refuses_blank_or_bidi_reasons() -> None:
    interview = accepted_interview()

    assert refused(interview.cancel, ctx(CLIENT), " \t ").field == "reason"
    invited = Interview.invite(
        ctx(CLIENT), interview_id=uuid4(), job_id="job-1", freelancer_id=FREELANCER.id
    )
    assert refused(invited.decline, ctx(FREELANCER), "no\u202e").field == "reason"
    assert (invited.status, interview.status) == ("invited", "accepted")


def test_now_is_the_commands_clock_not_the_wall_clock() -> None:
    """A command dated 2030 may schedule in 2030: the window moves with ``ctx.at``."""
    later = datetime(2030, 6, 1, tzinfo=UTC)
    interview = Interview.invite(
        ctx(CLIENT, later),
        interview_id=uuid4(),
        job_id="job-1",
        freelancer_id=FREELANCER.id,
        expires_at=later + timedelta(days=60),
    )
    interview.accept(ctx(FREELANCER, later))

    interview.start(ctx(CLIENT, later), scheduled_at=later + timedelta(days=300))

    assert interview.scheduled_at == later + timedelta(days=300)
