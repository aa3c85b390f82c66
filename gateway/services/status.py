"""What arrived from each source, how polling each polled source goes, and where the feed stands."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.models import SourceState, SourceStats, Subscription, utcnow
from gateway.repositories import changes as changes_repo
from gateway.repositories import matching as matching_repo
from gateway.repositories import source_state as state_repo
from gateway.repositories import source_stats as stats_repo
from gateway.repositories import subscriptions as subscriptions_repo
from gateway.services.changes import encode_cursor
from gateway.services.clients import validate_source_name


@dataclass(frozen=True)
class FeedStatus:
    head_cursor: str
    head_seq: int
    changes: int
    last_change_at: datetime | None


@dataclass(frozen=True)
class PollingStatus:
    """A polled source's state. Whether it has a cursor, not the cursor: vendors' opaque cursors
    often encode the last record's key, and an identifier has no place in a status page."""

    paused: bool
    paused_reason: str | None
    cursor_present: bool
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    next_poll_at: datetime | None
    records_polled: int
    leased_until: datetime | None

    @classmethod
    def of(cls, state: SourceState | None) -> PollingStatus:
        if state is None:
            return cls(False, None, False, None, None, None, None, 0, None, 0, None)
        return cls(
            paused=state.paused,
            paused_reason=state.paused_reason,
            cursor_present=state.cursor is not None,
            last_poll_at=state.last_poll_at,
            last_success_at=state.last_success_at,
            last_error=state.last_error,
            last_error_at=state.last_error_at,
            consecutive_failures=state.consecutive_failures,
            next_poll_at=state.next_poll_at,
            records_polled=state.records_polled,
            leased_until=state.leased_until,
        )


@dataclass(frozen=True)
class SourceStatus:
    source: str
    received: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    last_received_at: datetime | None
    polling: PollingStatus | None

    @classmethod
    def of(
        cls, source: str, stats: SourceStats | None, polling: PollingStatus | None
    ) -> SourceStatus:
        if stats is None:
            return cls(source, 0, 0, 0, 0, 0, None, polling)
        return cls(
            source=source,
            received=stats.received,
            created=stats.created,
            updated=stats.updated,
            unchanged=stats.unchanged,
            rejected=stats.rejected,
            last_received_at=stats.last_received_at,
            polling=polling,
        )


@dataclass(frozen=True)
class IdentityStatus:
    review_pending: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True)
class SubscriptionStatus:
    """How far behind a subscriber is: what it is owed, since when, and how delivery goes."""

    subscription_id: uuid.UUID
    name: str
    active: bool
    disabled_reason: str | None
    backlog: int
    due: int
    dead_letters: int
    oldest_undelivered_at: datetime | None
    lag_seconds: float
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None

    @classmethod
    def of(
        cls, subscription: Subscription, backlog: subscriptions_repo.Backlog | None, now: datetime
    ) -> SubscriptionStatus:
        backlog = backlog or subscriptions_repo.Backlog(0, 0, None, 0)
        oldest = backlog.oldest_pending_at
        return cls(
            subscription_id=subscription.id,
            name=subscription.name,
            active=subscription.active,
            disabled_reason=subscription.disabled_reason,
            backlog=backlog.pending,
            due=backlog.due,
            dead_letters=backlog.dead,
            oldest_undelivered_at=oldest,
            lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
            last_success_at=subscription.last_success_at,
            last_failure_at=subscription.last_failure_at,
            last_error=subscription.last_error,
        )


@dataclass(frozen=True)
class GatewayStatus:
    sources: Sequence[SourceStatus]
    feed: FeedStatus
    identity: IdentityStatus
    subscriptions: Sequence[SubscriptionStatus]


def subscription_statuses(session: Session, *, now: datetime) -> list[SubscriptionStatus]:
    backlogs = subscriptions_repo.backlogs(session, now=now)
    return [
        SubscriptionStatus.of(subscription, backlogs.get(subscription.id), now)
        for subscription in subscriptions_repo.list_all(session)
    ]


def subscription_status(
    session: Session, subscription: Subscription, *, now: datetime
) -> SubscriptionStatus:
    backlogs = subscriptions_repo.backlogs(session, now=now, subscription_id=subscription.id)
    return SubscriptionStatus.of(subscription, backlogs.get(subscription.id), now)


def feed_status(session: Session) -> FeedStatus:
    seq, count = changes_repo.head(session)
    return FeedStatus(
        head_cursor=encode_cursor(seq),
        head_seq=seq,
        changes=count,
        last_change_at=changes_repo.last_occurred_at(session),
    )


def gateway_status(
    session: Session, *, polled: Collection[str] = (), now: datetime | None = None
) -> GatewayStatus:
    """Every source that sent something, and every polled source even before it has."""
    stats = {row.source: row for row in stats_repo.list_all(session)}
    states = {row.source: row for row in state_repo.list_all(session)}
    names = sorted({*stats, *polled, *states})
    return GatewayStatus(
        sources=[
            SourceStatus.of(name, stats.get(name), _polling(name, states.get(name), polled))
            for name in names
        ],
        feed=feed_status(session),
        identity=IdentityStatus(
            review_pending=matching_repo.count_pending(session),
            oldest_pending_at=matching_repo.oldest_pending_at(session),
        ),
        subscriptions=subscription_statuses(session, now=now or utcnow()),
    )


def source_status(session: Session, source: str, *, polled: Collection[str] = ()) -> SourceStatus:
    """A source's counters (all zeros if it has sent nothing yet) and, if polled, its polling."""
    validate_source_name(source)
    state = state_repo.get(session, source)
    return SourceStatus.of(source, stats_repo.get(session, source), _polling(source, state, polled))


def _polling(
    source: str, state: SourceState | None, polled: Collection[str]
) -> PollingStatus | None:
    # A source no longer polled keeps showing its last polling state until the row is removed.
    if state is None and source not in polled:
        return None
    return PollingStatus.of(state)
