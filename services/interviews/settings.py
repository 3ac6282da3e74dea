"""Settings of the interview service."""

from __future__ import annotations

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
    # Crypto-shredding (#17): the key-encryption key wrapping every data key
    # (base64url of 32 bytes; unset: a generated file under DATA_DIR).
    key_encryption_key: str | None = Field(default=None, repr=False)
    key_cache_ttl_seconds: float = Field(
        default=5.0, ge=0, le=3600, description="How long a process may keep a data key"
    )
    # The consumer services that must report an erasure done (comma-separated;
    # empty: an erasure is done once the keys are destroyed).
    erasure_services: str = "projections,notifications"

    @property
    def erasure_service_names(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.erasure_services.split(",") if s.strip())
