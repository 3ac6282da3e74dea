"""Many values in one bound parameter, for statements built once and run often.

A consumer runs the same few queries every batch with a different number of ids.
SQLAlchemy renders an ``IN`` list anew for every execution (and psycopg parses a
long one in Python), and building a statement costs more than running it on
SQLite: so those statements are built once, with the ids in one parameter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa


def one_of_bound(dialect: str, column: sa.Column[str], name: str) -> sa.ColumnElement[bool]:
    """``column`` is one of the values bound to ``name`` (see ``bound_values``): a JSON
    array of strings, read by ``json_each`` on SQLite and, on PostgreSQL, made the
    array of an ``= ANY`` (which an index answers as it would a bound array). The
    statement's text is the same whatever their number."""
    values = sa.bindparam(name, type_=sa.String)
    if dialect == "postgresql":
        items = sa.func.json_array_elements_text(sa.cast(values, sa.JSON))
        return column == sa.any_(sa.func.array(sa.select(items).scalar_subquery()))
    rows = sa.func.json_each(values).table_valued("value")
    return column.in_(sa.select(rows.c.value))


def bound_values(dialect: str, values: Sequence[str]) -> str:
    """The value of ``one_of_bound``'s parameter for ``values``: their JSON array,
    encoded in C (psycopg dumps a list into a PostgreSQL array value by value in
    Python, a microsecond or two for each id of every batch)."""
    return json.dumps(list(values))
