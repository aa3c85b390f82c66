"""What sources sent: accepted records (current state and every version) and rejected ones."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.models.base import Base, BigIntPK, JSONDocument, UTCDateTime

if TYPE_CHECKING:
    from gateway.models.person import Person


class SourceRecord(Base):
    """The current version of one record of one source, linked to the person it describes."""

    __tablename__ = "source_records"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # Only the records with data-quality warnings, in external-id order: a source's
        # data-quality page and its counts.
        Index(
            "ix_source_records_warned",
            "source",
            "external_id",
            sqlite_where=text("warning_count > 0"),
            postgresql_where=text("warning_count > 0"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    source: Mapped[str] = mapped_column(String(63))
    external_id: Mapped[str] = mapped_column(String(128))
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSONDocument)
    canonical: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    adapter: Mapped[str] = mapped_column(String(63))
    adapter_version: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    source_version: Mapped[str | None] = mapped_column(String(128))
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A person linked this record by hand (review, manual link or split); never moved automatically.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Identity fields the gateway dropped rather than reject the record: {path, rule, message,
    # value}, the raw value included (personal data, like the payload beside it).
    warnings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument, nullable=True)
    # len(warnings), so the warned records of a source are found without reading JSON.
    warning_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # Declared for the unit of work's insert ordering; loading through it is refused.
    person: Mapped[Person] = relationship(lazy="raise")


class SourceRecordVersion(Base):
    """Every distinct version a source sent of a record, raw, so nothing sent is ever lost."""

    __tablename__ = "source_record_versions"
    __table_args__ = (UniqueConstraint("source_record_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    source_record_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("source_records.id"))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSONDocument)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

    source_record: Mapped[SourceRecord] = relationship(lazy="raise")


class RejectedRecord(Base):
    """A record that failed validation: the quarantine, raw payload and field errors kept.

    The same bad payload sent again is counted on its row, not stored twice.
    """

    __tablename__ = "rejected_records"
    __table_args__ = (
        Index("ix_rejected_records_source_received_at", "source", "received_at"),
        Index("ix_rejected_records_source_payload_hash", "source", "payload_hash"),
        Index("ix_rejected_records_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(63))
    external_id: Mapped[str | None] = mapped_column(String(128))
    adapter: Mapped[str] = mapped_column(String(63))
    adapter_version: Mapped[str] = mapped_column(String(32))
    position: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSONDocument)
    # Set instead of `payload` when it holds values no JSON column takes (NUL, a lone
    # surrogate, a 2^63 integer, NaN): the whole payload as escaped ASCII JSON text.
    payload_text: Mapped[str | None] = mapped_column(Text)
    payload_hash: Mapped[str] = mapped_column(String(64))
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16), default="quarantined")
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    import_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    resolution_note: Mapped[str | None] = mapped_column(Text)
    replayed_as: Mapped[uuid.UUID | None] = mapped_column(Uuid)
