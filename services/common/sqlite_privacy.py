"""No trace of erased words in an SQLite file: secure delete and a truncating checkpoint.

Every SQLite database is opened with ``PRAGMA secure_delete=ON`` (``db.create_engine``):
space freed by an UPDATE or DELETE is overwritten with zeros instead of keeping the
old bytes. In WAL mode the previous page images stay in the ``-wal`` file until a
checkpoint, so after a redaction ``checkpoint_truncate`` copies the WAL into the
database and truncates it to zero bytes. On PostgreSQL both are no-ops (the README
says what VACUUM does there).
"""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa

log = logging.getLogger(__name__)


def checkpoint_truncate(engine: sa.Engine, attempts: int = 50, pause: float = 0.05) -> bool:
    """``PRAGMA wal_checkpoint(TRUNCATE)`` until it completes (a reader holding an old
    snapshot makes it busy); True when the WAL was emptied. No-op off SQLite."""
    if engine.dialect.name != "sqlite":
        return True
    for _ in range(attempts):
        with engine.connect() as conn:
            row = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
            conn.commit()
        if row is not None and int(row[0]) == 0:
            return True
        time.sleep(pause)
    log.warning("the WAL of %s could not be truncated (readers kept it busy)", engine.url)
    return False
