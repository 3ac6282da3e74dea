"""The consumer runner's bookkeeping tables: a migration history of their own
(``alembic_version_runner``), applied to every database a consumer writes to.
The history itself is ``services.common.runner.tables.RUNNER_HISTORY``."""
