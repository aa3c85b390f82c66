"""The audit log of personal-data processing. Rows are only ever inserted."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String, Uuid, event
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from gateway.models.base import Base, BigIntPK, JSONDocument, UTCDateTime


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    client_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    action: Mapped[str] = mapped_column(String(16))
    resource: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    person_ids: Mapped[list[str]] = mapped_column(JSONDocument)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument)


class AuditLogIsAppendOnly(RuntimeError):
    """Raised when code tries to change or delete an audit entry."""


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(_mapper: Mapper[Any], _connection: Any, _target: AuditEntry) -> None:
    raise AuditLogIsAppendOnly("audit entries cannot be updated")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(_mapper: Mapper[Any], _connection: Any, _target: AuditEntry) -> None:
    raise AuditLogIsAppendOnly("audit entries cannot be deleted")
