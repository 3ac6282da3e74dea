"""The projections database's migration history (``alembic_version_projections``).

It owns the fixed tables: the generation pointer (``pv_meta``) and the
generations (``pv_generations``). The view tables (``pv_*_gN``) are not in it:
each generation's tables are made by ``create_generation`` from the code's
view schemas, and a change to them bumps ``VIEW_SCHEMAS``, which rebuilds the
views from the log into a fresh generation while the old one keeps answering.
A migration that altered them in place would have to refold every row anyway.
"""

from __future__ import annotations

from ...common.migrations import History
from ..adapters.schema import meta

HISTORY = History(
    name="projections",
    package=__name__,
    metadata=meta,
    first_release_tables=("pv_meta", "pv_generations"),
)
