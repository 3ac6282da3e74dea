"""The folding of interview events into view rows (pure, no database)."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from typing import Any

from services.projections.fold import fold
from tests.support.projections_reference import (
    FINAL_PLANS,
    Script,
    reference_interviews,
    scripts,
    synthetic_events,
)


def _utc(raw: str) -> datetime:
    return datetime.fromisoformat(raw).astimezone(UTC)


def fold_all(
    events: list[Any], row: dict[str, Any] | None = None
) -> tuple[dict[str, Any] | None, list[Any]]:
    outcomes = []
    for e in events:
        folded = fold(row, e)
        outcomes.append(folded)
        row = folded.row if folded.outcome != "duplicate" else row
    return row, outcomes


def hire() -> list[Any]:
    return synthetic_events(
        [Script(0, "job-1", "c1", "f1", ("accept", "start", "offer", "accept_offer"))]
    )


def play(*steps: str) -> list[Any]:
    return synthetic_events([Script(0, "job-1", "c1", "f1", steps)])


def test_each_event_type_sets_the_status_of_the_transition_table() -> None:
    row, _ = fold_all(hire())
    assert row is not None
    assert (row["status"], row["version"], row["offers_count"]) == ("hired", 5, 1)
    assert row["hired_at"] == row["closed_at"] is not None
    assert row["time_to_hire_s"] > row["time_to_accept_s"] > 0


def test_a_duplicate_event_changes_nothing() -> None:
    events = hire()
    row, _ = fold_all(events[:3])
    again = fold(row, events[1])
    assert again.outcome == "duplicate" and again.row is row and again.timeline is None


def test_a_stale_event_changes_nothing() -> None:
    events = hire()
    row, _ = fold_all(events)
    stale = events[2].model_copy(update={"data": {"scheduled_at": "2030-01-01T00:00:00Z"}})
    assert fold(row, stale).outcome == "duplicate"


def test_a_version_gap_is_applied_and_flagged_and_filled_later() -> None:
    invited, accepted, started, offered, hired = hire()
    row, outcomes = fold_all([invited, started])
    assert row is not None
    assert outcomes[1].missing == (2,)
    assert (row["status"], row["version"], row["missing"], row["gaps_detected"]) == (
        "in_progress",
        3,
        [2],
        1,
    )
    assert row["accepted_at"] is None
    row, outcomes = fold_all([offered, accepted], row)
    assert row is not None
    assert outcomes[1].outcome == "filled" and outcomes[1].timeline is not None
    assert row["status"] == "offer_extended" and row["version"] == 4  # the newer status stays
    assert row["missing"] == [] and row["accepted_at"] is not None
    assert row["time_to_accept_s"] is not None


def test_an_interview_first_seen_after_its_invitation_remembers_the_missing_versions() -> None:
    events = hire()
    folded = fold(None, events[2])
    assert folded.created and folded.missing == (1, 2)
    assert folded.row["job_id"] == "job-1" and folded.row["invited_at"] is None


def test_every_arrival_order_ends_in_the_same_row_once_all_events_arrived() -> None:
    rng = random.Random(5)
    plays = [Script(i, "job", "c", f"f{i}", plan) for i, plan in enumerate(FINAL_PLANS)]
    events = synthetic_events(plays)
    for play in plays:
        mine = [e for e in events if e.interview_id == play.interview_id]
        in_order, _ = fold_all(mine)
        assert in_order is not None
        for _ in range(20):
            shuffled = mine[:]
            rng.shuffle(shuffled)
            row, _ = fold_all(shuffled + mine[:1])
            assert row is not None
            ignore = {"gaps_detected", "created_position"}
            assert {k: v for k, v in row.items() if k not in ignore} == {
                k: v for k, v in in_order.items() if k not in ignore
            }


def test_the_fold_agrees_with_the_reference_on_a_scripted_mix() -> None:
    events = synthetic_events(scripts(300))
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        folded = fold(rows.get(str(e.interview_id)), e)
        rows[str(e.interview_id)] = folded.row
    expected = reference_interviews(events)
    assert set(rows) == set(expected)
    for interview_id, row in rows.items():
        ref = expected[interview_id]
        assert row["status"] == ref["status"]
        assert row["version"] == ref["version"]
        assert row["position"] == ref["position"]
        assert row["offers_count"] == ref["offers"]
        assert (row["cancel_reason"], row["cancelled_by"]) == (
            (ref["cancellation"]["reason"], ref["cancellation"]["by"])
            if ref["cancellation"]
            else (None, None)
        )
        tth = row["time_to_hire_s"]
        assert (round(tth, 3) if tth is not None else None) == ref["time_to_hire"]
        assert row["next_actor"] == ref["next_actor"]
        deadline = row["next_deadline_at"]
        assert (deadline.isoformat() if deadline else None) == ref["next_deadline_at"]
        scheduled = row["scheduled_at"]
        assert (scheduled.isoformat() if scheduled else None) == ref["scheduled_at"]
        assert row["duration_minutes"] == ref["duration_minutes"]
        assert row["reschedules"] == ref["reschedules"]
        assert row["offers_withdrawn"] == ref["offers_withdrawn"]


def test_a_declined_or_withdrawn_offer_returns_to_the_state_before_the_offer() -> None:
    for steps, status in (
        (("accept", "offer", "decline_offer"), "accepted"),
        (("accept", "offer", "withdraw_offer"), "accepted"),
        (("accept", "start", "offer", "decline_offer"), "in_progress"),
        (("accept", "start", "offer", "withdraw_offer"), "in_progress"),
    ):
        events = play(*steps)
        assert events[-1].data["status"] == status
        row, _ = fold_all(events)
        assert row is not None
        assert row["status"] == status, steps
        assert row["next_actor"] == "client"
        assert row["next_deadline_at"] is None, "no open offer, no deadline"
        withdrawn = steps[-1] == "withdraw_offer"
        assert (row["offers_declined"], row["offers_withdrawn"]) == (
            (0, 1) if withdrawn else (1, 0)
        )
        assert row["started_at"] is None or "start" in steps


def test_a_reschedule_moves_the_meeting_and_keeps_the_status() -> None:
    events = play("accept", "start", "offer", "reschedule")
    events[2] = events[2].model_copy(
        update={"data": {"scheduled_at": "2026-03-04T15:00:00+01:00", "duration_minutes": 45}}
    )
    started, rescheduled = events[2], events[4]
    row, _ = fold_all(events[:3])
    assert row is not None
    assert row["scheduled_at"] == _utc(started.data["scheduled_at"])
    assert row["duration_minutes"] == started.data["duration_minutes"]
    row, _ = fold_all(events[3:], row)
    assert row is not None
    assert row["status"] == "offer_extended" and row["next_actor"] == "freelancer"
    assert row["scheduled_at"] == _utc(rescheduled.data["scheduled_at"])
    assert row["duration_minutes"] == rescheduled.data["duration_minutes"]
    assert row["reschedules"] == 1 and row["last_event_type"] == "interview.rescheduled"
    # The older start, arriving late (a gap filled), does not move the meeting back.
    gapped, _ = fold_all([events[0], events[1], events[4], events[3], events[2]])
    assert gapped is not None
    assert gapped["scheduled_at"] == row["scheduled_at"]
    assert gapped["status"] == "offer_extended", "the offer filled in sets the status"


def test_who_acts_next_and_the_next_deadline_follow_the_state() -> None:
    events = play("accept", "start", "offer", "accept_offer")
    invited = events[0].model_copy(
        update={"data": {"message": None, "expires_at": "2026-03-05T09:00:00+00:00"}}
    )
    offered = events[3].model_copy(
        update={"data": {**events[3].data, "expires_at": "2026-03-09T09:00:00+00:00"}}
    )
    seen = []
    row = None
    for e in [invited, *events[1:3], offered, events[4]]:
        row = fold(row, e).row
        deadline = row["next_deadline_at"]
        seen.append((row["status"], row["next_actor"], deadline and deadline.isoformat()))
    assert seen == [
        ("invited", "freelancer", "2026-03-05T09:00:00+00:00"),
        ("accepted", "client", None),
        ("in_progress", "client", None),
        ("offer_extended", "freelancer", "2026-03-09T09:00:00+00:00"),
        ("hired", None, None),
    ]


def test_the_funnel_reference_counts_as_started_only_interviews_that_were_started() -> None:
    from tests.support.projections_reference import reference_stats

    offered_at_once = reference_interviews(play("accept", "offer", "decline_offer"))
    stats = reference_stats(offered_at_once.values())
    assert stats["funnel"] == [1, 1, 0, 1, 0]


def test_the_rebuild_skips_what_the_live_consumer_dead_letters() -> None:
    """The rebuild reads the topic with the contract's own decoder: a message the
    live consumer refuses (here a version written as a string, which a lax reading
    takes for the number) is skipped and counted as poison, never folded."""
    import json
    from types import SimpleNamespace

    import pytest
    from kafka import TopicPartition

    from services.contracts import SCHEMA_VERSIONS, UnsupportedEventError, decode_envelope
    from services.projections.adapters.sources import KafkaTopicSource

    good, invited = (next(e for e in synthetic_events(scripts(40)) if e.type == t)
                     for t in ("interview.accepted", "interview.invited"))  # fmt: skip
    bad = json.loads(invited.to_bytes()) | {"schema_version": str(SCHEMA_VERSIONS[invited.type])}
    raw = json.dumps(bad).encode()
    with pytest.raises(UnsupportedEventError):
        decode_envelope(raw)
    tp = TopicPartition("interviews.events", 0)
    messages = [
        SimpleNamespace(offset=0, value=good.to_bytes()),
        SimpleNamespace(offset=1, value=raw),
    ]
    source = object.__new__(KafkaTopicSource)
    source.consumer = SimpleNamespace(poll=lambda **_: {tp: messages})
    source.next, source.poison = {tp: 0}, 0

    assert source._poll(10) == [good]
    assert source.poison == 1
    assert source.next[tp] == 2


def test_folding_in_place_makes_the_row_a_copying_fold_makes() -> None:
    """``in_place`` (the batch writer's rows are its own) changes where the event is
    applied, never what it makes; without it the row handed in stays as it was."""
    rng = random.Random(11)
    plays = [Script(i, "job", "c", f"f{i}", plan) for i, plan in enumerate(FINAL_PLANS)]
    events = synthetic_events(plays)
    for play in plays:
        mine = [e for e in events if e.interview_id == play.interview_id]
        rng.shuffle(mine)  # gaps, fills and stale events alike
        copied: dict[str, Any] | None = None
        in_place: dict[str, Any] | None = None
        for event in mine:
            before = copy.deepcopy(copied)
            folded = fold(copied, event)
            assert copied == before, "a copying fold changed the row it was given"
            copied = folded.row
            in_place = fold(in_place, event, in_place=True).row
            assert in_place == copied
