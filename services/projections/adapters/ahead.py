"""The reads a live batch starts with, sent ahead of the runner's own read
(``ConsumerSpec.read_ahead``): in a ``pipelined`` transaction the generation, its
pointer held, and the rows of the batch's interviews come back with the runner's
read of what it processed, one round trip for the three."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import sqlalchemy as sa

from ...common.pipeline import Pending
from ...common.pipeline import read_ahead as pipeline_read_ahead
from ...common.sql_values import bound_values
from ...contracts import EventEnvelope
from ..fold import Row
from .schema import view_tables
from .store import _CURRENT_HELD, _LOAD_CHUNK, Generation, _add_rows, _generation, _load_query


@dataclass
class ReadAhead:
    """The reads of a live batch sent ahead of it (``read_ahead``): the generation
    (its pointer held, as ``current_generation(for_write=True)``) and, if a generation
    was ``guessed``, the rows of generation ``guessed`` of the batch's ``ids``, locked
    as ``load_rows(lock=True)`` locks them."""

    generation: Pending
    guessed: int | None = None
    ids: frozenset[str] = frozenset()
    rows: Pending | None = None

    def current_generation(self) -> Generation | None:
        names, records = self.generation.rows()
        if not records:
            return None
        return _generation(SimpleNamespace(**dict(zip(names, records[0], strict=True))))

    def rows_of(self, generation: int) -> tuple[frozenset[str], dict[str, Row]] | None:
        """The rows read ahead (and the ids asked for) if they are generation
        ``generation``'s, else None."""
        if self.rows is None:
            return None
        names, records = self.rows.rows()  # read either way: the cursor is closed
        if self.guessed != generation:
            return None
        rows: dict[str, Row] = {}
        _add_rows(rows, names, records)
        return self.ids, rows


def read_ahead(
    conn: sa.Connection, events: Sequence[EventEnvelope], guess: int | None
) -> ReadAhead | None:
    """In a ``pipelined`` transaction on PostgreSQL: the reads a live batch of
    ``events`` starts with, sent without waiting (``common.pipeline.read_ahead``), the
    rows from generation ``guess`` (the one the last batch wrote; a swap since makes
    the batch read them again). None elsewhere (the batch reads as usual)."""
    generation = pipeline_read_ahead(conn, _CURRENT_HELD, {})
    if generation is None:
        return None
    ahead = ReadAhead(generation)
    if guess is not None and 0 < len(events) <= _LOAD_CHUNK:
        ids = list(dict.fromkeys(str(e.interview_id) for e in events))
        query = _load_query(conn.dialect.name, view_tables(guess).interviews, True)
        ahead.rows = pipeline_read_ahead(conn, query, {"ids": bound_values(conn.dialect.name, ids)})
        ahead.guessed, ahead.ids = guess, frozenset(ids)
    return ahead
