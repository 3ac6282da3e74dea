"""Reading the read models (one generation's tables, inside the caller's transaction)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ...common.auth import Principal
from ..fold import FINAL_STATUSES, STATUSES
from .schema import ViewTables, column
from .store import _utc, row_from_db


class InvalidCursorError(ValueError):
    pass


@dataclass(frozen=True)
class Scope:
    """What a caller may see: clients their jobs' interviews, freelancers their
    own, auditors and admins everything (both ids ``None``), any other role
    (the marketplace's services) nothing."""

    client_id: str | None = None
    freelancer_id: str | None = None
    nothing: bool = False

    @classmethod
    def of(cls, principal: Principal) -> Scope:
        if principal.is_reader:
            return cls()
        if principal.role == "client":
            return cls(client_id=principal.id)
        if principal.role == "freelancer":
            return cls(freelancer_id=principal.id)
        return cls(nothing=True)

    def clauses(self, t: sa.Table) -> list[Any]:
        if self.nothing:
            return [sa.false()]
        out = []
        if self.client_id is not None:
            out.append(t.c.client_id == self.client_id)
        if self.freelancer_id is not None:
            out.append(t.c.freelancer_id == self.freelancer_id)
        return out


# ----------------------------------------------------------------- cursors


def encode_cursor(created_position: int, interview_id: str) -> str:
    raw = f"{created_position}:{interview_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        position, _, interview_id = raw.partition(":")
        if not interview_id or len(interview_id) > 36 or not position.isdigit():
            raise ValueError(raw)
        return int(position), interview_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursorError("cursor is not one this API returned") from None


# ------------------------------------------------------------- interviews


def list_interviews(
    conn: sa.Connection,
    tables: ViewTables,
    scope: Scope,
    *,
    status: str | None = None,
    job_id: str | None = None,
    client_id: str | None = None,
    freelancer_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first (by the position of each interview's first event), stable
    under concurrent inserts: a cursor continues after the last item it saw."""
    t = tables.interviews
    where = scope.clauses(t)
    for name, value in (
        ("status", status),
        ("job_id", job_id),
        ("client_id", client_id),
        ("freelancer_id", freelancer_id),
    ):
        if value is not None:
            where.append(t.c[name] == value)
    if cursor is not None:
        position, interview_id = decode_cursor(cursor)
        where.append(
            sa.or_(
                t.c.created_position < position,
                sa.and_(t.c.created_position == position, t.c.interview_id < interview_id),
            )
        )
    query = (
        sa.select(t)
        .where(*where)
        .order_by(t.c.created_position.desc(), t.c.interview_id.desc())
        .limit(limit + 1)
    )
    rows = [row_from_db(r) for r in conn.execute(query)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_position"], rows[-1]["interview_id"])
    return rows, next_cursor


def get_interview(
    conn: sa.Connection, tables: ViewTables, scope: Scope, interview_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    t = tables.interviews
    record = conn.execute(
        sa.select(t).where(t.c.interview_id == interview_id, *scope.clauses(t))
    ).first()
    if record is None:
        return None
    tl = tables.timeline
    timeline = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(tl).where(tl.c.interview_id == interview_id).order_by(tl.c.version)
        )
    ]
    for entry in timeline:
        entry["data"] = json.loads(entry["data"])
        entry["occurred_at"] = _utc(entry["occurred_at"])
    return row_from_db(record), timeline


def job_candidates(
    conn: sa.Connection, tables: ViewTables, scope: Scope, job_id: str
) -> list[dict[str, Any]]:
    """Every freelancer invited to the job, in the order first contacted; each
    with their latest interview and how many times they were invited."""
    t = tables.interviews
    rows = [
        row_from_db(r)
        for r in conn.execute(
            sa.select(t)
            .where(t.c.job_id == job_id, *scope.clauses(t))
            .order_by(t.c.created_position, t.c.interview_id)
        )
    ]
    board: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = board.get(row["freelancer_id"])
        if entry is None:
            board[row["freelancer_id"]] = {
                "first_invited_position": row["created_position"],
                "interviews": 1,
                "latest": row,
            }
        else:
            entry["interviews"] += 1
            entry["latest"] = row
    return list(board.values())


def recent_activity(
    conn: sa.Connection, tables: ViewTables, scope: Scope, limit: int = 20
) -> list[dict[str, Any]]:
    tl, t = tables.timeline, tables.interviews
    query = (
        sa.select(
            tl.c.interview_id,
            tl.c.version,
            tl.c.position,
            tl.c.type,
            tl.c.occurred_at,
            tl.c.actor_id,
            tl.c.actor_role,
            t.c.job_id,
            t.c.client_id,
            t.c.freelancer_id,
        )
        .select_from(tl.join(t, tl.c.interview_id == t.c.interview_id))
        .where(*scope.clauses(t))
        .order_by(tl.c.position.desc(), tl.c.interview_id)
        .limit(limit)
    )
    out = []
    for r in conn.execute(query):
        entry = dict(r._mapping)
        entry["occurred_at"] = _utc(entry["occurred_at"])
        out.append(entry)
    return out


def has_position(conn: sa.Connection, tables: ViewTables, position: int) -> bool:
    """Whether the event at global ``position`` is in the views."""
    tl = tables.timeline
    return (
        conn.execute(sa.select(tl.c.position).where(tl.c.position == position).limit(1)).first()
        is not None
    )


# ------------------------------------------------------------------ stats


def _median(
    conn: sa.Connection, t: sa.Table, name: str, where: list[Any]
) -> tuple[float | None, int]:
    col = column(t, name)
    if not isinstance(col, sa.Column):
        return None, 0
    n = conn.execute(sa.select(sa.func.count(col)).where(*where)).scalar() or 0
    if n == 0:
        return None, 0
    values = [
        float(v)
        for v in conn.execute(
            sa.select(col)
            .where(col.is_not(None), *where)
            .order_by(col)
            .offset((n - 1) // 2)
            .limit(1 if n % 2 else 2)
        ).scalars()
    ]
    return sum(values) / len(values), n


def _reached(*columns: Any) -> Any:
    return sa.func.sum(sa.case((sa.or_(*(c.is_not(None) for c in columns)), 1), else_=0))


FUNNEL = ("invited", "accepted", "started", "offer", "hired")
# The stage each rate is relative to. An offer may be extended from ``accepted`` as
# well as from ``in_progress``, so offers are measured against acceptances, and
# "started" counts only interviews that were started (an ``interview.started``).
PREVIOUS_STAGE = {"accepted": 0, "started": 1, "offer": 1, "hired": 3}


def stats(conn: sa.Connection, tables: ViewTables, scope: Scope) -> dict[str, Any]:
    t = tables.interviews
    where = scope.clauses(t)
    by_status = {s: 0 for s in STATUSES}
    for status, count in conn.execute(
        sa.select(t.c.status, sa.func.count()).where(*where).group_by(t.c.status)
    ):
        by_status[status] = int(count)
    accepted, started, offered, hired = (
        column(t, n) for n in ("accepted_at", "started_at", "first_offer_at", "hired_at")
    )
    funnel_row = conn.execute(
        sa.select(
            sa.func.count(),
            _reached(accepted, started, offered, hired),
            _reached(started),
            _reached(offered, hired),
            _reached(hired),
        ).where(*where)
    ).one()
    counts = [int(v or 0) for v in funnel_row]
    funnel = []
    for i, stage in enumerate(FUNNEL):
        previous = counts[PREVIOUS_STAGE.get(stage, 0)]
        funnel.append(
            {
                "stage": stage,
                "count": counts[i],
                "rate_from_previous": _rate(counts[i], previous),
                "rate_from_invited": _rate(counts[i], counts[0]),
            }
        )
    tta, tta_n = _median(conn, t, "time_to_accept_s", where)
    tth, tth_n = _median(conn, t, "time_to_hire_s", where)
    cancelled = [t.c.status == "cancelled", *where]
    by_reason = [
        {"reason": reason, "count": int(count)}
        for reason, count in conn.execute(
            sa.select(column(t, "cancel_reason"), sa.func.count().label("n"))
            .where(*cancelled)
            .group_by(column(t, "cancel_reason"))
            .order_by(sa.desc("n"), column(t, "cancel_reason"))
            .limit(10)
        )
    ]
    by_party = {
        str(party): int(count)
        for party, count in conn.execute(
            sa.select(column(t, "cancelled_by"), sa.func.count())
            .where(*cancelled)
            .group_by(column(t, "cancelled_by"))
        )
    }
    expirations = {
        str(what): int(count)
        for what, count in conn.execute(
            sa.select(column(t, "expired_what"), sa.func.count())
            .where(t.c.status == "expired", *where)
            .group_by(column(t, "expired_what"))
        )
    }
    gaps_row = conn.execute(
        sa.select(
            sa.func.sum(sa.case((column(t, "gaps_detected") > 0, 1), else_=0)),
            sa.func.sum(column(t, "gaps_detected")),
        ).where(*where)
    ).one()
    g = tables.gaps
    still_missing = conn.execute(
        sa.select(sa.func.count())
        .select_from(g.join(t, g.c.interview_id == t.c.interview_id))
        .where(g.c.filled_at.is_(None), *where)
    ).scalar()
    total = counts[0]
    return {
        "total": total,
        "open": sum(v for k, v in by_status.items() if k not in FINAL_STATUSES),
        "by_status": by_status,
        "funnel": funnel,
        "time_to_accept": {"median_seconds": tta, "count": tta_n},
        "time_to_hire": {"median_seconds": tth, "count": tth_n},
        "cancellations": {
            "total": by_status["cancelled"],
            "by_reason": by_reason,
            "by_party": by_party,
        },
        "expirations": expirations,
        "gaps": {
            "interviews_with_gaps": int(gaps_row[0] or 0),
            "versions_skipped": int(gaps_row[1] or 0),
            "versions_still_missing": int(still_missing or 0),
        },
    }


def _rate(count: int, previous: int | None) -> float | None:
    if not previous:
        return None
    return round(count / previous, 4)
