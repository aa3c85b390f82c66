"""Retention: how long the change log and delivered outbox rows are kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gateway.repositories import changes as changes_repo
from gateway.repositories import subscriptions as subscriptions_repo
from gateway.settings import Settings


@dataclass(frozen=True)
class Purged:
    changes: int
    deliveries: int


def purge(session: Session, *, settings: Settings, now: datetime) -> Purged:
    """Delete delivered outbox rows past their retention and, if the feed has a retention
    period, changes older than it that no subscriber is still owed."""
    deliveries = subscriptions_repo.purge_delivered(
        session, before=now - timedelta(days=settings.webhooks.delivered_retention_days)
    )
    changes = 0
    if settings.feed.retention_days is not None:
        through = changes_repo.purgeable_through(
            session,
            before=now - timedelta(days=settings.feed.retention_days),
            below_seq=subscriptions_repo.lowest_owed_seq(session),
        )
        if through is not None:
            changes = changes_repo.purge_through(session, through)
    return Purged(changes=changes, deliveries=deliveries)
