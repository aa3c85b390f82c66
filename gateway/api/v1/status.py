"""GET /v1/status and /v1/sources/{source}/status: what arrived, and where the feed stands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import DatabaseDep, authenticate, require, require_source_access
from gateway.services import status
from gateway.services.clients import Principal, Role

router = APIRouter(tags=["status"])


class SourceStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    source: str
    received: int = Field(description="Records received, whatever their outcome.")
    created: int
    updated: int
    unchanged: int
    rejected: int
    last_received_at: datetime | None


class FeedStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    head_cursor: str = Field(description="Cursor of the newest change.")
    head_seq: int
    changes: int
    last_change_at: datetime | None


class GatewayStatusOut(BaseModel):
    sources: list[SourceStatusOut]
    feed: FeedStatusOut


@router.get("/v1/status", response_model=GatewayStatusOut, summary="Status of every source")
def gateway_status(
    db: DatabaseDep, _principal: Annotated[Principal, Depends(require(Role.OPERATOR))]
) -> GatewayStatusOut:
    result = db.read(status.gateway_status)
    return GatewayStatusOut(
        sources=[SourceStatusOut.model_validate(row) for row in result.sources],
        feed=FeedStatusOut.model_validate(result.feed),
    )


@router.get(
    "/v1/sources/{source}/status", response_model=SourceStatusOut, summary="Status of one source"
)
def source_status(
    source: str, db: DatabaseDep, principal: Annotated[Principal, Depends(authenticate)]
) -> SourceStatusOut:
    require_source_access(principal, source, roles={Role.OPERATOR})
    return SourceStatusOut.model_validate(
        db.read(lambda session: status.source_status(session, source))
    )
