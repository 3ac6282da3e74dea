"""An independent reference for the projections: scripted interviews and a
straightforward fold of their events that every projection test compares the
real views with.

The reference is written differently from ``services.projections.fold`` on
purpose: it keeps every event, deduplicates by version, and derives each
field from the whole sorted history at the end, instead of folding
incrementally. Projection tests import it from here; its own checks are in
``tests/unit/test_projections_reference.py``.
"""

from __future__ import annotations

import random
import statistics
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.contracts import SCHEMA_VERSIONS, EventEnvelope

# ------------------------------------------------------------------ scripts

# Each plan is the list of steps after the invitation. Together they take
# every transition of DESIGN's table, and leave some interviews open.
FINAL_PLANS: tuple[tuple[str, ...], ...] = (
    ("decline",),
    ("expire_invitation",),
    ("cancel_client",),
    ("accept", "cancel_freelancer"),
    ("accept", "start", "offer", "accept_offer"),
    ("accept", "offer", "decline_offer", "offer", "accept_offer"),
    ("accept", "start", "offer", "expire_offer"),
    ("accept", "start", "offer", "decline_offer", "cancel_client"),
    ("accept", "start", "reschedule", "offer", "withdraw_offer", "reschedule", "cancel_client"),
    ("accept", "offer", "withdraw_offer", "start", "offer", "reschedule", "accept_offer"),
    ("accept", "start", "close_job"),
    ("close_job",),
)
# A freelancer hired for a job is not invited to it again (409 already_hired).
REINVITABLE_PLANS = tuple(p for p in FINAL_PLANS if p[-1] != "accept_offer")
OPEN_PLANS: tuple[tuple[str, ...], ...] = (
    (),
    ("accept",),
    ("accept", "start"),
    ("accept", "start", "offer"),
    ("accept", "start", "offer", "decline_offer"),
    ("accept", "offer", "decline_offer"),
    ("accept", "offer", "withdraw_offer"),
    ("accept", "start", "reschedule"),
    ("accept", "start", "offer", "reschedule"),
)
CANCEL_REASONS = ("budget cut", "position filled", "no show", "found someone else")

STEP_TYPES = {
    "invite": "interview.invited",
    "accept": "interview.accepted",
    "decline": "interview.declined",
    "start": "interview.started",
    "offer": "interview.offer_extended",
    "accept_offer": "interview.offer_accepted",
    "decline_offer": "interview.offer_declined",
    "cancel_client": "interview.cancelled",
    "cancel_freelancer": "interview.cancelled",
    "expire_invitation": "interview.expired",
    "expire_offer": "interview.expired",
    "reschedule": "interview.rescheduled",
    "withdraw_offer": "interview.offer_withdrawn",
    "close_job": "interview.cancelled",
}
FREELANCER_STEPS = {"accept", "decline", "accept_offer", "decline_offer", "cancel_freelancer"}


@dataclass
class Script:
    """One interview to play: who, and the steps after the invitation."""

    index: int
    job_id: str
    client_id: str
    freelancer_id: str
    steps: tuple[str, ...]
    interview_id: uuid.UUID | None = None


