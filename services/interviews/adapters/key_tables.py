"""The key store's tables (migration 0003), on the interviews metadata.

``interview_data_keys``: one row per data key. ``wrapped_key`` is the data key
wrapped by the key-encryption key; an erasure sets it (and ``kek_id``) to NULL
and fills ``erased_at``: the row stays as a tombstone, so a key id is answered
"erased" rather than "unknown". ``interview_erasures`` and
``interview_erasure_reports`` track each erasure and which services have
redacted their copies.
"""

from __future__ import annotations

import sqlalchemy as sa

from .tables import UtcDateTime, metadata

DATA_KEYS = sa.Table(
    "interview_data_keys",
    metadata,
    sa.Column("key_id", sa.String(36), primary_key=True),
    sa.Column("subject_id", sa.String(128), nullable=False, index=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("kek_id", sa.String(32), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("erased_at", UtcDateTime, nullable=True),
    sa.Column("erasure_id", sa.String(36), nullable=True),
)

ERASURES = sa.Table(
    "interview_erasures",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("subject_id", sa.String(128), nullable=False, index=True),
    sa.Column("requested_at", UtcDateTime, nullable=False),
    sa.Column("requested_by", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("key_ids", sa.Text, nullable=False),  # a JSON list
    sa.Column("keys_destroyed_at", UtcDateTime, nullable=False),
    sa.Column("services", sa.Text, nullable=False),  # JSON list: who must report done
)

ERASURE_REPORTS = sa.Table(
    "interview_erasure_reports",
    metadata,
    sa.Column("erasure_id", sa.String(36), primary_key=True),
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("done_at", UtcDateTime, nullable=False),
)
