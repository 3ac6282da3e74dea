"""The projections' reference checked on its own: its scripts take every
transition, its synthetic events keep each interview in order, and its fold of
a hire is what DESIGN describes."""

from __future__ import annotations

import uuid

from tests.support.projections_reference import (
    OPEN_PLANS,
    STEP_TYPES,
    Script,
    reference_interviews,
    reference_stats,
    scripts,
    shuffled_across_interviews,
    synthetic_events,
)


def test_scripts_take_every_transition_and_leave_some_open() -> None:
    plays = scripts(200)
    steps = {step for s in plays for step in s.steps}
    assert steps == set(STEP_TYPES) - {"invite"}
    assert any(s.steps in OPEN_PLANS for s in plays)
    repeated = {(s.job_id, s.freelancer_id) for s in plays}
    assert len(repeated) == 180  # 20 freelancers invited twice to the same job


def test_synthetic_events_keep_each_interview_in_order_with_growing_positions() -> None:
    events = synthetic_events(scripts(50))
    positions = [e.position for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    seen: dict[uuid.UUID, int] = {}
    for e in events:
        assert e.version == seen.get(e.interview_id, 0) + 1
        seen[e.interview_id] = e.version


def test_reference_fold_of_a_hire() -> None:
    plays = [Script(0, "job-1", "c1", "f1", ("accept", "start", "offer", "accept_offer"))]
    events = synthetic_events(plays)
    view = reference_interviews(events + events[:2])[str(plays[0].interview_id)]
    assert view["status"] == "hired" and view["version"] == 5 and view["offers"] == 1
    assert view["time_to_hire"] > view["time_to_accept"] > 0
    stats = reference_stats([view])
    assert stats["funnel"] == [1, 1, 1, 1, 1] and stats["by_status"]["hired"] == 1


def test_shuffling_keeps_each_interview_in_order() -> None:
    events = synthetic_events(scripts(30))
    mixed = shuffled_across_interviews(events, duplicate=0.3)
    assert len(mixed) > len(events)
    last: dict[uuid.UUID, int] = {}
    for e in mixed:
        assert e.version >= last.get(e.interview_id, 0)
        last[e.interview_id] = e.version
