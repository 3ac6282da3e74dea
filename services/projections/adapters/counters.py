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
from sqlalchemy.dialects.postgresql import insert as pg_insert

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
    fold: bool,
) -> bool:
    """Moves generation ``generation``'s position on to ``position`` (if higher) and
    its counters on by a batch's ``counts`` (applied, duplicates, gaps), in
    the batch's transaction (so they stay exact whatever is replayed); returns
    whether the writer's own row (``slot``) may hold counts once it commits.

    The generation's row would serialise the live consumers: its lock is held to
    the batch's COMMIT. So on PostgreSQL a writer with a ``slot`` takes it only if
    no other batch holds it (SKIP LOCKED), else adds to its own row of
    ``pv_generation_counters``, which nobody else writes; ``fold`` moves that row
    into the generation's once the writer holds it (readers add both, so the
    move changes no total; a release that reads only the generation's row sees
    the counts of a slot once folded). SQLite writes one transaction at a time."""
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
        return False
    if conn.execute(_COUNT_APPLIED_UNLESS_HELD, params).first() is None:
        conn.execute(_COUNT_ASIDE, params | {"slot": slot})
        return True
    return fold and fold_counters(conn, generation, slot)


def fold_counters(conn: sa.Connection, generation: int, slot: int) -> bool:
    """Moves counters row ``slot`` of ``generation`` into the generation's row (whose
    lock the caller holds or takes), in the caller's transaction; False when there
    was no such row."""
    c = pv_generation_counters.c
    mine = (c.generation == generation) & (c.slot == slot)
    row = conn.execute(
        sa.select(c.position, c.events_applied, c.duplicates, c.gaps_detected)
        .where(mine)
        .with_for_update()
    ).first()
    if row is None:
        return False
    conn.execute(
        _COUNT_APPLIED,
        {
            "g": generation,
            "max_position": row.position,
            "applied": row.events_applied,
            "duplicates": row.duplicates,
            "gaps": row.gaps_detected,
        },
    )
    conn.execute(sa.delete(pv_generation_counters).where(mine))
    return True


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


def _count_aside() -> Any:
    """PostgreSQL: a batch's counts added to the writer's own counters row (built once)."""
    c = pv_generation_counters.c
    statement = pg_insert(pv_generation_counters).values(
        generation=sa.bindparam("g"),
        slot=sa.bindparam("slot", type_=sa.BigInteger),
        position=sa.bindparam("max_position", type_=sa.BigInteger),
        events_applied=sa.bindparam("applied", type_=sa.BigInteger),
        duplicates=sa.bindparam("duplicates", type_=sa.BigInteger),
        gaps_detected=sa.bindparam("gaps", type_=sa.BigInteger),
    )
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[c.generation, c.slot],
        set_={
            "position": sa.case((c.position < new.position, new.position), else_=c.position),
            "events_applied": c.events_applied + new.events_applied,
            "duplicates": c.duplicates + new.duplicates,
            "gaps_detected": c.gaps_detected + new.gaps_detected,
        },
    )


_COUNT_APPLIED = _count_applied()
# The same, only if no other transaction holds the generation's row (else no row).
_COUNT_APPLIED_UNLESS_HELD = _COUNT_APPLIED.where(
    pv_generations.c.generation.in_(
        sa.select(pv_generations.c.generation)
        .where(pv_generations.c.generation == sa.bindparam("g"))
        .with_for_update(skip_locked=True)
    )
).returning(pv_generations.c.generation)
_COUNT_ASIDE = _count_aside()
