"""Settings of the interview service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..common.settings import CommonSettings


class InterviewsSettings(CommonSettings):
    # A default deadline is an expires_at like any other: at most 90 days ahead.
    invitation_ttl_hours: float = Field(default=7 * 24, gt=0, le=90 * 24)
    offer_ttl_hours: float = Field(default=7 * 24, gt=0, le=90 * 24)
    max_commit_batch: int = Field(default=128, ge=1)
    postgres_pool_size: int = Field(default=8, ge=1)
    # The deadline scheduler (services/interviews/scheduler.py).
    scheduler_max_sleep_seconds: float = Field(
        default=2.0, gt=0, description="Longest the scheduler sleeps before looking again"
    )
    scheduler_lease_seconds: float = Field(
        default=15.0, gt=0, description="How long a crashed scheduler's SQLite lease blocks others"
    )
    scheduler_batch_size: int = Field(default=500, ge=1)

    @property
    def sqlite_path(self) -> Path:
        """The event store and the service's own tables, without DATABASE_URL."""
        return self.sqlite_file("interviews")
