"""Crypto-shredding (#17): the key store.

- ``interview_data_keys``: each author's data keys, wrapped by the
  key-encryption key; an erased key keeps its row (a tombstone, ``erased_at``)
  with the wrapped bytes removed;
- ``interview_erasures`` and ``interview_erasure_reports``: each erasure and
  the services that have redacted their copies.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "interview_data_keys",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
        sa.Column("kek_id", sa.String(32), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("erased_at", Ts, nullable=True),
        sa.Column("erasure_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_interview_data_keys_subject_id", "interview_data_keys", ["subject_id"])
    op.create_table(
        "interview_erasures",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("requested_at", Ts, nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("key_ids", sa.Text, nullable=False),
        sa.Column("keys_destroyed_at", Ts, nullable=False),
        sa.Column("services", sa.Text, nullable=False),
    )
    op.create_index("ix_interview_erasures_subject_id", "interview_erasures", ["subject_id"])
    op.create_table(
        "interview_erasure_reports",
        sa.Column("erasure_id", sa.String(36), primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("done_at", Ts, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("interview_erasure_reports")
    op.drop_index("ix_interview_erasures_subject_id", "interview_erasures")
    op.drop_table("interview_erasures")
    op.drop_index("ix_interview_data_keys_subject_id", "interview_data_keys")
    op.drop_table("interview_data_keys")
