"""The quarantine: what was rejected and why; replay or discard (operators)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from gateway.api.deps import DatabaseDep, MatcherDep, SettingsDep, require
from gateway.api.v1.shapes import (
    NO_NUL_PATTERN,
    FieldErrorOut,
    InputModel,
    PageLimit,
    RowCursor,
    RowIdPath,
    SourceFilter,
    iso_moment,
    page_size,
)
from gateway.models import RejectedRecord, utcnow
from gateway.services import quarantine
from gateway.services.clients import Principal, Role
from gateway.services.ingest import Outcome
from gateway.services.sources import SourceRegistry

router = APIRouter(tags=["quarantine"])
OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]


class QuarantinedRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    external_id: str | None
    adapter: str
    adapter_version: str = Field(description="The adapter version that rejected it.")
    position: str | None = Field(description="Where in the payload it was, e.g. `lines 12-15`.")
    errors: list[FieldErrorOut]
    status: str = Field(description="quarantined, replayed or discarded")
    occurrences: int = Field(description="How many times this exact payload arrived.")
    received_at: datetime
    last_received_at: datetime
    import_id: uuid.UUID | None
    resolved_at: datetime | None
    resolution_note: str | None
    replayed_as: uuid.UUID | None = Field(description="The source record it became, if replayed.")


class QuarantinedRecordDetailOut(QuarantinedRecordOut):
    payload: Any = Field(
        description="The record exactly as the source sent it; null when `payload_text` is set."
    )
    payload_text: str | None = Field(
        None,
        description=(
            "Set instead of `payload` when the record holds values the database cannot store "
            "as JSON (a NUL character, a lone surrogate, an integer beyond 64 bits, NaN): the "
            "whole record as JSON text, those values escaped. Replay reads it as sent."
        ),
    )


class QuarantinePageOut(BaseModel):
    items: list[QuarantinedRecordOut]
    next_after: int | None = Field(description="Pass as `after` for the next page.")


class ReplayIn(InputModel):
    payload: Any = Field(
        None, description="An operator-corrected payload, in the source's raw form. Optional."
    )


class ReplayOut(BaseModel):
    record: QuarantinedRecordOut
    outcome: Outcome
    person_id: uuid.UUID | None


class DiscardIn(InputModel):
    reason: str = Field(min_length=1, max_length=500)


@router.get("/v1/quarantine", response_model=QuarantinePageOut, summary="Rejected records")
def list_quarantine(
    db: DatabaseDep,
    settings: SettingsDep,
    principal: OperatorDep,
    source: SourceFilter = None,
    status: Annotated[
        Literal["quarantined", "replayed", "discarded", "all"],
        Query(description="Default: quarantined"),
    ] = "quarantined",
    error_path: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NO_NUL_PATTERN,
            description="Errors on this field path (or below)",
        ),
    ] = None,
    error_type: Annotated[str | None, Query(max_length=100, pattern=NO_NUL_PATTERN)] = None,
    received_from: Annotated[
        AwareDatetime | None,
        BeforeValidator(iso_moment),
        Query(description="Records last received at or after this moment (ISO 8601, with a zone)"),
    ] = None,
    received_to: Annotated[
        AwareDatetime | None,
        BeforeValidator(iso_moment),
        Query(description="Records first received before this moment (ISO 8601, with a zone)"),
    ] = None,
    after: RowCursor = 0,
    limit: PageLimit = None,
) -> QuarantinePageOut:
    size = page_size(limit, settings.limits)
    where = quarantine.QuarantineFilter(
        status=None if status == "all" else status,
        source=source,
        error_path=error_path,
        error_type=error_type,
        received_from=received_from,
        received_to=received_to,
    )
    rows = db.write(
        lambda session: quarantine.list_records(
            session, where=where, after_id=after, limit=size, principal=principal, now=utcnow()
        )
    )
    return QuarantinePageOut(
        items=[QuarantinedRecordOut.model_validate(row) for row in rows],
        next_after=rows[-1].id if len(rows) == size else None,
    )


@router.get(
    "/v1/quarantine/{record_id}",
    response_model=QuarantinedRecordDetailOut,
    summary="A rejected record with its raw payload",
)
def get_quarantined(
    record_id: RowIdPath, db: DatabaseDep, principal: OperatorDep
) -> QuarantinedRecordDetailOut:
    row: RejectedRecord = db.write(
        lambda session: quarantine.get_record(session, record_id, principal=principal, now=utcnow())
    )
    return QuarantinedRecordDetailOut.model_validate(row)


@router.post(
    "/v1/quarantine/{record_id}/replay",
    response_model=ReplayOut,
    summary="Replay a rejected record through its adapter, or with a corrected payload",
    responses={
        409: {"description": "Already replayed or discarded"},
        422: {"description": "Rejected again; the errors are in the problem document"},
    },
)
def replay_quarantined(
    record_id: RowIdPath,
    request: Request,
    db: DatabaseDep,
    matcher: MatcherDep,
    principal: OperatorDep,
    body: ReplayIn | None = None,
) -> ReplayOut:
    sources: SourceRegistry = request.app.state.sources
    has_correction = body is not None and "payload" in body.model_fields_set
    result = db.write(
        lambda session: quarantine.replay(
            session,
            record_id,
            sources=sources,
            corrected_payload=body.payload if body is not None else None,
            has_correction=has_correction,
            principal=principal,
            now=utcnow(),
            matcher=matcher,
        )
    )
    if result.errors is not None:
        raise quarantine.ReplayRejected(
            "the record still does not translate", errors=[dict(e) for e in result.errors]
        )
    return ReplayOut(
        record=QuarantinedRecordOut.model_validate(result.record),
        outcome=result.outcome,
        person_id=result.person_id,
    )


@router.post(
    "/v1/quarantine/{record_id}/discard",
    response_model=QuarantinedRecordOut,
    summary="Close a rejected record without storing it",
    responses={409: {"description": "Already replayed or discarded"}},
)
def discard_quarantined(
    record_id: RowIdPath, body: DiscardIn, db: DatabaseDep, principal: OperatorDep
) -> QuarantinedRecordOut:
    row = db.write(
        lambda session: quarantine.discard(
            session, record_id, reason=body.reason, principal=principal, now=utcnow()
        )
    )
    return QuarantinedRecordOut.model_validate(row)
