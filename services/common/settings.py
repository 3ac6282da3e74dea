"""Typed settings shared by every service: one place, all overridable by environment."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlparse

from pydantic import AfterValidator, AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .kafka import TopicLayout
from .readiness import ReadinessRules

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def normalized_database_url(database_url: str) -> str:
    """The one spelling of a PostgreSQL URL: ``postgresql://`` (``postgres://`` and
    SQLAlchemy's ``postgresql+psycopg://`` mean the same). Any other URL is returned
    as it is, for ``db.check_database_url`` to refuse with a clear message."""
    scheme, separator, rest = database_url.partition("://")
    if separator and scheme in POSTGRES_SCHEMES:
        return f"postgresql://{rest}"
    return database_url


def _normalized(value: str | None) -> str | None:
    return normalized_database_url(value) if value else value


# A database URL as the settings hold it: ``postgresql://`` however it was spelt.
DatabaseUrl = Annotated[str | None, AfterValidator(_normalized)]


class CommonSettings(BaseSettings):
    """DESIGN's environment: DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, AUTH_SECRET, DATA_DIR,
    LOG_LEVEL, AUTO_MIGRATE."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: DatabaseUrl = None
    kafka_bootstrap_servers: str | None = None
    # Crypto-shredding: how long any process may keep a data key (or its erasure)
    # cached; consumers' erasure workers wait this long past a key's destruction.
    key_cache_ttl_seconds: float = Field(default=5.0, ge=0, le=300)
    # The interviews service's internal key API, for a consumer run as its own process
    # with Kafka (required then); embedded, the key store is used in-process.
    key_service_url: str | None = None
    # How often a consumer's erasure worker asks for erasures still to carry out.
    erasure_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    auth_secret: str | None = Field(default=None, repr=False)
    data_dir: Path = Path("./data")
    log_level: str = "INFO"
    topic: str = Field(default="interviews.events", alias="EVENTS_TOPIC")
    # How the topic is created when missing, whichever process comes first (the
    # relay or a consumer). RELAY_* are the names of earlier releases.
    kafka_topic_partitions: int = Field(
        default=6, ge=1, validation_alias=AliasChoices("KAFKA_TOPIC_PARTITIONS", "RELAY_PARTITIONS")
    )
    kafka_replication_factor: int = Field(
        default=-1,
        ge=-1,
        validation_alias=AliasChoices("KAFKA_REPLICATION_FACTOR", "RELAY_REPLICATION_FACTOR"),
    )
    # A consumer's /readyz (see readiness.py): unready when behind by more than
    # CONSUMER_READY_MAX_LAG events for longer than CONSUMER_READY_LAG_SECONDS, or
    # when each of the last CONSUMER_READY_PARKED_WINDOW events was parked.
    consumer_ready_max_lag: int = Field(default=1000, ge=0)
    consumer_ready_lag_seconds: float = Field(default=120.0, ge=0)
    consumer_ready_parked_window: int = Field(default=20, ge=1, le=100_000)
    # A consumer that met a schema it does not know tries again after this long.
    consumer_halt_retry_seconds: float = Field(default=30.0, gt=0)

    def readiness_rules(self) -> ReadinessRules:
        return ReadinessRules(
            max_lag=self.consumer_ready_max_lag,
            lag_seconds=self.consumer_ready_lag_seconds,
            parked_window=self.consumer_ready_parked_window,
            halt_retry_seconds=self.consumer_halt_retry_seconds,
        )

    def topic_layout(self) -> TopicLayout:
        """The events topic's partitions and replication factor (-1: the broker's default)."""
        return TopicLayout(self.kafka_topic_partitions, self.kafka_replication_factor)

    # Migrate the service's database on start (under a lock); false: refuse to start
    # while it is behind, and leave it to ``interviewctl migrate``.
    auto_migrate: bool = True

    def sqlite_file(self, name: str) -> Path:
        """Where a database ``name`` lives under DATA_DIR when no URL names one."""
        return self.data_dir / f"{name}.sqlite"

    @property
    def embedded(self) -> bool:
        return not self.kafka_bootstrap_servers

    def resolved_auth_secret(self) -> str:
        """AUTH_SECRET, or (embedded development only) a random one kept in DATA_DIR.

        There is no built-in default secret: a fresh ``make up`` generates one so
        that ``interviewctl token`` and the services agree without configuration.
        """
        if self.auth_secret:
            return self.auth_secret
        path = self.data_dir / "auth_secret"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        path.write_text(value)
        path.chmod(0o600)
        return value


def eventsourcing_env(
    database_url: str | None, sqlite_path: Path, *, create: bool = True, **extra: str
) -> dict[str, str]:
    """The ``eventsourcing`` persistence environment for PostgreSQL or an SQLite file.

    ``create=False`` (a reader of an existing store) creates no table and no folder."""
    env = {"CREATE_TABLE": "y" if create else "n", **extra}
    if database_url:
        url = urlparse(database_url)
        if url.scheme not in POSTGRES_SCHEMES:
            raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {url.scheme}://")
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=(url.path or "/").lstrip("/") or "postgres",
            POSTGRES_HOST=url.hostname or "127.0.0.1",
            POSTGRES_PORT=str(url.port or 5432),
            POSTGRES_USER=unquote(url.username or "postgres"),
            POSTGRES_PASSWORD=unquote(url.password or ""),
            POSTGRES_CONNECT_TIMEOUT=env.get("POSTGRES_CONNECT_TIMEOUT", "5"),
            POSTGRES_POOL_SIZE=env.get("POSTGRES_POOL_SIZE", "8"),
            POSTGRES_MAX_OVERFLOW=env.get("POSTGRES_MAX_OVERFLOW", "8"),
            # No ping per checkout: it costs a round trip on every query, and a
            # connection broken by a restart fails fast, is dropped by the pool and
            # the recorder retries (eventsourcing retries on Interface/OperationalError).
            POSTGRES_PRE_PING=env.get("POSTGRES_PRE_PING", "n"),
            POSTGRES_LOCK_TIMEOUT=env.get("POSTGRES_LOCK_TIMEOUT", "5"),
        )
    else:
        if create:
            sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(sqlite_path))
    return env
