"""Settings of the interview service: the API and the scheduler (``InterviewsSettings``)
and the relay (``RelaySettings``, its ``RELAY_*`` variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ..common.settings import CommonSettings


class InterviewsSettings(CommonSettings):
    # A default deadline is an expires_at like any other: at most 90 days ahead.
    invitation_ttl_hours: float = Field(default=7 * 24, gt=0, le=90 * 24)
    offer_ttl_hours: float = Field(default=7 * 24, gt=0, le=90 * 24)
    max_commit_batch: int = Field(default=128, ge=1)
    # A command decided on cached state runs on the event loop and awaits its
    # group commit (no thread hop); false: every command runs in a command thread.
    commands_on_loop: bool = True
    postgres_pool_size: int = Field(default=8, ge=1)
    # The deadline scheduler (scheduler.py).
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
    # The consumer services that must report an erasure done (comma-separated;
    # empty: an erasure is done once the keys are destroyed).
    erasure_services: str = "projections,notifications"

    @property
    def erasure_service_names(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.erasure_services.split(",") if s.strip())

    @property
    def sqlite_path(self) -> Path:
        """The event store and the service's own tables, without DATABASE_URL."""
        return self.sqlite_file("interviews")


class RelaySettings(CommonSettings):
    """``RELAY_*`` environment variables, plus the common ones (EVENTS_TOPIC, ...)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    read_batch: int = Field(default=1000, ge=1, alias="RELAY_READ_BATCH")
    max_in_flight: int = Field(default=20_000, ge=1, alias="RELAY_MAX_IN_FLIGHT")
    linger_ms: int = Field(default=5, ge=0, alias="RELAY_LINGER_MS")
    poll_seconds: float = Field(default=2.0, gt=0, alias="RELAY_POLL_SECONDS")
    checkpoint_seconds: float = Field(default=0.2, ge=0, alias="RELAY_CHECKPOINT_SECONDS")
    max_backoff_seconds: float = Field(default=10.0, gt=0, alias="RELAY_MAX_BACKOFF_SECONDS")
    # One relay publishes at a time; a standby takes over within about a third of
    # this after the leader dies (at once on PostgreSQL: the lock dies with it).
    lease_seconds: float = Field(default=9.0, gt=0, alias="RELAY_LEASE_SECONDS")
    # A standby also takes over from a leader that still heartbeats but has not
    # moved the position for this long while the log head is past it.
    takeover_seconds: float = Field(default=30.0, gt=0, alias="RELAY_TAKEOVER_SECONDS")
    metrics_port: int = Field(default=9465, ge=0, alias="RELAY_METRICS_PORT")
    metrics_host: str = Field(default="127.0.0.1", alias="RELAY_METRICS_HOST")
