"""A tamper-evident chain over an interview's events.

Each event carries ``prev_hash`` (the hash of the event before it in the same
interview, or the empty string for the first) and ``hash``: SHA-256 over a
canonical JSON encoding of the event's fields and ``prev_hash``. Changing any
field, deleting an event or swapping two breaks the chain.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

GENESIS = ""


def _default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} canonically")


def canonical(fields: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same fields give the same bytes."""
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    ).encode()


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = {k: v for k, v in fields.items() if k != "hash"}
    body["prev_hash"] = prev_hash
    return hashlib.sha256(canonical(body)).hexdigest()
