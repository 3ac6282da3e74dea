"""A generation's counters under live consumers side by side (PostgreSQL): two
processes of the group apply batches at once without one waiting on the other's
COMMIT, and the position and counts the API reports stay exact through
redelivery, whichever row they were counted in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common.consumer import Batch
from services.contracts import EventEnvelope
from services.projections.adapters.live import LiveWriter
from services.projections.adapters.schema import pv_generation_counters, pv_generations
from services.projections.adapters.store import Generation, current_generation, ensure_schema
from services.projections.bootstrap import ProjectionsContainer
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET
from tests.support.projections_reference import scripts, synthetic_events

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(postgres_url: str, tmp_path: Path) -> Iterator[sa.Engine]:
    container = ProjectionsContainer(
        ProjectionsSettings(
            database_url=postgres_url,
            projections_database_url=postgres_url,
            kafka_bootstrap_servers=None,
            data_dir=tmp_path,
            auth_secret=TEST_SECRET,
        )
    )
    ensure_schema(container.engine())
    yield container.engine()
    container.close()


def two_partitions() -> tuple[list[EventEnvelope], list[EventEnvelope]]:
    """The events of 20 interviews, split by interview as Kafka partitions split them."""
    events = synthetic_events(scripts(20))
    ids = sorted({e.interview_id for e in events})
    first = set(ids[: len(ids) // 2])
    return (
        [e for e in events if e.interview_id in first],
        [e for e in events if e.interview_id not in first],
    )


def generation(engine: sa.Engine) -> Generation:
    with engine.connect() as conn:
        current = current_generation(conn)
    assert current is not None
    return current


def generation_row(engine: sa.Engine) -> sa.Row[tuple[int, int]]:
    """What a release that reads only the generation's own row sees."""
    g = pv_generations.c
    with engine.connect() as conn:
        return conn.execute(sa.select(g.position, g.events_applied)).one()


def counters_rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(pv_generation_counters)
            ).scalar_one()
        )


def test_two_consumers_apply_side_by_side_without_waiting_on_each_others_commit(
    engine: sa.Engine,
) -> None:
    one, other = two_partitions()
    first, second = LiveWriter(counter_slot=1), LiveWriter(counter_slot=2)

    with engine.connect() as a, engine.connect() as b, a.begin():
        first.apply(a, Batch(one))  # its transaction still open
        with b.begin():
            # It would wait for ``a``'s COMMIT on the generation's counters before.
            b.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            second.apply(b, Batch(other))

    everything = one + other
    assert generation(engine).events_applied == len(everything)
    assert generation(engine).position == max(e.position for e in everything)


def test_the_counters_stay_exact_through_redelivery_and_reach_the_generations_row(
    engine: sa.Engine,
) -> None:
    one, other = two_partitions()
    first, second = LiveWriter(counter_slot=1), LiveWriter(counter_slot=2)
    half = len(other) // 2
    with engine.connect() as a, engine.connect() as b:
        with a.begin():
            first.apply(a, Batch(one))
            with b.begin():
                b.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                second.apply(b, Batch(other[:half]))
        assert counters_rows(engine) == 1  # the second was counted aside
        # A batch that fails after counting aside counts nothing.
        with pytest.raises(RuntimeError), b.begin():
            second.apply(b, Batch(other[half:]))
            raise RuntimeError("the batch's bookkeeping failed")
        assert generation(engine).events_applied == len(one) + half
        # Redelivered, then the rest: the writer holds the generation's row now and
        # folds its own into it.
        with b.begin():
            second.apply(b, Batch(other))
        with a.begin():
            first.apply(a, Batch(one))

    everything = one + other
    highest = max(e.position for e in everything)
    assert (generation(engine).events_applied, generation(engine).position) == (
        len(everything),
        highest,
    )
    assert counters_rows(engine) == 0
    assert tuple(generation_row(engine)) == (highest, len(everything))
