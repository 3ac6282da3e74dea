"""The scale-out figure: how several consumer processes' rate is counted, and how
their views are compared with one process's."""

from __future__ import annotations

import pytest

from bench.scale_out import differences, window_rate

pytestmark = pytest.mark.unit


def test_one_process_counts_from_its_first_batch_to_its_last() -> None:
    assert window_rate([[(10.0, 500), (11.0, 1500), (12.0, 2500)]]) == 1000.0


def test_two_processes_count_only_while_both_apply() -> None:
    early = [(0.0, 500), (5.0, 1000), (6.0, 2000), (7.0, 3000), (20.0, 9000)]
    late = [(5.0, 500), (6.0, 1500), (7.0, 2500), (8.0, 3500)]
    # From 5.0 (the late one's first batch) to 8.0 (its last): early applied
    # 3000 - 1000, late 3500 - 500.
    assert window_rate([early, late]) == pytest.approx((2000 + 3000) / 3.0)


def test_processes_that_never_applied_side_by_side_have_no_rate() -> None:
    with pytest.raises(RuntimeError, match="side by side"):
        window_rate([[(0.0, 500), (1.0, 1000)], [(2.0, 500), (3.0, 1000)]])
    with pytest.raises(RuntimeError, match="no batch"):
        window_rate([[(0.0, 500)], []])


def test_views_differ_when_a_row_or_a_count_differs() -> None:
    one = {"interviews": ["('a', 1)", "('b', 2)"], "timeline": ["x"]}
    assert differences(one, {"interviews": ["('b', 2)", "('a', 1)"], "timeline": ["x"]}) == []
    changed = differences(one, {"interviews": ["('a', 1)", "('b', 3)"], "timeline": ["x"]})
    assert changed == ["interviews: 2 vs 2 rows, 1 only in the first, 1 only in the second"]
    doubled = differences(one, {"interviews": one["interviews"], "timeline": ["x", "x"]})
    assert doubled == ["timeline: 1 vs 2 rows, 0 only in the first, 0 only in the second"]
