"""The quarantine: rejected records waiting for an operator to replay or discard them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from adapters.base import FieldError, RawRecord, RecordRejected
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.models import RejectedRecord
from gateway.repositories import source_records as source_records_repo
from gateway.services import audit, ingest
from gateway.services.clients import Principal
from gateway.services.identity import Matcher
from gateway.services.ingest import Outcome
from gateway.services.sources import SourceRegistry
from gateway.storable import safe_text

QUARANTINED = "quarantined"
REPLAYED = "replayed"
DISCARDED = "discarded"
STATUSES = (QUARANTINED, REPLAYED, DISCARDED)


class ReplayRejected(InvalidRequest):
    """The record still does not translate; its errors are in `errors`."""

    slug = "replay-rejected"
    title = "The record was rejected again"


@dataclass(frozen=True)
class QuarantineFilter:
    status: str | None = QUARANTINED
    source: str | None = None
    error_path: str | None = None
    error_type: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None


@dataclass(frozen=True)
class ReplayResult:
    record: RejectedRecord
    outcome: Outcome
    person_id: uuid.UUID | None = None
    errors: list[FieldError] | None = None


def list_records(
    session: Session,
    *,
    where: QuarantineFilter,
    after_id: int,
    limit: int,
    principal: Principal | None,
    now: datetime,
) -> Sequence[RejectedRecord]:
    if where.status is not None and where.status not in STATUSES:
        raise InvalidRequest(f"status is one of {', '.join(STATUSES)}")
    rows = source_records_repo.list_rejected(
        session,
        status=where.status,
        source=where.source,
        error_path=where.error_path,
        error_type=where.error_type,
        received_from=where.received_from,
        received_to=where.received_to,
        after_id=after_id,
        limit=limit,
    )
    if rows:
        audit.record(
            session,
            principal=principal,
            action=audit.AuditAction.CONSULT,
            resource="quarantine",
            person_ids=[],
            now=now,
            detail={"quarantined_records": [row.id for row in rows]},
        )
    return rows


def get_record(
    session: Session, rejected_id: int, *, principal: Principal | None, now: datetime
) -> RejectedRecord:
    row = source_records_repo.get_rejected(session, rejected_id)
    if row is None:
        raise NotFound("no quarantined record with that id")
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CONSULT,
        resource="quarantine",
        person_ids=[],
        now=now,
        detail={"quarantined_records": [row.id], "payload": True},
    )
    return row


def _waiting(session: Session, rejected_id: int) -> RejectedRecord:
    row = source_records_repo.get_rejected(session, rejected_id, for_update=True)
    if row is None:
        raise NotFound("no quarantined record with that id")
    if row.status != QUARANTINED:
        raise Conflict(f"this record was already {row.status}")
    return row


def replay(
    session: Session,
    rejected_id: int,
    *,
    sources: SourceRegistry,
    corrected_payload: Any = None,
    has_correction: bool = False,
    principal: Principal | None,
    now: datetime,
    matcher: Matcher | None = None,
) -> ReplayResult:
    """Run a quarantined record through its adapter again (as it is now), or a corrected payload.

    Success stores it like any pushed record and marks the quarantine entry replayed; another
    rejection leaves it quarantined with the new errors (outcome `rejected`, errors set), to be
    committed like any other change.
    """
    row = _waiting(session, rejected_id)
    adapter = sources.adapter_named(row.source, row.adapter)
    if adapter is None:
        raise Conflict(f"the {row.adapter} adapter is not available for source {row.source}")
    data = corrected_payload if has_correction else stored_payload(row)
    raw = RawRecord(data=data, external_id=row.external_id, position=row.position)
    try:
        ingest.translate_storable(
            adapter, data, source=row.source, received_at=now, strict=sources.strict(row.source)
        )
    except RecordRejected as rejected:
        _refresh_errors(row, rejected.errors, adapter.version, keep=has_correction)
        return ReplayResult(record=row, outcome=Outcome.REJECTED, errors=rejected.errors)
    batch = ingest.ingest_batch(
        session,
        source=row.source,
        adapter=adapter,
        raw_records=[raw],
        principal=principal,
        received_at=now,
        matcher=matcher,
        strict=sources.strict(row.source),
    )
    [result] = batch.results
    row.status = REPLAYED
    row.resolved_at = now
    row.resolved_by = principal.client_id if principal else None
    row.resolution_note = "replayed with a corrected payload" if has_correction else "replayed"
    row.replayed_as = result.source_record_id
    _audit_resolution(session, row, principal, now, person_id=result.person_id)
    return ReplayResult(record=row, outcome=result.outcome, person_id=result.person_id)


def stored_payload(row: RejectedRecord) -> Any:
    """The payload as the source sent it, also when it had to be kept as JSON text."""
    return row.payload if row.payload_text is None else json.loads(row.payload_text)


def _refresh_errors(
    row: RejectedRecord, errors: list[FieldError], adapter_version: str, *, keep: bool
) -> None:
    # A failed correction says nothing about the stored payload: its errors stay as they were.
    if not keep:
        row.errors = [{k: safe_text(str(v)) for k, v in error.items()} for error in errors]
        row.adapter_version = adapter_version


def discard(
    session: Session,
    rejected_id: int,
    *,
    reason: str,
    principal: Principal | None,
    now: datetime,
) -> RejectedRecord:
    """Close a quarantined record without storing it; the raw payload stays for the record."""
    row = _waiting(session, rejected_id)
    row.status = DISCARDED
    row.resolved_at = now
    row.resolved_by = principal.client_id if principal else None
    row.resolution_note = reason
    _audit_resolution(session, row, principal, now, person_id=None)
    return row


def _audit_resolution(
    session: Session,
    row: RejectedRecord,
    principal: Principal | None,
    now: datetime,
    *,
    person_id: uuid.UUID | None,
) -> None:
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.ALTER,
        resource="quarantine",
        person_ids=[person_id] if person_id else [],
        now=now,
        detail={"quarantined_record": row.id, "resolution": row.status},
    )
