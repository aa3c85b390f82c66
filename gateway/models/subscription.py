"""Webhook subscriptions and their outbox: one delivery row per change owed to a subscriber."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base, BigIntPK, JSONDocument, UTCDateTime


class Subscription(Base):
    """A receiver of signed webhooks: where, which events, and how its deliveries go."""

    __tablename__ = "subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(2048))
    # Empty lists mean every event type, every source.
    event_types: Mapped[list[str]] = mapped_column(JSONDocument)
    sources: Mapped[list[str]] = mapped_column(JSONDocument)
    # The signing key must be usable, so it cannot be hashed; it is never shown after creation.
    secret: Mapped[str] = mapped_column(String(200))
    # After a rotation, deliveries are signed with both secrets until this runs out, so the
    # receiver can switch to the new one without a gap.
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The API client the receiving system also calls in with: its own write-backs are not echoed.
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_clients.id"))
    active: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class Delivery(Base):
    """One change owed to one subscriber, written in the change's own transaction."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(BigInteger)
    person_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A worker's claim: nobody else delivers this row until the lease runs out.
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # Order per person, and one row per change per subscriber.
        Index("ix_deliveries_person_order", "subscription_id", "person_id", "seq"),
        Index("uq_deliveries_subscription_id_seq", "subscription_id", "seq", unique=True),
    )
