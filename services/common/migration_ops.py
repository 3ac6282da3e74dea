"""Alembic operations the revisions of several histories share.

A revision runs again on every new database, so a helper here keeps doing
exactly what it does: another behaviour is another function. Revisions still
spell out their own tables and columns (a revision must not import today's
models, which move on after it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from alembic import op


def add_missing_columns(table: str, columns: Iterable[sa.Column[Any]]) -> None:
    """Adds to ``table`` each of ``columns`` it lacks; a column already present (a
    database touched by a pre-release build) is left as it is."""
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
    for column in columns:
        if column.name not in present:
            op.add_column(table, column)


def drop_columns(table: str, columns: Iterable[sa.Column[Any]]) -> None:
    """Drops ``columns`` from ``table`` (a batch: SQLite copies the table)."""
    with op.batch_alter_table(table) as batch:
        for column in columns:
            batch.drop_column(column.name)
