"""A database as the first release (6a515ff) left it: each history's baseline
tables, and no alembic version table (that release had no migrations)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import command

from services.common.migrations import History

BASELINE = "0001"


def first_release_schema(engine: sa.Engine, histories: Sequence[History]) -> None:
    """Creates the baseline revision's tables of ``histories``, then forgets that
    a migration made them."""
    with engine.connect() as conn:
        for history in histories:
            command.upgrade(history.config(conn), BASELINE)
            conn.commit()
            conn.execute(sa.text(f"DROP TABLE {history.version_table}"))
            conn.commit()
