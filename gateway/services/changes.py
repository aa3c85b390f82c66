"""Reading the change feed by opaque cursor."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.errors import BadRequest
from gateway.models import Change
from gateway.repositories import changes as changes_repo
from gateway.services import audit
from gateway.services.clients import Principal

_CURSOR_VERSION = "c1"


@dataclass(frozen=True)
class ChangePage:
    changes: Sequence[Change]
    next_cursor: str
    has_more: bool


def encode_cursor(seq: int) -> str:
    raw = f"{_CURSOR_VERSION}:{seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The sequence number behind a cursor; None or empty means the start of the feed."""
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, _, seq = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        value = int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("the cursor is not one this feed issued") from None
    if version != _CURSOR_VERSION or value < 0:
        raise BadRequest("the cursor is not one this feed issued")
    return value


def read_page(
    session: Session,
    *,
    after: str | None,
    limit: int,
    principal: Principal | None,
    now: datetime,
) -> ChangePage:
    """The next `limit` changes after the cursor, in commit order; audited as a consultation."""
    position = decode_cursor(after)
    head, _ = changes_repo.head(session)
    if position > head:
        raise BadRequest("the cursor is ahead of this feed (was it issued by another gateway?)")
    rows = changes_repo.page(session, after=position, limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_position = rows[-1].seq if rows else position
    if rows:
        audit.record(
            session,
            principal=principal,
            action=audit.AuditAction.CONSULT,
            resource="changes",
            person_ids=(row.person_id for row in rows),
            now=now,
            detail={"changes": len(rows)},
        )
    return ChangePage(changes=rows, next_cursor=encode_cursor(next_position), has_more=has_more)
