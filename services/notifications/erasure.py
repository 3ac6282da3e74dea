"""The notifications' part of an erasure: every inbox text quoting the person's words.

A notification about an event with a personal text keeps the key id of that text
(``notifications.key_id``) and the same sentence without the words
(``message_redacted``). Redacting replaces the message with it, nulls the words
in ``details`` and lists the erased fields. Webhook bodies and e-mails are built
from the row when they are sent, so a delivery (or redelivery) after the erasure
carries no words either; the outbox and its attempt log hold none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..common.privacy import PERSONAL_FIELDS
from ..common.sqlite_privacy import checkpoint_truncate
from .adapters.tables import notifications

_CHUNK = 500


def redact_notifications(engine: sa.Engine, key_ids: Sequence[str]) -> int:
    """Every notification quoting text sealed with ``key_ids`` without it; returns how
    many rows changed. Idempotent."""
    ids = sorted(set(key_ids))
    if not ids:
        return 0
    n = notifications
    changed = 0
    with engine.begin() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = conn.execute(
                sa.select(
                    n.c.id, n.c.type, n.c.message, n.c.message_redacted, n.c.details,
                    n.c.erased_fields,
                ).where(n.c.key_id.in_(chunk))
            ).mappings().all()  # fmt: skip
            # One UPDATE per set of columns changed, for all its rows at once (an
            # executemany: psycopg pipelines it), not one round trip per row.
            updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in rows:
                values = _redacted(row)
                if values:
                    updates.setdefault(tuple(sorted(values)), []).append(
                        {"b_id": row["id"], **{f"b_{c}": v for c, v in values.items()}}
                    )
            for columns, params in updates.items():
                conn.execute(
                    sa.update(n)
                    .where(n.c.id == sa.bindparam("b_id"))
                    .values({c: sa.bindparam(f"b_{c}") for c in columns}),
                    params,
                )
                changed += len(params)
    checkpoint_truncate(engine)
    return changed


def _redacted(row: Any) -> dict[str, Any]:
    fields = PERSONAL_FIELDS.get(row["type"], ())
    erased = list(row["erased_fields"] or [])
    details = dict(row["details"] or {})
    values: dict[str, Any] = {}
    for name in fields:
        if name not in erased:
            erased.append(name)
            values["erased_fields"] = erased
        if details.get(name) is not None:
            details[name] = None
            values["details"] = details
    message = row["message_redacted"]
    if message is not None and row["message"] != message:
        values["message"] = message
    return values
