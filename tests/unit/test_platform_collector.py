"""``interviewctl up`` runs the API and both consumers in one process: the
collector leaves short-lived objects alone instead of scanning them every 700
allocations."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.platform import YOUNG_GENERATION_THRESHOLD, collect_young_garbage_less_often


@pytest.fixture
def collector() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, *saved[1:])
    yield
    gc.set_threshold(*saved)


def young_collections_while_allocating(count: int) -> int:
    before = gc.get_stats()[0]["collections"]
    kept = [[n] for n in range(count)]  # containers the collector tracks, alive
    after = gc.get_stats()[0]["collections"]
    assert len(kept) == count
    return after - before


def test_the_platform_process_scans_young_objects_far_less_often(collector: None) -> None:
    assert young_collections_while_allocating(7_000) >= 5
    collect_young_garbage_less_often()
    assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
    assert young_collections_while_allocating(7_000) <= 1


def test_a_higher_threshold_already_set_is_kept(collector: None) -> None:
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    collect_young_garbage_less_often()
    assert gc.get_threshold()[0] == 50_000
