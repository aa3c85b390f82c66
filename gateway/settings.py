"""Configuration: one Settings object, read from GATEWAY_* environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/gateway.db"


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


class Settings(BaseSettings):
    """All settings; nested sections use `__`, e.g. GATEWAY_LIMITS__MAX_BODY_BYTES."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = DEFAULT_DATABASE_URL
    database: DatabaseSettings = DatabaseSettings()
    limits: LimitSettings = LimitSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    matching: MatchingSettings = MatchingSettings()
    survivorship: SurvivorshipSettings = SurvivorshipSettings()
    sources: dict[str, SourceSettings] = Field(
        default_factory=dict, description="Sources by name (GATEWAY_SOURCES as JSON)."
    )
    sources_file: Path | None = Field(
        None, description="A YAML file of sources, merged under `sources`."
    )
    docs_enabled: bool = Field(True, description="Serve /docs and /openapi.json.")
    log_format: str = Field("json", pattern="^(json|text)$")
    log_level: str = "INFO"

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
