"""GET /v1/changes: the change feed, by opaque cursor, in commit order."""

from __future__ import annotations

import functools
import time
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import DatabaseDep, SettingsDep, require
from gateway.api.v1.shapes import EventTypeList, PageLimit, SourceNameList, page_size
from gateway.models import Change, utcnow
from gateway.services import changes
from gateway.services.clients import Principal, Role
from gateway.services.feed_signal import FeedSignal

router = APIRouter(tags=["changes"])
# A cursor is base64url without padding; its content is the feed's own business.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"


class ChangeOut(BaseModel):
    """One event in the stable envelope the feed and webhooks share."""

    id: str = Field(description="The change's position in the feed; increases in commit order.")
    cursor: str = Field(description="Resume after this change by passing it as `after`.")
    type: str = Field(description=", ".join(changes.EVENT_TYPES))
    occurred_at: datetime
    schema_version: int = Field(description="Version of the canonical schema in `snapshot`.")
    person_id: uuid.UUID = Field(description="The person the event is about (the survivor).")
    related_person_ids: list[uuid.UUID] = Field(
        description="person.merged: the persons merged into it; person.split: the one it left."
    )
    case_id: uuid.UUID | None
    source: str | None = Field(description="The source whose record caused it, if one did.")
    snapshot: dict[str, Any] = Field(description="The canonical state after the change.")

    @classmethod
    def from_row(cls, row: Change) -> ChangeOut:
        return cls.model_validate(changes.envelope(row))


class ChangePageOut(BaseModel):
    changes: list[ChangeOut]
    next_cursor: str = Field(description="Pass as `after` for the next page (same when empty).")
    has_more: bool


def _listed(values: list[str] | None) -> list[str]:
    """Repeated parameters and comma-separated lists alike."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


@router.get(
    "/v1/changes",
    response_model=ChangePageOut,
    summary="Read the change feed",
    description="Every committed change exactly once, in commit order, from an opaque cursor. "
    "With `wait`, an empty page is held open until a change arrives or `wait` seconds pass. "
    "Changes this client caused itself (its write-backs) are left out unless `include_own`.",
)
async def list_changes(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require(Role.CENTRAL))],
    after: Annotated[
        str | None,
        Query(max_length=200, pattern=CURSOR_PATTERN, description="Cursor; omit to start"),
    ] = None,
    limit: PageLimit = None,
    wait: Annotated[
        float,
        Query(ge=0, description="Seconds to hold an empty page open (longer waits are cut to 30)"),
    ] = 0,
    type_: Annotated[
        list[EventTypeList] | None,
        Query(alias="type", max_length=200, description="Only these event types (repeatable)"),
    ] = None,
    source: Annotated[
        list[SourceNameList] | None,
        Query(max_length=200, description="Only changes caused by these sources (repeatable)"),
    ] = None,
    include_own: Annotated[
        bool, Query(description="Also return changes this client caused itself")
    ] = False,
) -> ChangePageOut:
    size = page_size(limit, settings.limits)
    wait = min(wait, settings.feed.max_wait_seconds)
    sources = _listed(source)
    feed_filter = changes.FeedFilter(
        types=_listed(type_),
        sources=sources,
        exclude_origin_client=None if include_own else principal.client_id,
    )
    signal: FeedSignal = request.app.state.feed_signal
    # Too many readers already waiting: answer now rather than hold another open.
    if signal.waiters >= settings.feed.max_waiters:
        wait = 0
    deadline = time.monotonic() + wait
    cursor = after
    while True:
        wake = signal.current()
        page = await run_in_threadpool(
            db.read,
            functools.partial(
                changes.read_page,
                after=cursor,
                limit=size,
                principal=principal,
                now=utcnow(),
                feed_filter=feed_filter,
                audited=False,
            ),
        )
        remaining = deadline - time.monotonic()
        # Shutting down: answer now (an empty page keeps the reader's cursor).
        if page.changes or remaining <= 0 or signal.closed or await request.is_disconnected():
            break
        cursor = page.next_cursor
        await signal.wait(wake, remaining)
    if page.changes:
        await run_in_threadpool(
            db.write,
            functools.partial(changes.record_read, page=page, principal=principal, now=utcnow()),
        )
    return ChangePageOut(
        changes=[ChangeOut.from_row(row) for row in page.changes],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )
