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
from sqlalchemy.dialects import postgresql


def one_of_bound(dialect: str, column: sa.Column[str], name: str) -> sa.ColumnElement[bool]:
    """``column`` is one of the values bound to ``name`` (see ``bound_values``): an
    array on PostgreSQL, a JSON array read by ``json_each`` on SQLite. The
    statement's text is the same whatever their number."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String)))
    items = sa.func.json_each(sa.bindparam(name, type_=sa.String)).table_valued("value")
    return column.in_(sa.select(items.c.value))


def bound_values(dialect: str, values: Sequence[str]) -> list[str] | str:
    """The value of ``one_of_bound``'s parameter for ``values``."""
    return list(values) if dialect == "postgresql" else json.dumps(list(values))
