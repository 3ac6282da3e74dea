"""Settings of the notifications service (all overridable by environment)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..common.settings import CommonSettings, DatabaseUrl


class NotificationsSettings(CommonSettings):
    """DESIGN's environment plus the channels.

    E-mail is on when ``SMTP_HOST`` and ``EMAIL_DOMAIN`` are set: a user's
    address is ``{user_id}@{EMAIL_DOMAIN}`` (user ids are the JWT ``sub``).
    """

    notifications_database_url: DatabaseUrl = None
    # DESIGN's group is "notifications"; another name only for side-by-side runs (bench, tests).
    notifications_consumer_group: str = "notifications"

    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = False
    email_domain: str | None = None

    delivery_max_attempts: int = Field(default=8, ge=1, le=100)
    delivery_backoff_base_seconds: float = Field(default=5.0, gt=0)
    delivery_backoff_factor: float = Field(default=2.0, ge=1)
    delivery_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    delivery_backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    delivery_timeout_seconds: float = Field(default=5.0, gt=0)
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    delivery_poll_seconds: float = Field(default=1.0, gt=0)
    delivery_batch_size: int = Field(default=50, ge=1, le=1000)
    delivery_concurrency: int = Field(default=8, ge=1, le=64)

    # Webhooks (see webhook_urls.py and the README): hosts exempt from the public-address
    # rule, comma-separated (WEBHOOK_ALLOWED_HOSTS); how many a user may register; after
    # how many dead deliveries in a row a webhook is disabled; how long after a secret
    # rotation the previous secret still signs (both signatures are sent).
    webhook_allowed_hosts: str = ""
    webhook_max_per_user: int = Field(default=10, ge=1, le=1000)
    webhook_disable_after_dead: int = Field(default=5, ge=1, le=1000)
    webhook_secret_grace_hours: float = Field(default=24.0, ge=0, le=24 * 30)

    # Reminders: how long before an invitation's or offer's deadline the party who
    # must answer is reminded; the reminder worker sleeps until the next one is due,
    # never longer than the maximum (it also catches rows another process opened).
    reminder_lead_hours: float = Field(default=24.0, ge=0)
    # How long before a scheduled interview both parties are reminded of it.
    meeting_reminder_lead_minutes: float = Field(default=60.0, ge=0, le=7 * 24 * 60)
    reminder_max_sleep_seconds: float = Field(default=5.0, gt=0)
    reminder_batch_size: int = Field(default=100, ge=1, le=1000)

    @property
    def allowed_webhook_hosts(self) -> list[str]:
        return [h.strip() for h in self.webhook_allowed_hosts.split(",") if h.strip()]

    def resolved_database_url(self) -> str | None:
        return self.notifications_database_url or self.database_url

    @property
    def sqlite_path(self) -> Path:
        return self.sqlite_file("notifications")

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host and self.email_domain)

    def sender_address(self) -> str:
        return self.smtp_sender or f"notifications@{self.email_domain or 'localhost'}"
