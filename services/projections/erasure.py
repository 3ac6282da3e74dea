"""Personal texts in the views: redacted on erasure.

``fold.reveal_event`` opens an event's sealed personal fields through the key service
before the fold (an erased key yields ``None`` and the field is marked erased),
and records beside ``data`` which key sealed each field, so every copy the views
keep has its key id next to it. ``redact_views`` is the projections' part of an
erasure: every text sealed with the given keys becomes NULL and is listed in its
row's ``erased_fields``, in every generation still on disk. A rebuild after the
erasure folds the same events again and meets the destroyed keys: the same
redacted rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..common.privacy import PERSONAL_FIELDS
from ..common.sqlite_privacy import checkpoint_truncate
from .adapters.schema import pv_generations, view_tables
from .fold import PERSONAL_COLUMNS

log = logging.getLogger(__name__)

# The interview row's personal columns and their key-id columns.
_ROW_TEXTS = tuple(PERSONAL_COLUMNS)


def _generations(conn: sa.Connection) -> list[int]:
    inspector = sa.inspect(conn)
    numbers = conn.execute(sa.select(pv_generations.c.generation)).scalars().all()
    return [
        n
        for n in numbers
        if inspector.has_table(view_tables(n).interviews.name)
        and "erased_fields"
        in {c["name"] for c in inspector.get_columns(view_tables(n).timeline.name)}
    ]


def redact_views(engine: sa.Engine, key_ids: Sequence[str]) -> int:
    """Every view text sealed with ``key_ids`` set to NULL and marked erased, in every
    generation; returns how many rows changed. Idempotent."""
    ids = sorted(set(key_ids))
    if not ids:
        return 0
    changed = 0
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table(pv_generations.name):
            return 0
        for number in _generations(conn):
            tables = view_tables(number)
            changed += _redact_rows(conn, tables.interviews, ids)
            changed += _redact_timeline(conn, tables.timeline, ids)
    checkpoint_truncate(engine)
    return changed


def _redact_rows(conn: sa.Connection, t: sa.Table, ids: list[str]) -> int:
    key_columns = [t.c[f"{column}_key_id"] for column in _ROW_TEXTS]
    query = sa.select(
        t.c.interview_id, t.c.erased_fields, *key_columns, *(t.c[c] for c in _ROW_TEXTS)
    )
    query = query.where(sa.or_(*(col.in_(ids) for col in key_columns)))
    # One UPDATE per set of columns redacted, run for all its rows at once (an
    # executemany: psycopg pipelines it), not one round trip per row.
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for record in conn.execute(query).mappings().all():
        erased = list(record["erased_fields"] or [])
        columns: list[str] = []
        for column in _ROW_TEXTS:
            if record[f"{column}_key_id"] in ids:
                api_name = PERSONAL_COLUMNS[column]
                if record[column] is not None or api_name not in erased:
                    columns.append(column)
                    if api_name not in erased:
                        erased.append(api_name)
        if columns:
            updates.setdefault(tuple(columns), []).append(
                {"b_id": record["interview_id"], "b_erased": erased}
            )
    for redacted, params in updates.items():
        conn.execute(
            sa.update(t)
            .where(t.c.interview_id == sa.bindparam("b_id"))
            .values({c: None for c in redacted} | {"erased_fields": sa.bindparam("b_erased")}),
            params,
        )
    return sum(len(params) for params in updates.values())


def _redact_timeline(conn: sa.Connection, tl: sa.Table, ids: list[str]) -> int:
    query = sa.select(tl.c.interview_id, tl.c.version, tl.c.type, tl.c.data, tl.c.erased_fields)
    params: list[dict[str, Any]] = []
    for record in conn.execute(query.where(tl.c.key_id.in_(ids))).mappings().all():
        data = json.loads(record["data"])
        erased = list(record["erased_fields"] or [])
        dirty = False
        for name in PERSONAL_FIELDS.get(record["type"], ()):
            if name in data and (data[name] is not None or name not in erased):
                data[name] = None
                if name not in erased:
                    erased.append(name)
                dirty = True
        if dirty:
            params.append(
                {
                    "b_id": record["interview_id"],
                    "b_version": record["version"],
                    "b_data": json.dumps(data, sort_keys=True, separators=(",", ":")),
                    "b_erased": erased,
                }
            )
    if params:
        conn.execute(
            sa.update(tl)
            .where(tl.c.interview_id == sa.bindparam("b_id"))
            .where(tl.c.version == sa.bindparam("b_version"))
            .values(data=sa.bindparam("b_data"), erased_fields=sa.bindparam("b_erased")),
            params,
        )
    return len(params)
