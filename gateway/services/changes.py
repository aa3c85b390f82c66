"""The change feed: publishing changes (with their outbox rows) and reading them by cursor."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.errors import BadRequest, Gone, InvalidRequest
from gateway.models import Change, DeliveryStatus, Subscription
from gateway.repositories import changes as changes_repo
from gateway.repositories import subscriptions as subscriptions_repo
from gateway.services import audit
from gateway.services.clients import Principal

_CURSOR_VERSION = "c1"

#: Every type of event the feed and webhooks carry.
EVENT_TYPES = (
    "person.created",
    "person.updated",
    "person.merged",
    "person.split",
    "case.created",
    "case.updated",
)


@dataclass(frozen=True)
class ChangePage:
    changes: Sequence[Change]
    next_cursor: str
    has_more: bool


@dataclass(frozen=True)
class FeedFilter:
    """Which changes a reader wants; empty collections mean all."""

    types: Collection[str] = ()
    sources: Collection[str] = ()
    # Changes this client caused itself (its write-backs) are left out of its own feed.
    exclude_origin_client: uuid.UUID | None = None

    def __post_init__(self) -> None:
        check_event_types(self.types, path="type")

    @property
    def narrows(self) -> bool:
        return bool(self.types or self.sources or self.exclude_origin_client)


def check_event_types(types: Collection[str], *, path: str) -> None:
    """Refuse event types the feed does not carry, naming the field they came in."""
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidRequest(
            f"unknown event type(s): {', '.join(unknown)}",
            errors=[{"path": path, "message": f"one of {', '.join(EVENT_TYPES)}", "type": "enum"}],
        )


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
    # Past a 64-bit sequence number no feed reaches: the driver would refuse it.
    if version != _CURSOR_VERSION or not 0 <= value < 2**63:
        raise BadRequest("the cursor is not one this feed issued")
    return value


def related_person_ids(change: Change) -> list[str]:
    """The other persons an event names: those merged into its person, or the one it split from."""
    snapshot = change.snapshot
    related = list(snapshot.get("merged_person_ids") or [])
    if snapshot.get("split_from_person_id"):
        related.append(snapshot["split_from_person_id"])
    return related


def envelope(change: Change) -> dict[str, Any]:
    """The stable, versioned shape of one event, as the feed and webhooks both carry it."""
    return {
        "id": str(change.seq),
        "cursor": encode_cursor(change.seq),
        "type": change.type,
        # UTC spelled with "Z", as the rest of the API spells it.
        "occurred_at": change.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "schema_version": change.schema_version,
        "person_id": str(change.person_id),
        "related_person_ids": related_person_ids(change),
        "case_id": str(change.case_id) if change.case_id else None,
        "source": change.source,
        "snapshot": change.snapshot,
    }


def subscriber_wants(subscription: Subscription, change: dict[str, Any]) -> bool:
    """Whether a change is owed to a subscriber: its filters, and never its own write-back."""
    if subscription.event_types and change["type"] not in subscription.event_types:
        return False
    if subscription.sources and change.get("source") not in subscription.sources:
        return False
    if change.get("origin_subscription_id") == subscription.id:
        return False
    origin_client = change.get("origin_client_id")
    return not (origin_client is not None and origin_client == subscription.client_id)


def publish(session: Session, changes: list[dict[str, Any]], *, now: datetime) -> list[int]:
    """Append changes to the feed and queue each for every subscriber that wants it.

    Call this last in a write transaction: the feed's order is the order of these calls' commits,
    and the outbox rows commit with the changes or not at all.
    """
    seqs = changes_repo.append(session, changes)
    if not seqs:
        return seqs
    # Paused and disabled subscribers are owed their changes too: resuming one delivers them.
    subscribers = subscriptions_repo.list_all(session)
    if subscribers:
        subscriptions_repo.enqueue(
            session,
            [
                {
                    "subscription_id": subscription.id,
                    "seq": seq,
                    "person_id": change["person_id"],
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for change, seq in zip(changes, seqs, strict=True)
                for subscription in subscribers
                if subscriber_wants(subscription, change)
            ],
        )
    session.info["feed_published"] = True
    return seqs


def read_page(
    session: Session,
    *,
    after: str | None,
    limit: int,
    principal: Principal | None,
    now: datetime,
    feed_filter: FeedFilter | None = None,
    audited: bool = True,
) -> ChangePage:
    """The next `limit` changes after the cursor, in commit order; audited as a consultation.

    With `audited=False` the caller records the read itself (`record_read`), so an empty read
    needs no write transaction.

    With a filter, a page that runs out of matches still moves the cursor up to the head it
    saw, so a narrow reader does not rescan the same stretch of the feed next time.
    """
    position = decode_cursor(after)
    feed_filter = feed_filter or FeedFilter()
    # The head first: every change up to it is committed, so a later read sees all of them.
    head, purged = changes_repo.feed_head(session)
    if after and position < purged:
        raise Gone(
            "the cursor points before the oldest change still held (the feed's retention "
            "period passed); start again without a cursor after reloading persons"
        )
    if position > head:
        raise BadRequest("the cursor is ahead of this feed (was it issued by another gateway?)")
    rows = changes_repo.page(
        session,
        after=position,
        limit=limit + 1,
        types=feed_filter.types,
        sources=feed_filter.sources,
        exclude_origin_client=feed_filter.exclude_origin_client,
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_position = rows[-1].seq if rows else position
    if not has_more and feed_filter.narrows:
        next_position = max(next_position, head)
    page = ChangePage(changes=rows, next_cursor=encode_cursor(next_position), has_more=has_more)
    if audited:
        record_read(session, page, principal=principal, now=now)
    return page


def record_read(
    session: Session, page: ChangePage, *, principal: Principal | None, now: datetime
) -> None:
    """Audit a page read as a consultation of the persons it names."""
    if page.changes:
        audit.record(
            session,
            principal=principal,
            action=audit.AuditAction.CONSULT,
            resource="changes",
            person_ids=(row.person_id for row in page.changes),
            now=now,
            detail={"changes": len(page.changes)},
        )
