"""Settings of the projections service (read models, query API, dashboard)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..common.settings import CommonSettings, DatabaseUrl


class ProjectionsSettings(CommonSettings):
    # Its own database, defaulting to DATABASE_URL (DESIGN's environment).
    projections_database_url: DatabaseUrl = None
    # DESIGN's group; overridable so tests and side-by-side deployments can share a broker.
    projections_consumer_group: str = "projections"
    # How long ``min_position=N`` waits before answering 503 ``view_behind``.
    min_position_timeout_s: float = Field(default=5.0, ge=0, le=60)
    # Events per transaction when rebuilding.
    rebuild_batch: int = Field(default=5000, ge=1, le=100_000)
    # Rebuild on start when the stored view schema is older than the code's.
    rebuild_on_start: bool = True
    # The live stream: at most one update per interval; a stream ends after its
    # lifetime (EventSource reconnects) so shutdowns never hang on it.
    stream_interval_s: float = Field(default=0.25, gt=0)
    stream_lifetime_s: float = Field(default=30.0, gt=0)
    postgres_pool_size: int = Field(default=8, ge=1)

    @property
    def view_database_url(self) -> str | None:
        return self.projections_database_url or self.database_url

    @property
    def sqlite_path(self) -> Path:
        return self.sqlite_file("projections")
