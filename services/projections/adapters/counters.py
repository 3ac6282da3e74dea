"""A generation's position and counters, which every batch moves on.

They live in the generation's row (``pv_generations``) and, for live consumers
running side by side, in rows of their own beside it
(``pv_generation_counters``): a reader adds them up (``GENERATION_COLUMNS``), a
writer moves them in its batch's transaction (``count_batch``), so they stay
exact whatever is replayed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ...common.pipeline import RETURNS_NO_ROWS
from .schema import pv_generation_counters, pv_generations


def _generation_columns() -> tuple[Any, ...]:
    """A generation's columns, its counters being its row's plus its counters rows'
    (``pv_generation_counters``): what every reader of a generation selects."""
    g, c = pv_generations.c, pv_generation_counters.c

    def aside(of: Any) -> Any:
        return (
            sa.select(sa.func.coalesce(of, 0)).where(c.generation == g.generation).scalar_subquery()
        )

    position = aside(sa.func.max(c.position))
    return (
        g.generation,
        g.schemas,
        g.state,
        sa.case((position > g.position, position), else_=g.position).label("position"),
        (g.events_applied + aside(sa.func.sum(c.events_applied))).label("events_applied"),
        (g.gaps_detected + aside(sa.func.sum(c.gaps_detected))).label("gaps_detected"),
    )


GENERATION_COLUMNS = _generation_columns()


def count_batch(
    conn: sa.Connection,
    generation: int,
    position: int,
    counts: tuple[int, int, int],
    slot: int | None,
) -> None:
    """Moves generation ``generation``'s position on to ``position`` (if higher) and
    its counters on by a batch's ``counts`` (applied, duplicates, gaps), in
    the batch's transaction (so they stay exact whatever is replayed).

    The generation's row would serialise the live consumers: its lock is held to
    the batch's COMMIT. So on PostgreSQL a writer with a ``slot`` takes it only if
    no other batch holds it (SKIP LOCKED), and then also folds its own row of
    ``pv_generation_counters`` into it; else it adds to that row, which nobody else
    writes (readers add both, so the move changes no total; a release that reads
    only the generation's row sees the counts of a slot once folded). All of it is
    ONE statement that returns no rows (``_COUNT_OR_ASIDE``): in a ``pipelined``
    transaction it goes with the COMMIT instead of costing a round trip of its own.
    SQLite writes one transaction at a time."""
    applied, duplicates, gaps = counts
    params = {
        "g": generation,
        "max_position": position,
        "applied": applied,
        "duplicates": duplicates,
        "gaps": gaps,
    }
    if slot is None or conn.dialect.name != "postgresql":
        conn.execute(_COUNT_APPLIED, params)
        return
    conn.execute(_COUNT_OR_ASIDE, params | {"slot": slot})


def _count_applied() -> sa.Update:
    """The generation's position and counters moved on by a batch (built once)."""
    g = pv_generations.c
    highest = sa.bindparam("max_position", type_=sa.BigInteger)
    return (
        sa.update(pv_generations)
        .where(g.generation == sa.bindparam("g"))
        .values(
            position=sa.case((g.position < highest, highest), else_=g.position),
            events_applied=g.events_applied + sa.bindparam("applied", type_=sa.BigInteger),
            duplicates=g.duplicates + sa.bindparam("duplicates", type_=sa.BigInteger),
            gaps_detected=g.gaps_detected + sa.bindparam("gaps", type_=sa.BigInteger),
        )
    )


_COUNT_APPLIED = _count_applied()
# PostgreSQL, for a writer with a slot: the generation's row locked unless another
# batch holds it (``held``, evaluated once: it is referenced three times); if held
# here, the writer's own counters row is deleted (``folded``) and the batch's counts
# and that row's go into the generation's row; if not, the batch's counts are added
# to the writer's row. Data-modifying CTEs see one snapshot and talk only through
# RETURNING, which is how ``counted`` learns what ``folded`` took.
_COUNT_OR_ASIDE = (
    sa.text(
        """
    WITH held AS (
        SELECT generation FROM pv_generations
        WHERE generation = :g
        FOR UPDATE SKIP LOCKED
    ), folded AS (
        DELETE FROM pv_generation_counters c USING held
        WHERE c.generation = held.generation AND c.slot = :slot
        RETURNING c.position, c.events_applied, c.duplicates, c.gaps_detected
    ), counted AS (
        UPDATE pv_generations g SET
            position = GREATEST(
                g.position, :max_position, (SELECT COALESCE(MAX(position), 0) FROM folded)
            ),
            events_applied = g.events_applied + :applied
                + (SELECT COALESCE(SUM(events_applied), 0) FROM folded),
            duplicates = g.duplicates + :duplicates
                + (SELECT COALESCE(SUM(duplicates), 0) FROM folded),
            gaps_detected = g.gaps_detected + :gaps
                + (SELECT COALESCE(SUM(gaps_detected), 0) FROM folded)
        FROM held
        WHERE g.generation = held.generation
    )
    INSERT INTO pv_generation_counters AS c
        (generation, slot, position, events_applied, duplicates, gaps_detected)
    SELECT :g, :slot, :max_position, :applied, :duplicates, :gaps
    WHERE NOT EXISTS (SELECT FROM held)
    ON CONFLICT (generation, slot) DO UPDATE SET
        position = GREATEST(c.position, EXCLUDED.position),
        events_applied = c.events_applied + EXCLUDED.events_applied,
        duplicates = c.duplicates + EXCLUDED.duplicates,
        gaps_detected = c.gaps_detected + EXCLUDED.gaps_detected
    """
    )
    .bindparams(
        sa.bindparam("g", type_=sa.Integer),
        sa.bindparam("slot", type_=sa.BigInteger),
        sa.bindparam("max_position", type_=sa.BigInteger),
        sa.bindparam("applied", type_=sa.BigInteger),
        sa.bindparam("duplicates", type_=sa.BigInteger),
        sa.bindparam("gaps", type_=sa.BigInteger),
    )
    .execution_options(**{RETURNS_NO_ROWS: True})
)
