"""Tables of the read models: one SQLAlchemy Core schema for PostgreSQL and SQLite.

Views live in *generations*: every table of generation N is suffixed ``_gN``.
A rebuild fills generation N+1 while the API reads generation N, then one
transaction moves the pointer in ``pv_meta``; readers read the pointer and the
tables in the same transaction. ``VIEW_SCHEMAS`` holds each view's schema
version: when it differs from the one a generation was built with, a rebuild
is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

VIEW = "interviews"

# Bump a view's number when its table or its folding changes: the next start
# rebuilds every view from the log into a fresh generation.
VIEW_SCHEMAS: dict[str, int] = {
    # 2: schedule, duration, reschedules, who acts next, next deadline, withdrawn
    # offers; a declined or withdrawn offer returns to the state before it.
    "interview_summary": 3,  # 3: personal texts' key ids and erased fields (#17)
    "timeline": 2,  # 2: the personal text's key id and erased fields (#17)
    "job_candidates": 1,
    "freelancer_interviews": 1,
    "stats": 2,  # 2: "started" counts only interviews that were started
    "gaps": 1,
}

meta = sa.MetaData()

# The pointer: which generation the API reads and the live consumer writes.
pv_meta = sa.Table(
    "pv_meta",
    meta,
    sa.Column("view", sa.String(32), primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("swapped_at", sa.DateTime(timezone=True)),
)

pv_generations = sa.Table(
    "pv_generations",
    meta,
    sa.Column("generation", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("schemas", sa.JSON, nullable=False),
    # building -> active -> retired (tables dropped later); failed if a rebuild dies.
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False, default=0),
    sa.Column("events_applied", sa.BigInteger, nullable=False, default=0),
    sa.Column("duplicates", sa.BigInteger, nullable=False, default=0),
    sa.Column("gaps_detected", sa.BigInteger, nullable=False, default=0),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("activated_at", sa.DateTime(timezone=True)),
)


# A generation's counters as the live consumers move them: each process adds a
# batch's counts to the generation's own row when no other batch holds it, else to
# its own row here (``slot``: drawn at random per process), in the batch's
# transaction either way; a later batch of the process folds its row into the
# generation's. A generation's counters are its row plus these (``store``).
pv_generation_counters = sa.Table(
    "pv_generation_counters",
    meta,
    sa.Column("generation", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("slot", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("events_applied", sa.BigInteger, nullable=False),
    sa.Column("duplicates", sa.BigInteger, nullable=False),
    sa.Column("gaps_detected", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class ViewTables:
    generation: int
    interviews: sa.Table
    timeline: sa.Table
    gaps: sa.Table

    @property
    def all(self) -> tuple[sa.Table, ...]:
        return (self.interviews, self.timeline, self.gaps)


_Ts = sa.DateTime(timezone=True)


def _interviews(md: sa.MetaData, g: int) -> sa.Table:
    return sa.Table(
        f"pv_interviews_g{g}",
        md,
        sa.Column("interview_id", sa.String(36), primary_key=True),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("freelancer_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        # Position of the first event seen: the stable sort key of listings.
        sa.Column("created_position", sa.BigInteger, nullable=False),
        sa.Column("last_event_type", sa.String(40), nullable=False),
        sa.Column("updated_at", _Ts, nullable=False),
        sa.Column("invited_at", _Ts),
        sa.Column("invitation_message", sa.Text),
        sa.Column("invitation_message_key_id", sa.String(64)),
        sa.Column("invitation_expires_at", _Ts),
        sa.Column("accepted_at", _Ts),
        sa.Column("declined_at", _Ts),
        sa.Column("decline_reason", sa.Text),
        sa.Column("decline_reason_key_id", sa.String(64)),
        sa.Column("started_at", _Ts),
        sa.Column("scheduled_at", _Ts),
        sa.Column("duration_minutes", sa.Integer),
        sa.Column("schedule_version", sa.Integer, nullable=False),
        sa.Column("reschedules", sa.Integer, nullable=False),
        sa.Column("status_version", sa.Integer, nullable=False),
        # "freelancer" | "client" while the interview is open, else NULL.
        sa.Column("next_actor", sa.String(16)),
        # The open invitation's or offer's expiry.
        sa.Column("next_deadline_at", _Ts),
        sa.Column("first_offer_at", _Ts),
        sa.Column("last_offer_at", _Ts),
        sa.Column("offers_count", sa.Integer, nullable=False),
        sa.Column("offer_version", sa.Integer, nullable=False),
        sa.Column("offer_amount", sa.String(40)),
        sa.Column("offer_currency", sa.String(3)),
        sa.Column("offer_rate_type", sa.String(10)),
        sa.Column("offer_start_date", sa.String(10)),
        sa.Column("offer_expires_at", _Ts),
        sa.Column("offers_declined", sa.Integer, nullable=False),
        sa.Column("offers_withdrawn", sa.Integer, nullable=False),
        sa.Column("hired_at", _Ts),
        sa.Column("cancelled_at", _Ts),
        sa.Column("cancel_reason", sa.Text),
        sa.Column("cancel_reason_key_id", sa.String(64)),
        sa.Column("cancelled_by", sa.String(20)),
        sa.Column("expired_at", _Ts),
        sa.Column("expired_what", sa.String(20)),
        sa.Column("closed_at", _Ts),
        sa.Column("time_to_accept_s", sa.Float),
        sa.Column("time_to_hire_s", sa.Float),
        # Versions skipped by a gap and not (yet) received.
        sa.Column("missing", sa.JSON, nullable=False),
        sa.Column("gaps_detected", sa.Integer, nullable=False),
        # Personal texts erased with their author's keys (API field names).
        sa.Column("erased_fields", sa.JSON, nullable=False),
        sa.Index(f"ix_pv_interviews_g{g}_created", "created_position", "interview_id"),
        sa.Index(f"ix_pv_interviews_g{g}_job", "job_id", "created_position"),
        sa.Index(f"ix_pv_interviews_g{g}_client", "client_id", "created_position"),
        sa.Index(f"ix_pv_interviews_g{g}_freelancer", "freelancer_id", "created_position"),
        sa.Index(f"ix_pv_interviews_g{g}_status", "status", "created_position"),
        sa.Index(f"ix_pv_interviews_g{g}_tta", "time_to_accept_s"),
        sa.Index(f"ix_pv_interviews_g{g}_tth", "time_to_hire_s"),
    )


def _timeline(md: sa.MetaData, g: int) -> sa.Table:
    return sa.Table(
        f"pv_timeline_g{g}",
        md,
        sa.Column("interview_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("occurred_at", _Ts, nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("actor_role", sa.String(20), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        # The data key the personal text in ``data`` was sealed with; erased fields.
        sa.Column("key_id", sa.String(64)),
        sa.Column("erased_fields", sa.JSON, nullable=False),
        sa.Index(f"ix_pv_timeline_g{g}_position", "position"),
        sa.Index(f"ix_pv_timeline_g{g}_key", "key_id"),
    )


def _gaps(md: sa.MetaData, g: int) -> sa.Table:
    return sa.Table(
        f"pv_gaps_g{g}",
        md,
        sa.Column("interview_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        # The event that revealed the gap.
        sa.Column("detected_by_version", sa.Integer, nullable=False),
        sa.Column("detected_at_position", sa.BigInteger, nullable=False),
        sa.Column("detected_at", _Ts, nullable=False),
        sa.Column("filled_at", _Ts),
    )


_cache: dict[int, ViewTables] = {}


def view_tables(generation: int) -> ViewTables:
    """The tables of one generation, as the code defines them (cached)."""
    tables = _cache.get(generation)
    if tables is None:
        md = sa.MetaData()
        g = generation
        tables = ViewTables(g, _interviews(md, g), _timeline(md, g), _gaps(md, g))
        _cache[generation] = tables
    return tables


def reflected_tables(conn: sa.Connection, generation: int) -> ViewTables:
    """An older generation's tables as they are in the database (another schema)."""
    md = sa.MetaData()
    names = view_tables(generation)
    return ViewTables(
        generation,
        *(sa.Table(t.name, md, autoload_with=conn) for t in names.all),
    )


def column(table: sa.Table, name: str) -> Any:
    """``table.c[name]``, or NULL when an older schema lacks the column."""
    col = table.c.get(name)
    return col if col is not None else sa.null().label(name)
