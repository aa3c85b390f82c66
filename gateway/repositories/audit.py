"""The audit log. There is deliberately no update or delete here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import AuditEntry


def append(session: Session, entry: AuditEntry) -> None:
    session.add(entry)


def list_for_client(session: Session, client_id: uuid.UUID) -> Sequence[AuditEntry]:
    return session.scalars(
        select(AuditEntry).where(AuditEntry.client_id == client_id).order_by(AuditEntry.id)
    ).all()
