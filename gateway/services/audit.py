"""Recording personal-data processing: who collected, altered or consulted which persons."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from gateway.logs import request_id_var
from gateway.models import AuditEntry
from gateway.repositories import audit as audit_repo
from gateway.services.clients import Principal


class AuditAction(StrEnum):
    COLLECT = "collect"
    ALTER = "alter"
    CONSULT = "consult"
    ADMINISTER = "administer"


def record(
    session: Session,
    *,
    principal: Principal | None,
    action: AuditAction,
    resource: str,
    person_ids: Iterable[uuid.UUID],
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry. `detail` must hold no personal data (counts, ids of our own)."""
    audit_repo.append(
        session,
        AuditEntry(
            occurred_at=now,
            client_id=principal.client_id if principal else None,
            action=action.value,
            resource=resource,
            request_id=request_id_var.get(),
            person_ids=sorted({str(person_id) for person_id in person_ids}),
            detail=detail or {},
        ),
    )
