"""Golden person records and the cases linked to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.models.base import Base, JSONDocument, UTCDateTime

if TYPE_CHECKING:
    from gateway.models.source_record import SourceRecord


class Person(Base):
    """One person's golden record; its id never changes and is what other systems hold."""

    __tablename__ = "persons"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Canonical identifiers copied out of the golden record so lookups use an index.
    crn: Mapped[str | None] = mapped_column(String(7), index=True)
    pnc: Mapped[str | None] = mapped_column(String(13), index=True)
    cro: Mapped[str | None] = mapped_column(String(12), index=True)
    noms: Mapped[str | None] = mapped_column(String(7), index=True)
    nino: Mapped[str | None] = mapped_column(String(9), index=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the person was merged into another: reads of this id redirect to the survivor.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("persons.id"))
    merged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Identifiers the central system assigned ({"crn": {"value", "assigned_at", "by"}}): they
    # outrank every source's value whenever the golden record is rebuilt.
    assigned_identifiers: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)


class Case(Base):
    """The case a source holds for a person, as that source last described it."""

    __tablename__ = "cases"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id"), index=True)
    source_record_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("source_records.id"), unique=True
    )
    source: Mapped[str] = mapped_column(String(63))
    record: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # Declared for the unit of work's insert ordering; loading through them is refused.
    person: Mapped[Person] = relationship(lazy="raise")
    source_record: Mapped[SourceRecord] = relationship(lazy="raise")
