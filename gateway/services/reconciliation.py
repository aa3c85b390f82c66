"""Reconciliation: what the gateway holds of one source, so the source or the central system can
check it against its own records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.models import SourceRecord
from gateway.repositories import source_records as source_records_repo
from gateway.services import audit
from gateway.services.clients import Principal


@dataclass(frozen=True)
class StoredRecord:
    record: SourceRecord
    person_id: uuid.UUID
    """The live person the record belongs to (a merged person's survivor)."""
    warnings: Sequence[dict[str, Any]]


def list_source_records(
    session: Session,
    *,
    source: str,
    external_id: str | None,
    after: str | None,
    limit: int,
    principal: Principal | None,
    now: datetime,
) -> list[StoredRecord]:
    """A page of a source's stored records in external-id order, each with its live person."""
    records = source_records_repo.page_for_source(
        session, source, external_id=external_id, after=after, limit=limit
    )
    live = source_records_repo.live_persons_of(session, {record.person_id for record in records})
    page = [
        StoredRecord(
            record=record,
            person_id=live[record.person_id],
            warnings=list(record.warnings or []),
        )
        for record in records
    ]
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CONSULT,
        resource="source-records",
        person_ids=[item.person_id for item in page],
        now=now,
        detail={
            "source": source,
            "lookup": ["external_id"] if external_id is not None else [],
            "found": len(page),
        },
    )
    return page
