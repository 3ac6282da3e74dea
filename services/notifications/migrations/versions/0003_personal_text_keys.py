"""Crypto-shredding (#17): the key id beside every copy of a person's words.

- ``notifications.key_id``: the data key the personal text in ``message`` and
  ``details`` was sealed with (NULL: the notification holds none), indexed: an
  erasure finds the inbox rows to redact by it;
- ``notifications.message_redacted``: the same sentence without the words, which
  replaces ``message`` when the author is erased;
- ``notifications.erased_fields``: the personal fields erased (JSON list).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.migration_ops import add_missing_columns, drop_columns

revision = "0003"
down_revision = "0002"

COLUMNS = [
    sa.Column("key_id", sa.String(64), nullable=True),
    sa.Column("message_redacted", sa.Text, nullable=True),
    sa.Column("erased_fields", sa.JSON, nullable=True),
]


def upgrade() -> None:
    add_missing_columns("notifications", COLUMNS)
    op.create_index("ix_notifications_key_id", "notifications", ["key_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_notifications_key_id", "notifications")
    drop_columns("notifications", COLUMNS)