def scripts(n: int, seed: int = 4, steps: frozenset[str] | None = None) -> list[Script]:
    """``n`` interviews on n/10 jobs; the last tenth re-invites freelancers of
    the first tenth to the same job after their first interview closed (without
    a hiring: a hired freelancer is not invited to the job again).
    ``steps``: only plans made of these steps (a player that knows no others)."""
    final = tuple(p for p in FINAL_PLANS if steps is None or set(p) <= steps)
    reinvitable = tuple(p for p in REINVITABLE_PLANS if steps is None or set(p) <= steps)
    still_open = tuple(p for p in OPEN_PLANS if steps is None or set(p) <= steps)
    rng = random.Random(seed)
    jobs = max(1, n // 10)
    repeat = n // 10
    out = []
    for i in range(n):
        job = i % jobs
        if i >= n - repeat:
            first = out[i - (n - repeat)]
            job_id, client_id, freelancer_id = first.job_id, first.client_id, first.freelancer_id
        else:
            job_id, client_id, freelancer_id = f"job-{job}", f"client-{job % 7}", f"fl-{i}"
        # (The first tenth draws no number: the same seed gives the same scripts.)
        plans = reinvitable if i < repeat else final if rng.random() < 0.75 else still_open
        out.append(Script(i, job_id, client_id, freelancer_id, rng.choice(plans)))
    return out


def actor_of(step: str, script: Script) -> tuple[str, str]:
    if step.startswith("expire"):
        return ("system", "system")
    if step in FREELANCER_STEPS:
        return (script.freelancer_id, "freelancer")
    return (script.client_id, "client")


@dataclass
class Memo:
    """What a script's later steps need to know of its earlier ones."""

    status: str = "invited"
    before_offer: str = "accepted"
    scheduled_at: str | None = None


def _deadline(rng: random.Random, at: datetime) -> str | None:
    return (at + timedelta(hours=rng.choice((48, 72)))).isoformat() if rng.random() < 0.5 else None


def step_data(
    step: str, rng: random.Random, at: datetime | None = None, memo: Memo | None = None
) -> dict[str, Any]:
    at = at or datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    memo = memo or Memo()
    if step == "invite":
        return {"message": "interested?", "expires_at": _deadline(rng, at)}
    if step == "decline":
        return {"reason": "busy"}
    if step == "start":
        scheduled = (
            (at + timedelta(days=rng.randint(1, 9))).isoformat() if rng.random() < 0.7 else None
        )
        memo.scheduled_at = scheduled
        return {"scheduled_at": scheduled, "duration_minutes": rng.choice((30, 45, 60))}
    if step == "reschedule":
        previous, memo.scheduled_at = memo.scheduled_at, (at + timedelta(days=2)).isoformat()
        return {
            "scheduled_at": memo.scheduled_at,
            "duration_minutes": rng.choice((15, 30, 90)),
            "previous_scheduled_at": previous,
            "reason": rng.choice((None, "a clash")),
        }
    if step == "offer":
        memo.before_offer = memo.status
        return {
            "amount": str(rng.choice([500, 1200, 3000])),
            "currency": rng.choice(["EUR", "USD"]),
            "rate_type": rng.choice(["fixed", "hourly"]),
            "start_date": None,
            "message": None,
            "expires_at": _deadline(rng, at),
        }
    if step == "decline_offer":
        return {"reason": "too low", "status": memo.before_offer}
    if step == "withdraw_offer":
        return {"reason": rng.choice((None, "budget frozen")), "status": memo.before_offer}
    if step == "close_job":
        return {"reason": "job closed", "cancelled_by": "client", "job_closed": True}
    if step.startswith("cancel"):
        return {
            "reason": rng.choice(CANCEL_REASONS),
            "cancelled_by": step.split("_")[1],
            "job_closed": False,
        }
    if step.startswith("expire"):
        return {"what": step.split("_")[1]}
    return {}


def synthetic_events(
    plays: list[Script], seed: int = 9, start: datetime | None = None
) -> list[EventEnvelope]:
    """The envelopes the event store would publish for ``plays``, interleaved
    across interviews in a random order (each interview's own order kept), with
    positions that skip numbers (other aggregates' notifications)."""
    rng = random.Random(seed)
    at = start or datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    queues: dict[int, list[str]] = {}
    done_before: dict[tuple[str, str], int] = {}
    for s in plays:
        s.interview_id = s.interview_id or uuid.UUID(int=rng.getrandbits(128), version=4)
        queues[s.index] = ["invite", *s.steps]
    # A re-invitation waits until the first interview of its pair is closed.
    for s in plays:
        key = (s.job_id, s.freelancer_id)
        if key in done_before:
            queues[s.index] = ["wait"] + queues[s.index]
        else:
            done_before[key] = s.index
    by_index = {s.index: s for s in plays}
    versions: dict[int, int] = {}
    memos: dict[int, Memo] = {}
    position = 0
    events = []
    while queues:
        index = rng.choice(list(queues))
        script = by_index[index]
        step = queues[index][0]
        if step == "wait":
            first = done_before[(script.job_id, script.freelancer_id)]
            if first in queues:
                continue
            queues[index].pop(0)
            continue
        queues[index].pop(0)
        if not queues[index]:
            del queues[index]
        position += rng.choice((1, 1, 1, 2, 3))
        at += timedelta(minutes=rng.randint(1, 600))
        versions[index] = versions.get(index, 0) + 1
        actor_id, role = actor_of(step, script)
        assert script.interview_id is not None
        memo = memos.setdefault(index, Memo())
        data = step_data(step, rng, at, memo)
        memo.status = REF_STATUS.get(STEP_TYPES[step]) or data.get("status") or memo.status
        events.append(
            EventEnvelope(
                id=uuid.uuid5(script.interview_id, str(versions[index])),
                type=STEP_TYPES[step],  # type: ignore[arg-type]
                schema_version=SCHEMA_VERSIONS[STEP_TYPES[step]],
                interview_id=script.interview_id,
                version=versions[index],
                position=position,
                occurred_at=at,
                actor={"id": actor_id, "role": role},  # type: ignore[arg-type]
                job_id=script.job_id,
                client_id=script.client_id,
                freelancer_id=script.freelancer_id,
                correlation_id=f"corr-{position}",
                causation_id=f"cause-{position}",
                data=data,
            )
        )
    return events


def shuffled_across_interviews(
    events: list[EventEnvelope], seed: int = 3, duplicate: float = 0.0
) -> list[EventEnvelope]:
    """A delivery order that mixes interviews (keeping each one's order, as
    Kafka partitions by interview) and repeats some events."""
    rng = random.Random(seed)
    queues: dict[uuid.UUID, list[EventEnvelope]] = {}
    for e in events:
        queues.setdefault(e.interview_id, []).append(e)
        if rng.random() < duplicate:
            queues[e.interview_id].append(e)
    out = []
    while queues:
        key = rng.choice(list(queues))
        out.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
    return out


def batches(events: list[EventEnvelope], size: int) -> Iterator[list[EventEnvelope]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


# ------------------------------------------------------------ reference fold

# The event types that set a fixed status. A declined or withdrawn offer returns to
# the state named in its data; a reschedule leaves the status as it is.
REF_STATUS = {
    "interview.invited": "invited",
    "interview.accepted": "accepted",
    "interview.declined": "declined",
    "interview.started": "in_progress",
    "interview.offer_extended": "offer_extended",
    "interview.offer_accepted": "hired",
    "interview.cancelled": "cancelled",
    "interview.expired": "expired",
}
RETURNING = ("interview.offer_declined", "interview.offer_withdrawn")
REF_NEXT_ACTOR = {
    "invited": "freelancer",
    "accepted": "client",
    "in_progress": "client",
    "offer_extended": "freelancer",
}


def _ref_status(history: list[EventEnvelope]) -> str:
    status = "in_progress"  # only reschedules known: what a reschedule most often finds
    for e in history:
        if e.type in REF_STATUS:
            status = REF_STATUS[e.type]
        elif e.type in RETURNING:
            status = e.data.get("status", "in_progress")
    return status


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def reference_interviews(events: Iterable[EventEnvelope]) -> dict[str, dict[str, Any]]:
    """Interview id -> the fields a view must show, from the whole history."""
    histories: dict[str, dict[int, EventEnvelope]] = {}
    for e in events:
        histories.setdefault(str(e.interview_id), {}).setdefault(e.version, e)
    out = {}
    for interview_id, by_version in histories.items():
        history = [by_version[v] for v in sorted(by_version)]
        last = history[-1]

        def first(kind: str, history: list[EventEnvelope] = history) -> EventEnvelope | None:
            return next((e for e in history if e.type == kind), None)

        def when(e: EventEnvelope | None) -> str | None:
            return _iso(e.occurred_at) if e is not None else None

        invited, accepted = first("interview.invited"), first("interview.accepted")
        hired, cancelled = first("interview.offer_accepted"), first("interview.cancelled")
        offers = [e for e in history if e.type == "interview.offer_extended"]
        t_invited = invited.occurred_at if invited else None
        schedules = [e for e in history if e.type in ("interview.started", "interview.rescheduled")]
        status = _ref_status(history)
        deadline = None
        if status == "invited" and invited is not None:
            deadline = invited.data.get("expires_at")
        elif status == "offer_extended" and offers:
            deadline = offers[-1].data.get("expires_at")
        out[interview_id] = {
            "id": interview_id,
            "job_id": last.job_id,
            "client_id": last.client_id,
            "freelancer_id": last.freelancer_id,
            "status": status,
            "next_actor": REF_NEXT_ACTOR.get(status),
            "next_deadline_at": _iso(deadline),
            "scheduled_at": _iso(schedules[-1].data.get("scheduled_at")) if schedules else None,
            "duration_minutes": (
                schedules[-1].data.get("duration_minutes", 30) if schedules else None
            ),
            "reschedules": sum(e.type == "interview.rescheduled" for e in history),
            "version": last.version,
            "position": last.position,
            "invited_at": when(invited),
            "accepted_at": when(accepted),
            "started_at": when(first("interview.started")),
            "hired_at": when(hired),
            "cancellation": (
                {
                    "reason": cancelled.data["reason"],
                    "by": cancelled.data.get("cancelled_by", cancelled.actor.role),
                }
                if cancelled
                else None
            ),
            "decline_reason": (
                d.data.get("reason") if (d := first("interview.declined")) else None
            ),
            "expired_what": (x.data["what"] if (x := first("interview.expired")) else None),
            "offers": len(offers),
            "offers_declined": sum(e.type == "interview.offer_declined" for e in history),
            "offers_withdrawn": sum(e.type == "interview.offer_withdrawn" for e in history),
            "offer_terms": (
                (
                    str(offers[-1].data["amount"]),
                    offers[-1].data["currency"],
                    offers[-1].data["rate_type"],
                )
                if offers
                else None
            ),
            "time_to_accept": (
                round((accepted.occurred_at - t_invited).total_seconds(), 3)
                if accepted and t_invited
                else None
            ),
            "time_to_hire": (
                round((hired.occurred_at - t_invited).total_seconds(), 3)
                if hired and t_invited
                else None
            ),
            "missing_versions": [v for v in range(1, last.version + 1) if v not in by_version],
            "timeline": [(e.version, e.type, e.position, str(e.id)) for e in history],
            "created_position": min(e.position for e in history),
        }
    return out


def normalize_api_interview(
    item: dict[str, Any], timeline: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The same fields, taken from an API response (``/views/interviews/{id}``)."""
    offer = item["offer"]
    cancellation = item["cancellation"]
    tta, tth = item["time_to_accept_seconds"], item["time_to_hire_seconds"]
    out = {
        "id": item["id"],
        "job_id": item["job_id"],
        "client_id": item["client_id"],
        "freelancer_id": item["freelancer_id"],
        "status": item["status"],
        "next_actor": item["next_actor"],
        "next_deadline_at": _iso(item["next_deadline_at"]),
        "scheduled_at": _iso(item["scheduled_at"]),
        "duration_minutes": item["duration_minutes"],
        "reschedules": item["reschedules"],
        "version": item["version"],
        "position": item["position"],
        "invited_at": _iso(item["invited_at"]),
        "accepted_at": _iso(item["accepted_at"]),
        "started_at": _iso(item["started_at"]),
        "hired_at": _iso(item["hired_at"]),
        "cancellation": (
            {"reason": cancellation["reason"], "by": cancellation["by"]} if cancellation else None
        ),
        "decline_reason": item["decline_reason"],
        "expired_what": item["expired_what"],
        "offers": offer["offers_extended"] if offer else 0,
        "offers_declined": offer["offers_declined"] if offer else 0,
        "offers_withdrawn": offer["offers_withdrawn"] if offer else 0,
        "offer_terms": (offer["amount"], offer["currency"], offer["rate_type"]) if offer else None,
        "time_to_accept": round(tta, 3) if tta is not None else None,
        "time_to_hire": round(tth, 3) if tth is not None else None,
        "missing_versions": item["missing_versions"],
    }
    if timeline is not None:
        out["timeline"] = [
            (t["version"], t["type"], t["position"], t["event_id"]) for t in timeline
        ]
    return out


def without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def reference_candidates(
    interviews: dict[str, dict[str, Any]], job_id: str
) -> list[dict[str, Any]]:
    mine = sorted(
        (i for i in interviews.values() if i["job_id"] == job_id),
        key=lambda i: (i["created_position"], i["id"]),
    )
    board: dict[str, dict[str, Any]] = {}
    for i in mine:
        entry = board.setdefault(i["freelancer_id"], {"times_invited": 0})
        entry.update(
            freelancer_id=i["freelancer_id"],
            status=i["status"],
            interview_id=i["id"],
            version=i["version"],
        )
        entry["times_invited"] += 1
    return list(board.values())


def reference_stats(interviews: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = list(interviews)
    statuses = (
        "invited",
        "accepted",
        "declined",
        "in_progress",
        "offer_extended",
        "hired",
        "cancelled",
        "expired",
    )
    by_status = {s: sum(r["status"] == s for r in rows) for s in statuses}

    def passed(r: dict[str, Any], *stages: str) -> bool:
        kinds = {t[1] for t in r["timeline"]}
        return any(f"interview.{s}" in kinds for s in stages)

    counts = [
        len(rows),
        sum(passed(r, "accepted", "started", "offer_extended", "offer_accepted") for r in rows),
        # Only interviews that were started: an offer may follow acceptance directly.
        sum(passed(r, "started") for r in rows),
        sum(passed(r, "offer_extended", "offer_accepted") for r in rows),
        sum(passed(r, "offer_accepted") for r in rows),
    ]
    tta = [r["time_to_accept"] for r in rows if r["time_to_accept"] is not None]
    tth = [r["time_to_hire"] for r in rows if r["time_to_hire"] is not None]
    reasons: dict[str, int] = {}
    parties: dict[str, int] = {}
    expirations: dict[str, int] = {}
    for r in rows:
        if r["status"] == "cancelled":
            reasons[r["cancellation"]["reason"]] = reasons.get(r["cancellation"]["reason"], 0) + 1
            parties[r["cancellation"]["by"]] = parties.get(r["cancellation"]["by"], 0) + 1
        if r["status"] == "expired":
            expirations[r["expired_what"]] = expirations.get(r["expired_what"], 0) + 1
    return {
        "total": len(rows),
        "by_status": by_status,
        "funnel": counts,
        "median_accept": round(statistics.median(tta), 3) if tta else None,
        "median_hire": round(statistics.median(tth), 3) if tth else None,
        "cancel_reasons": reasons,
        "cancel_parties": parties,
        "expirations": expirations,
    }


def assert_stats_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Statistics equal the reference's. Medians may differ by a millisecond: the
    reference takes the median of durations already rounded to milliseconds, so
    with an even count the mean of the two middle values can round the other way."""
    got, want = dict(got), dict(want)
    for median in ("median_accept", "median_hire"):
        a, b = got.pop(median), want.pop(median)
        assert (a is None) == (b is None), (median, a, b)
        assert a is None or abs(a - b) <= 0.0015, (median, a, b)
    assert got == want


def normalize_api_stats(stats: dict[str, Any]) -> dict[str, Any]:
    tta, tth = stats["time_to_accept"]["median_seconds"], stats["time_to_hire"]["median_seconds"]
    return {
        "total": stats["total"],
        "by_status": stats["by_status"],
        "funnel": [f["count"] for f in stats["funnel"]],
        "median_accept": round(tta, 3) if tta is not None else None,
        "median_hire": round(tth, 3) if tth is not None else None,
        "cancel_reasons": {r["reason"]: r["count"] for r in stats["cancellations"]["by_reason"]},
        "cancel_parties": stats["cancellations"]["by_party"],
        "expirations": stats["expirations"],
    }


# ------------------------------------------------------- comparing an API


def all_interviews(api: Any, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 97, **params} | ({"cursor": cursor} if cursor else {})
        page = api.get("/views/interviews", params=query, headers=headers)
        assert page.status_code == 200, page.text
        items.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def assert_views_equal_reference(
    api: Any,
    token: Callable[[str, str], dict[str, str]],
    events: list[EventEnvelope],
    details: int = 60,
    boards: int = 5,
) -> None:
    auditor = token("audit-1", "auditor")
    expected = reference_interviews(events)
    listed = all_interviews(api, auditor)
    assert len(listed) == len(expected)
    # Newest first, by each interview's first event.
    order = sorted(expected.values(), key=lambda i: (i["created_position"], i["id"]), reverse=True)
    assert [i["id"] for i in listed] == [i["id"] for i in order]
    for item in listed:
        assert normalize_api_interview(item, None) == without(
            expected[item["id"]], "timeline", "created_position"
        )
    for item in listed[:details]:
        detail = api.get(f"/views/interviews/{item['id']}", headers=auditor).json()
        assert normalize_api_interview(detail, detail["timeline"]) == without(
            expected[item["id"]], "created_position"
        )
    stats = api.get("/views/stats", headers=auditor).json()
    assert_stats_equal(normalize_api_stats(stats), reference_stats(expected.values()))
    for job_id in sorted({i["job_id"] for i in expected.values()})[:boards]:
        board = api.get(f"/views/jobs/{job_id}/candidates", headers=auditor).json()
        got = [
            {
                k: c[k]
                for k in ("freelancer_id", "status", "interview_id", "version", "times_invited")
            }
            for c in board["candidates"]
        ]
        assert got == reference_candidates(expected, job_id)
