"""Running per-source counters behind the status endpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base, UTCDateTime


class SourceStats(Base):
    __tablename__ = "source_stats"

    source: Mapped[str] = mapped_column(String(63), primary_key=True)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    last_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
