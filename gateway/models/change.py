"""The change log behind the feed, and the counter that orders it by commit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base, JSONDocument, UTCDateTime


class FeedHead(Base):
    """A single row holding the last sequence number handed out.

    Writers bump it as the last step before commit and hold its row lock until commit, so
    sequence numbers become visible strictly in order: a reader never sees n+1 before n.
    """

    __tablename__ = "feed_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    # Changes up to this number have been purged under the retention policy.
    purged_through: Mapped[int] = mapped_column(BigInteger, server_default="0")


class Change(Base):
    """One committed change to a person or case, with the snapshot a subscriber needs."""

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    person_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    source: Mapped[str | None] = mapped_column(String(63))
    source_record_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    schema_version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # Who caused a change that did not come from a source (a write-back, an operator): that
    # system is not sent its own change back.
    origin_client_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    origin_subscription_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (
        Index("ix_changes_type_seq", "type", "seq"),
        Index("ix_changes_source_seq", "source", "seq"),
    )
