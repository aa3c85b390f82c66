"""Configuration: one Settings object, read from GATEWAY_* environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/gateway.db"
# The PostgreSQL driver the gateway ships with; bare `postgres://` and `postgresql://` URLs use it.
POSTGRES_SCHEME = "postgresql+psycopg"


class PollSettings(BaseModel):
    """How the gateway polls a source's API. Secrets are named, never written here."""

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl
    interval_seconds: float = Field(60, gt=0, description="Pause between polls once caught up.")
    timeout_seconds: float = Field(30, gt=0)
    max_attempts: int = Field(5, ge=1, le=20, description="Tries per request before giving up.")
    token_env: str | None = Field(
        None, description="Environment variable holding the source's bearer token."
    )


class SourceSettings(BaseModel):
    """One source: which adapter reads it, that adapter's settings, and polling if any."""

    model_config = ConfigDict(extra="forbid")

    adapter: str = "canonical"
    config: dict[str, Any] = Field(default_factory=dict)
    poll: PollSettings | None = None
    strict: bool = Field(
        False,
        description="Quarantine a record with any invalid identity field, instead of keeping "
        "it with the field dropped and a data-quality warning.",
    )


class LimitSettings(BaseModel):
    """Caps on every resource a client controls."""

    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest request body.")
    max_batch_records: int = Field(1000, ge=1, le=100_000, description="Records in one push.")
    max_upload_bytes: int = Field(
        1024 * 1024 * 1024, ge=1024, description="Largest file a source uploads in its own format."
    )
    import_chunk_records: int = Field(
        1000, ge=1, le=100_000, description="Records per transaction in uploads and imports."
    )
    default_page_size: int = Field(100, ge=1)
    max_page_size: int = Field(1000, ge=1, le=10_000)


class ServerSettings(BaseModel):
    """How `crc-gateway serve` guards its connections: slow or oversized request heads, shutdown."""

    model_config = ConfigDict(extra="forbid")

    header_timeout_seconds: float = Field(
        10,
        gt=0,
        le=300,
        description="A request's line and headers must arrive whole within this long of the "
        "connection opening (or of the previous response); else the connection is closed.",
    )
    max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest request line and headers; a larger one is answered 431 and closed.",
    )
    keep_alive_seconds: int = Field(
        5, ge=1, le=300, description="An idle kept-alive connection is closed after this long."
    )
    graceful_shutdown_seconds: int = Field(
        5,
        ge=1,
        le=120,
        description="On SIGTERM or SIGINT, requests and deliveries still running after this "
        "long are cut off (long polls answer at once; a cut-off delivery is sent again).",
    )


class IdempotencySettings(BaseModel):
    """How long Idempotency-Key records live."""

    retention_hours: int = Field(24, ge=24, description="Keys are kept at least this long.")
    lock_seconds: int = Field(
        60, ge=1, description="An in-flight key older than this is taken over (crashed request)."
    )
    purge_interval_seconds: float = Field(
        3600, gt=0, description="How often expired keys are deleted."
    )


class DatabaseSettings(BaseModel):
    """Engine tuning; the URL itself is GATEWAY_DATABASE_URL."""

    sqlite_busy_timeout_ms: int = Field(30_000, ge=0)
    pool_size: int = Field(10, ge=1)
    max_overflow: int = Field(10, ge=0)
    write_attempts: int = Field(
        3, ge=1, description="Tries for a write transaction that hits a deadlock."
    )


class SurvivorshipStrategy(StrEnum):
    """How a golden record field picks its value among the linked source records."""

    MOST_RECENT = "most_recent"
    SOURCE_PRIORITY = "source_priority"
    MOST_COMPLETE = "most_complete"


class SurvivorshipSettings(BaseModel):
    """Which source record's value each golden record field takes."""

    model_config = ConfigDict(extra="forbid")

    default: SurvivorshipStrategy = Field(
        SurvivorshipStrategy.MOST_RECENT, description="Strategy for fields not named in `fields`."
    )
    fields: dict[str, SurvivorshipStrategy] = Field(
        default_factory=dict,
        description="Strategy per field (forenames, surname, aliases, date_of_birth, sex, "
        "addresses, contact, identifiers.crn, identifiers.pnc, ...).",
    )
    source_priority: list[str] = Field(
        default_factory=list,
        description="Sources in order of trust for `source_priority`; unlisted sources rank last.",
    )


