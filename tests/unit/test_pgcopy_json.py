"""The text a JSON column gets in a COPY is exactly ``json.dumps`` of the value (what
psycopg's JSON dumper writes): ``json`` columns keep their text as written, so a
reader of the stored text sees the same bytes as before."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.common.pgcopy import json_dumps_text

pytestmark = pytest.mark.unit

VALUES: list[Any] = [
    {},
    [],
    "plain",
    'quotes " and \\ and \n',
    {"job_id": "job-1", "actor": {"id": "c-1", "role": "client"}, "reason": None},
    {"é": "ünïcode \u2028 \x00 \U0001f600", "nested": [[{"a": [1, 2.5, -0.0, 1e300]}]]},
    {"n": [float("nan"), float("inf"), float("-inf"), True, False, None, 10**30]},
    {3: "int key", 1.5: "float key", None: "none key", True: "bool key"},
    ["erased", "reason"],
    42,
    None,
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_a_json_value_is_written_as_json_dumps_writes_it(value: Any) -> None:
    assert json_dumps_text(value) == json.dumps(value)


def test_a_value_json_cannot_write_is_refused_as_json_dumps_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_dumps_text({"when": object()})
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        json_dumps_text(looped)
    # A refusal leaves nothing behind: the next value is written whole.
    assert json_dumps_text([looped[:0]]) == "[[]]"
