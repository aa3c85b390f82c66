"""What arrived from each source and where the feed stands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.models import SourceStats
from gateway.repositories import changes as changes_repo
from gateway.repositories import source_stats as stats_repo
from gateway.services.changes import encode_cursor
from gateway.services.clients import validate_source_name


@dataclass(frozen=True)
class FeedStatus:
    head_cursor: str
    head_seq: int
    changes: int
    last_change_at: datetime | None


@dataclass(frozen=True)
class GatewayStatus:
    sources: Sequence[SourceStats]
    feed: FeedStatus


def feed_status(session: Session) -> FeedStatus:
    seq, count = changes_repo.head(session)
    return FeedStatus(
        head_cursor=encode_cursor(seq),
        head_seq=seq,
        changes=count,
        last_change_at=changes_repo.last_occurred_at(session),
    )


def gateway_status(session: Session) -> GatewayStatus:
    return GatewayStatus(sources=stats_repo.list_all(session), feed=feed_status(session))


def source_status(session: Session, source: str) -> SourceStats:
    """A source's counters; a source that has sent nothing yet has all zeros."""
    validate_source_name(source)
    stats = stats_repo.get(session, source)
    if stats is None:
        return SourceStats(source=source, received=0, created=0, updated=0, unchanged=0, rejected=0)
    return stats
