"""Use cases of the projections service: read the views, wait for a position.

Every read runs in one transaction that first reads the generation pointer
and then that generation's tables, so a rebuild's swap is atomic for readers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from .adapters import queries
from .adapters.queries import Scope
from .adapters.schema import VIEW_SCHEMAS, ViewTables, reflected_tables, view_tables
from .adapters.store import Generation, current_generation
from .watch import PositionWatch

T = TypeVar("T")


class ViewsNotReadyError(Exception):
    """The views' tables do not exist yet."""


class ViewBehindError(Exception):
    """The views have not applied a requested position within the wait bound."""

    def __init__(self, wanted: int, position: int, waited: float) -> None:
        super().__init__(
            f"the views have applied up to position {position}; position {wanted} was not "
            f"applied within {waited:.1f}s (retry shortly)"
        )
        self.wanted = wanted
        self.position = position


@dataclass(frozen=True)
class Snapshot:
    """A read's result with the generation and position it was read at."""

    value: Any
    generation: int
    position: int


class ProjectionViews:
    def __init__(
        self,
        read_engine: sa.Engine,
        watch: PositionWatch,
        *,
        ordered_source: bool,
        wait_timeout: float = 5.0,
        settle: float = 1.0,
        poll: float = 0.1,
        schemas: Mapping[str, int] = VIEW_SCHEMAS,
    ) -> None:
        self.engine = read_engine
        self.schemas = schemas
        self.watch = watch
        # With one ordered source (the event store's log) the highest applied
        # position is a watermark. With Kafka partitions it is not: another
        # partition may still be behind it.
        self.ordered_source = ordered_source
        self.wait_timeout = wait_timeout
        self.settle = settle
        self.poll = poll
        self._reflected: dict[int, ViewTables] = {}
        self._stats_cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reads

    def _tables(self, conn: sa.Connection, generation: Generation) -> ViewTables:
        if generation.matches(self.schemas):
            return view_tables(generation.number)
        tables = self._reflected.get(generation.number)
        if tables is None:
            tables = reflected_tables(conn, generation.number)
            self._reflected[generation.number] = tables
        return tables

    def read(self, fn: Callable[[sa.Connection, ViewTables], T]) -> Snapshot:
        return self.read_at(lambda conn, tables, _: fn(conn, tables))

    def read_at(self, fn: Callable[[sa.Connection, ViewTables, Generation], T]) -> Snapshot:
        """``fn``'s reads in one transaction, given the generation they are at. The
        read engine gives a transaction one snapshot (``read_engine``), so every
        read sees the views at the snapshot's position, whatever commits meanwhile."""
        with self.engine.begin() as conn:
            generation = current_generation(conn)
            if generation is None:
                raise ViewsNotReadyError("the views are not created yet")
            value = fn(conn, self._tables(conn, generation), generation)
        self.watch.observe(generation.position)
        return Snapshot(value, generation.number, generation.position)

    def position(self) -> Snapshot:
        return self.read(lambda conn, tables: None)

    def stats(self, scope: Scope) -> Snapshot:
        """Statistics (``stats_in``)."""
        return self.read_at(
            lambda conn, tables, generation: self.stats_in(conn, tables, generation, scope)
        )

    def stats_in(
        self, conn: sa.Connection, tables: ViewTables, generation: Generation, scope: Scope
    ) -> dict[str, Any]:
        """Statistics, computed once per (generation, change count, scope).

        The generation's ``events_applied`` grows with every batch that changed
        a row, whatever its positions (Kafka partitions deliver below the highest
        position applied), and lives in the database: every replica sees it move."""
        key = (generation.number, generation.events_applied, scope)
        with self._lock:
            cached = self._stats_cache.get(key)
        if cached is not None:
            return cached
        value = queries.stats(conn, tables, scope)
        with self._lock:
            self._stats_cache[key] = value
            while len(self._stats_cache) > 256:
                self._stats_cache.popitem(last=False)
        return value

    # ----------------------------------------------------- read-your-writes

    def applied(self, position: int, ambiguous_ok: bool) -> tuple[bool, bool, int]:
        """(applied, ambiguous, view position) for a global ``position``."""

        def check(conn: sa.Connection, tables: ViewTables) -> tuple[bool, bool]:
            if queries.has_position(conn, tables, position):
                return True, False
            return False, True

        snapshot = self.read(check)
        hit, _ = snapshot.value
        if hit:
            return True, False, snapshot.position
        if snapshot.position < position:
            return False, False, snapshot.position
        # The views are past ``position`` but hold no event there: it is no
        # interview event (ordered log: certain), or on Kafka possibly one
        # still behind in another partition.
        return (self.ordered_source or ambiguous_ok), True, snapshot.position

    async def wait_for(self, position: int, timeout: float | None = None) -> int:
        """Returns once the views have applied ``position``, else ViewBehindError."""
        bound = self.wait_timeout if timeout is None else timeout
        start = time.monotonic()
        ambiguous_since: float | None = None
        while True:
            now = time.monotonic()
            ambiguous_ok = ambiguous_since is not None and now - ambiguous_since >= min(
                self.settle, bound
            )
            done, ambiguous, current = await run_in_threadpool(self.applied, position, ambiguous_ok)
            if done:
                return current
            if ambiguous and ambiguous_since is None:
                ambiguous_since = now
            remaining = bound - (time.monotonic() - start)
            if remaining <= 0:
                if ambiguous:
                    return current
                raise ViewBehindError(position, current, bound)
            await self.watch.changed(min(self.poll, remaining))

    async def sleep_until_changed(self, timeout: float) -> None:
        await self.watch.changed(timeout)
