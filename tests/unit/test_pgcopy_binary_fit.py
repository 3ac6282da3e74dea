"""A COPY goes in PostgreSQL's binary form only when every value fits its column's
binary form; one value that does not (another Python type, a naive instant) sends
the whole batch as text, where the server parses each value as a literal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.pgcopy import _fit_binary

pytestmark = pytest.mark.unit

TEXT, INT8, BOOL, TIMESTAMPTZ = 25, 20, 16, 1184
TYPES = [TEXT, INT8, BOOL, TIMESTAMPTZ]
AWARE = datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_rows_of_the_columns_types_and_nulls_fit_the_binary_form() -> None:
    rows: list[list[Any]] = [
        ["a", 1, True, AWARE],
        [None, None, None, None],
        ["b", 2, False, AWARE],
    ]
    assert _fit_binary(TYPES, rows)


def test_no_rows_fit() -> None:
    assert _fit_binary(TYPES, [])


@pytest.mark.parametrize(
    "odd_row",
    [
        [1, 1, True, AWARE],  # an int in a text column
        ["a", True, True, AWARE],  # a bool is no int8
        ["a", 1, 1, AWARE],  # an int is no bool
        ["a", 1, True, AWARE.replace(tzinfo=None)],  # a naive instant
        ["a", 1.5, True, AWARE],  # a float in an int8 column
    ],
)
def test_one_value_that_does_not_fit_sends_the_batch_as_text(odd_row: list[Any]) -> None:
    rows: list[list[Any]] = [["a", 1, True, AWARE]] * 3 + [odd_row] + [["b", 2, False, AWARE]]
    assert not _fit_binary(TYPES, rows)