class MatchingSettings(BaseModel):
    """Identity resolution: which model scores candidates, and how many are looked at."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description="False links on an exact CRN only, with no candidates, keys or decisions "
        "(for measuring the matcher's cost; a store built so cannot be matched later).",
    )
    model_file: Path | None = Field(
        None, description="A model written by `crc-gateway matcher train`; the packaged default."
    )
    max_candidates: int = Field(
        200, ge=1, le=10_000, description="Candidate source records scored per record at most."
    )
    max_key_records: int = Field(
        500,
        ge=1,
        description="A blocking key held by more source records than this is too common to use.",
    )
    reruns_enabled: bool = Field(
        True, description="Whether this server carries out the matcher re-runs an admin queues."
    )
    rerun_check_seconds: float = Field(
        5, gt=0, le=3600, description="How often a server looks for a queued matcher re-run."
    )


class FeedSettings(BaseModel):
    """The change feed: long polling and how long changes are kept."""

    model_config = ConfigDict(extra="forbid")

    max_wait_seconds: float = Field(
        30, ge=0, le=30, description="Longest `wait=` a reader may ask for."
    )
    head_check_seconds: float = Field(
        0.25,
        gt=0,
        le=5,
        description="How often waiting readers' replica looks for changes other replicas wrote.",
    )
    max_waiters: int = Field(
        500, ge=0, description="Readers one replica holds waiting at once; more are answered now."
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Changes older than this are purged (never one still owed to a subscriber); "
        "None keeps every change.",
    )
    purge_interval_seconds: float = Field(3600, gt=0)


def _default_schedule() -> list[float]:
    # Standard Webhooks' published schedule, extended to about three days.
    minute, hour = 60.0, 3600.0
    return [
        5.0,
        5 * minute,
        30 * minute,
        2 * hour,
        5 * hour,
        10 * hour,
        10 * hour,
        10 * hour,
        10 * hour,
        10 * hour,
        15 * hour,
    ]


class WebhookSettings(BaseModel):
    """Delivering changes to subscribers: where to, how hard to try, and the worker's pace."""

    model_config = ConfigDict(extra="forbid")

    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts a subscription URL may name: exact names or `*.domain`; empty allows "
        "no subscription at all.",
    )
    require_https: bool = Field(True, description="Refuse http:// subscription URLs.")
    retry_schedule_seconds: list[float] = Field(
        default_factory=_default_schedule,
        min_length=1,
        max_length=50,
        description="Wait before each retry; after the last one fails the event is dead-lettered.",
    )
    jitter: float = Field(
        0.1, ge=0, le=0.5, description="Each wait is spread by up to this fraction either way."
    )
    timeout_seconds: float = Field(15, gt=0, le=120, description="Per delivery attempt.")
    lease_seconds: float = Field(
        120,
        gt=0,
        description="A claimed delivery not reported by then is claimed again (a dead worker).",
    )
    worker_enabled: bool = Field(True, description="Deliver from inside the service process.")
    idle_seconds: float = Field(
        0.5, gt=0, le=60, description="How often an idle worker looks for due deliveries."
    )
    concurrency: int = Field(10, ge=1, le=200, description="Deliveries in flight per worker.")
    max_response_bytes: int = Field(
        64 * 1024, ge=1024, description="Larger receiver answers are not read for write-back."
    )
    delivered_retention_days: int = Field(
        7, ge=1, description="Delivered outbox rows are purged after this many days."
    )
    max_subscriptions: int = Field(50, ge=1, le=1000)

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> WebhookSettings:
        # A claim must outlive the attempt and its recording, or a second worker sends it too.
        if self.lease_seconds < 2 * self.timeout_seconds:
            raise ValueError("lease_seconds must be at least twice timeout_seconds")
        return self


class Settings(BaseSettings):
    """All settings; nested sections use `__`, e.g. GATEWAY_LIMITS__MAX_BODY_BYTES."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = DEFAULT_DATABASE_URL
    database: DatabaseSettings = DatabaseSettings()
    limits: LimitSettings = LimitSettings()
    server: ServerSettings = ServerSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    matching: MatchingSettings = MatchingSettings()
    survivorship: SurvivorshipSettings = SurvivorshipSettings()
    feed: FeedSettings = FeedSettings()
    webhooks: WebhookSettings = WebhookSettings()
    sources: dict[str, SourceSettings] = Field(
        default_factory=dict, description="Sources by name (GATEWAY_SOURCES as JSON)."
    )
    sources_file: Path | None = Field(
        None, description="A YAML file of sources, merged under `sources`."
    )
    bootstrap_admin_key_file: Path | None = Field(
        None,
        description="A file holding an admin API key chosen by the deployer (e.g. a mounted "
        "secret); at start-up, an admin with that key is created if no active admin exists.",
    )
    docs_enabled: bool = Field(True, description="Serve /docs and /openapi.json.")
    log_format: str = Field("json", pattern="^(json|text)$")
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _postgres_uses_the_installed_driver(cls, url: str) -> str:
        # Heroku-style `postgres://` is no SQLAlchemy dialect, and `postgresql://` means psycopg2,
        # which is not installed: both are what people paste, so both mean psycopg here.
        scheme, separator, rest = url.partition("://")
        if separator and scheme.lower() in ("postgres", "postgresql"):
            return f"{POSTGRES_SCHEME}://{rest}"
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file for a file-backed SQLite URL, else None."""
        if not self.is_sqlite:
            return None
        _, _, path = self.database_url.partition(":///")
        return Path(path) if path and path != ":memory:" else None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, built on first use (never at import time)."""
    return Settings()
