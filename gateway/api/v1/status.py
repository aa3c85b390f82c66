"""GET /v1/status and /v1/sources/{source}/status: what arrived, how polling goes, where the feed
stands; POST /v1/sources/{source}/resume: un-pause a polled source."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway.api.deps import (
    DatabaseDep,
    MatcherDep,
    authenticate,
    require,
    require_source_access,
)
from gateway.api.v1.shapes import SourcePath
from gateway.api.v1.subscriptions import SubscriptionStatusOut
from gateway.models import utcnow
from gateway.services import polling, status
from gateway.services.clients import Principal, Role
from gateway.services.sources import SourceRegistry

router = APIRouter(tags=["status"])


class PollingStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    paused: bool = Field(description="Not polled until an operator resumes it.")
    paused_reason: str | None = Field(description="Why it was paused (the source's fatal error).")
    cursor_present: bool = Field(
        description="Whether a resume point is stored (the cursor itself is not shown)."
    )
    last_poll_at: datetime | None = Field(description="When the last poll started.")
    last_success_at: datetime | None = Field(description="When a page was last stored.")
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    next_poll_at: datetime | None = Field(description="When the source is due again.")
    records_polled: int = Field(description="Records fetched, including pages read again.")
    leased_until: datetime | None = Field(description="Set while a gateway replica is polling it.")


class SourceStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    source: str
    received: int = Field(description="Records received, whatever their outcome.")
    created: int
    updated: int
    unchanged: int
    rejected: int
    last_received_at: datetime | None
    polling: PollingStatusOut | None = Field(
        None, description="Polling state; null for a source that pushes."
    )


class FeedStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    head_cursor: str = Field(description="Cursor of the newest change.")
    head_seq: int
    changes: int
    last_change_at: datetime | None


class IdentityStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    model_version: str = Field(description="The match model deciding new records.")
    matching_enabled: bool
    review_pending: int = Field(description="Possible matches waiting in GET /v1/review.")
    oldest_pending_at: datetime | None = Field(description="When the oldest of them arrived.")


class GatewayStatusOut(BaseModel):
    sources: list[SourceStatusOut]
    feed: FeedStatusOut
    identity: IdentityStatusOut
    subscriptions: list[SubscriptionStatusOut] = Field(
        description="Per webhook subscriber: backlog, lag, last success and error, dead letters."
    )


def _polled(request: Request) -> frozenset[str]:
    sources: SourceRegistry = request.app.state.sources
    return frozenset(source.name for source in sources.polled())


@router.get("/v1/status", response_model=GatewayStatusOut, summary="Status of every source")
def gateway_status(
    request: Request,
    db: DatabaseDep,
    matcher: MatcherDep,
    _principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
) -> GatewayStatusOut:
    polled = _polled(request)
    result, version = db.read(
        lambda session: (
            status.gateway_status(session, polled=polled),
            matcher.for_session(session).model.version,
        )
    )
    return GatewayStatusOut(
        sources=[SourceStatusOut.model_validate(row) for row in result.sources],
        feed=FeedStatusOut.model_validate(result.feed),
        identity=IdentityStatusOut(
            model_version=version,
            matching_enabled=matcher.enabled,
            review_pending=result.identity.review_pending,
            oldest_pending_at=result.identity.oldest_pending_at,
        ),
        subscriptions=[SubscriptionStatusOut.model_validate(row) for row in result.subscriptions],
    )


@router.get(
    "/v1/sources/{source}/status", response_model=SourceStatusOut, summary="Status of one source"
)
def source_status(
    source: SourcePath,
    request: Request,
    db: DatabaseDep,
    principal: Annotated[Principal, Depends(authenticate)],
) -> SourceStatusOut:
    require_source_access(principal, source, roles={Role.OPERATOR})
    polled = _polled(request)
    return SourceStatusOut.model_validate(
        db.read(lambda session: status.source_status(session, source, polled=polled))
    )


@router.post(
    "/v1/sources/{source}/resume",
    response_model=SourceStatusOut,
    summary="Resume polling a paused source",
    description=(
        "Un-pauses a polled source that a fatal error paused (bad credentials, a broken "
        "contract) and makes it due at once. Resuming a source that is not paused changes "
        "nothing. Audited."
    ),
)
def resume_source(
    source: SourcePath,
    request: Request,
    db: DatabaseDep,
    principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
) -> SourceStatusOut:
    polled = _polled(request)

    def work(session: Session) -> None:
        polling.resume_source(
            session, source=source, polled_sources=polled, principal=principal, now=utcnow()
        )

    db.write(work)
    return SourceStatusOut.model_validate(
        db.read(lambda session: status.source_status(session, source, polled=polled))
    )
