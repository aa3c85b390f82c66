"""Identity resolution: blocking keys, match decisions, the human "not the same" pairs, the
stored match models and the matcher's re-runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base, BigIntPK, JSONDocument, UTCDateTime


class MatchKey(Base):
    """One blocking or identifier key of a source record: candidates are found through these."""

    __tablename__ = "match_keys"
    __table_args__ = (Index("ix_match_keys_key", "key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(96))
    source_record_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("source_records.id"), index=True)


class MatchDecision(Base):
    """Why a source record belongs to the person it does: automatic (with the model version
    that decided) or human. A possible match waits here, `pending`, for review."""

    __tablename__ = "match_decisions"
    __table_args__ = (
        Index("ix_match_decisions_status_created_at", "status", "created_at"),
        Index("ix_match_decisions_source_record_id", "source_record_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    source_record_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("source_records.id"))
    # automatic | human
    kind: Mapped[str] = mapped_column(String(16))
    # identifier | probabilistic | merge | new | rerun | reevaluated (automatic);
    # review_link | review_reject | manual_link | split (human)
    method: Mapped[str] = mapped_column(String(16))
    # link | possible | new, for automatic decisions
    band: Mapped[str | None] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(64))
    person_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    candidate_person_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    match_weight: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # decided | pending | linked | rejected | superseded
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    note: Mapped[str | None] = mapped_column(Text)


class MatchExclusion(Base):
    """Two source records a person said are not the same person; no automatic pass joins them.

    Kept between records, not persons, so it still holds after either side is merged.
    The pair is stored once, the smaller id first.
    """

    __tablename__ = "match_exclusions"
    __table_args__ = (
        PrimaryKeyConstraint("record_a", "record_b"),
        Index("ix_match_exclusions_record_b", "record_b"),
    )

    record_a: Mapped[uuid.UUID] = mapped_column(ForeignKey("source_records.id"))
    record_b: Mapped[uuid.UUID] = mapped_column(ForeignKey("source_records.id"))
    decision_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("match_decisions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MatchModelRow(Base):
    """A match model an admin stored; at most one is active, and ingest scores with it.

    The document is the model file as `MatchModel.dump` writes it; the version is its own.
    With none active the configured model file (or the packaged one) is used.
    """

    __tablename__ = "match_models"
    __table_args__ = (
        Index(
            "ux_match_models_active",
            "active",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class MatcherRun(Base):
    """One re-run of the matcher over every stored record, with its progress and outcome."""

    __tablename__ = "matcher_runs"
    __table_args__ = (
        Index("ix_matcher_runs_status", "status"),
        Index("ux_matcher_runs_slot", "slot", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # queued | running | succeeded | failed
    status: Mapped[str] = mapped_column(String(16))
    # "active" while queued or running, else NULL: the unique index allows one such run.
    slot: Mapped[str | None] = mapped_column(String(8))
    # Set anew by each claim; a process whose claim was taken over stops at its next write.
    claim: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    model_version: Mapped[str | None] = mapped_column(String(64))
    records_total: Mapped[int] = mapped_column(BigInteger, default=0)
    records_done: Mapped[int] = mapped_column(BigInteger, default=0)
    groups_changed: Mapped[int] = mapped_column(BigInteger, default=0)
    records_moved: Mapped[int] = mapped_column(BigInteger, default=0)
    persons_merged: Mapped[int] = mapped_column(BigInteger, default=0)
    persons_split: Mapped[int] = mapped_column(BigInteger, default=0)
    reviews_closed: Mapped[int] = mapped_column(BigInteger, default=0)
    reviews_opened: Mapped[int] = mapped_column(BigInteger, default=0)
    requested_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure: Mapped[str | None] = mapped_column(String(500))
