"""GET /v1/changes: the change feed, by opaque cursor, in commit order."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from gateway.api.deps import DatabaseDep, SettingsDep, require
from gateway.errors import InvalidRequest
from gateway.models import Change, utcnow
from gateway.services import changes
from gateway.services.clients import Principal, Role

router = APIRouter(tags=["changes"])


class ChangeOut(BaseModel):
    id: str = Field(description="The change's position in the feed; increases in commit order.")
    cursor: str = Field(description="Resume after this change by passing it as `after`.")
    type: str = Field(description="person.created, person.updated, case.created, case.updated")
    occurred_at: datetime
    person_id: uuid.UUID
    case_id: uuid.UUID | None
    source: str | None
    schema_version: int
    snapshot: dict[str, Any] = Field(description="The canonical state after the change.")

    @classmethod
    def from_row(cls, row: Change) -> ChangeOut:
        return cls(
            id=str(row.seq),
            cursor=changes.encode_cursor(row.seq),
            type=row.type,
            occurred_at=row.occurred_at,
            person_id=row.person_id,
            case_id=row.case_id,
            source=row.source,
            schema_version=row.schema_version,
            snapshot=row.snapshot,
        )


class ChangePageOut(BaseModel):
    changes: list[ChangeOut]
    next_cursor: str = Field(description="Pass as `after` for the next page (same when empty).")
    has_more: bool


@router.get("/v1/changes", response_model=ChangePageOut, summary="Read the change feed")
def list_changes(
    db: DatabaseDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require(Role.CENTRAL))],
    after: Annotated[str | None, Query(max_length=200, description="Cursor; omit to start")] = None,
    limit: Annotated[int | None, Query(ge=1, description="Page size")] = None,
) -> ChangePageOut:
    size = limit or settings.limits.default_page_size
    if size > settings.limits.max_page_size:
        raise InvalidRequest(f"limit is at most {settings.limits.max_page_size}")
    page = db.write(
        lambda session: changes.read_page(
            session, after=after, limit=size, principal=principal, now=utcnow()
        )
    )
    return ChangePageOut(
        changes=[ChangeOut.from_row(row) for row in page.changes],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )
