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
    # From 5.0 (the late one's first batch) to 8.0 (its last): late applied
    # 3500 - 500; early 3000 - 1000 and a thirteenth of its batch from 7.0 to 20.0.
    expected = (2000 + 6000 / 13 + 3000) / 3.0
    assert window_rate([early, late]) == pytest.approx(expected)


def test_a_batch_across_an_end_of_the_window_counts_for_its_part_in_it() -> None:
    slow = [(0.0, 1000), (4.0, 5000)]  # one batch of 4,000 from 0.0 to 4.0
    quick = [(1.0, 100), (2.0, 1100), (3.0, 2100)]
    # From 1.0 to 3.0: half of slow's batch, and quick's 2,000.
    assert window_rate([slow, quick]) == pytest.approx((2000 + 2000) / 2.0)


def test_the_window_starts_once_the_group_settled() -> None:
    # Both applied a batch, then the group rebalanced (everyone stopped) and settled.
    first = [(0.0, 1000), (0.5, 2000), (2.0, 2500), (3.0, 3500), (4.0, 4500)]
    second = [(0.5, 1000), (2.2, 1500), (3.2, 2500), (4.2, 3500)]
    moves: list[list[tuple[str, float, str]]] = [
        [("assigned", -0.5, "0,1,2"), ("revoked", 1.0, "0,1,2"), ("assigned", 1.5, "0,1,4")],
        [("assigned", -0.5, "3,4,5"), ("revoked", 1.0, "3,4,5"), ("assigned", 1.5, "2,3,5")],
    ]
    # From 2.2 (both applied a batch since 1.5) to 4.0.
    rate = window_rate([first, second], moves)
    assert rate == pytest.approx((4500 - 2700 + 3300 - 1500) / 1.8)
    assert rate > window_rate([first, second]) * 1.3  # the stall counted from 0.5 on


def test_a_rebalance_inside_the_window_fails_the_repetition() -> None:
    first = [(0.0, 500), (1.0, 1500), (2.0, 2500), (3.0, 3500)]
    second = [(0.5, 500), (1.5, 1500), (2.5, 2500), (3.5, 3500)]
    moves = [
        [("assigned", -0.5, "0,1,2")],
        [("assigned", -0.5, "3,4,5"), ("revoked", 1.7, "3,4,5")],
    ]
    with pytest.raises(RuntimeError, match="rebalanced inside"):
        # The revocation at 1.7 lies before its process's last assignment: none after it.
        window_rate([first, second], [moves[0], [*moves[1], ("assigned", 3.6, "3,4,5")]])
    with pytest.raises(RuntimeError, match="rebalanced inside"):
        window_rate([first, second], moves)


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
