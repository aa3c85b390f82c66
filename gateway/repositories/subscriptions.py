"""Subscriptions and the delivery outbox: claiming due work, recording outcomes, lag figures."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session, aliased

from gateway.models import Change, Delivery, DeliveryStatus, Subscription
from gateway.models.base import UTCDateTime
from gateway.repositories.dialect import supports_row_locks

_UNDELIVERED = (DeliveryStatus.PENDING.value, DeliveryStatus.DEAD.value)


def add(session: Session, subscription: Subscription) -> None:
    session.add(subscription)


def get(session: Session, subscription_id: uuid.UUID) -> Subscription | None:
    return session.get(Subscription, subscription_id)


def lock(session: Session, subscription_id: uuid.UUID) -> Subscription | None:
    statement = select(Subscription).where(Subscription.id == subscription_id)
    if supports_row_locks(session):
        statement = statement.with_for_update()
    return session.scalar(statement.execution_options(populate_existing=True))


def list_all(session: Session) -> Sequence[Subscription]:
    return session.scalars(select(Subscription).order_by(Subscription.created_at)).all()


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Subscription)) or 0)


def remove(session: Session, subscription_id: uuid.UUID) -> bool:
    """Delete a subscription and everything still queued for it; whether it existed."""
    session.execute(delete(Delivery).where(Delivery.subscription_id == subscription_id))
    result = session.execute(delete(Subscription).where(Subscription.id == subscription_id))
    return bool(getattr(result, "rowcount", 0))


def enqueue(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(cast(Table, Delivery.__table__)), rows)


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker holds, with what it needs to send it."""

    delivery_id: int
    subscription_id: uuid.UUID
    seq: int
    person_id: uuid.UUID
    attempts: int
    lease_token: uuid.UUID


def _claimable(statement: Select[Any], now: datetime) -> Select[Any]:
    """Due, unclaimed, of an active subscription, and the oldest undelivered of its person."""
    earlier = aliased(Delivery)
    blocked = exists().where(
        earlier.subscription_id == Delivery.subscription_id,
        earlier.person_id == Delivery.person_id,
        earlier.seq < Delivery.seq,
        earlier.status.in_(_UNDELIVERED),
    )
    return statement.join(Subscription, Subscription.id == Delivery.subscription_id).where(
        Delivery.status == DeliveryStatus.PENDING.value,
        Delivery.next_attempt_at <= now,
        or_(Delivery.leased_until.is_(None), Delivery.leased_until < now),
        Subscription.active.is_(True),
        ~blocked,
    )


def claim_due(
    session: Session, *, now: datetime, limit: int, lease_until: datetime
) -> list[Claimed]:
    """Lease up to `limit` due deliveries, each the oldest undelivered one of its person.

    A person's next change waits while an earlier one is pending or dead-lettered, so each
    subscriber sees a person's changes in order; other persons are not held up. On PostgreSQL
    rows other workers are claiming are skipped, not waited for.
    """
    statement = (
        _claimable(select(Delivery), now)
        .order_by(Delivery.next_attempt_at, Delivery.seq)
        .limit(limit)
    )
    if supports_row_locks(session):
        statement = statement.with_for_update(of=Delivery, skip_locked=True)
    rows = session.scalars(statement.execution_options(populate_existing=True)).all()
    claimed = []
    for row in rows:
        row.lease_token = uuid.uuid4()
        row.leased_until = lease_until
        claimed.append(
            Claimed(
                delivery_id=row.id,
                subscription_id=row.subscription_id,
                seq=row.seq,
                person_id=row.person_id,
                attempts=row.attempts,
                lease_token=row.lease_token,
            )
        )
    return claimed


def has_due(session: Session, *, now: datetime) -> bool:
    """Whether `claim_due` would find anything, without locking (a cheap read first)."""
    statement = _claimable(select(Delivery.id), now).limit(1)
    return session.scalar(statement) is not None


def changes_by_seq(session: Session, seqs: Iterable[int]) -> dict[int, Change]:
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    return {row.seq: row for row in session.scalars(select(Change).where(Change.seq.in_(wanted)))}


def held(session: Session, delivery_id: int, token: uuid.UUID) -> Delivery | None:
    """The delivery if this worker's lease on it still stands (locked until commit)."""
    statement = select(Delivery).where(Delivery.id == delivery_id, Delivery.lease_token == token)
    if supports_row_locks(session):
        statement = statement.with_for_update()
    return session.scalar(statement.execution_options(populate_existing=True))


def replay_dead(
    session: Session,
    subscription_id: uuid.UUID,
    *,
    now: datetime,
    delivery_ids: Sequence[int] | None = None,
) -> int:
    """Put dead letters back in the queue with a fresh schedule; returns how many."""
    statement = update(Delivery).where(
        Delivery.subscription_id == subscription_id,
        Delivery.status == DeliveryStatus.DEAD.value,
    )
    if delivery_ids is not None:
        statement = statement.where(Delivery.id.in_(delivery_ids))
    result = session.execute(
        statement.values(
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            dead_at=None,
            leased_until=None,
            lease_token=None,
        ).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def dead_letters(
    session: Session, subscription_id: uuid.UUID, *, after_id: int, limit: int
) -> Sequence[tuple[Delivery, str]]:
    rows = session.execute(
        select(Delivery, Change.type)
        .join(Change, Change.seq == Delivery.seq)
        .where(
            Delivery.subscription_id == subscription_id,
            Delivery.status == DeliveryStatus.DEAD.value,
            Delivery.id > after_id,
        )
        .order_by(Delivery.id)
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]


@dataclass(frozen=True)
class Backlog:
    pending: int
    dead: int
    oldest_pending_at: datetime | None
    due: int


def backlogs(
    session: Session, *, now: datetime, subscription_id: uuid.UUID | None = None
) -> dict[uuid.UUID, Backlog]:
    """Per subscription (or for one): undelivered and dead-lettered counts and the oldest
    undelivered change."""
    pending = Delivery.status == DeliveryStatus.PENDING.value
    statement = (
        select(
            Delivery.subscription_id,
            func.sum(case((pending, 1), else_=0)),
            func.sum(case((Delivery.status == DeliveryStatus.DEAD.value, 1), else_=0)),
            # Coerced so the aggregate comes back as an aware UTC datetime on both engines.
            type_coerce(func.min(case((pending, Delivery.created_at), else_=None)), UTCDateTime()),
            func.sum(case((and_(pending, Delivery.next_attempt_at <= now), 1), else_=0)),
        )
        .where(Delivery.status.in_(_UNDELIVERED))
        .group_by(Delivery.subscription_id)
    )
    if subscription_id is not None:
        statement = statement.where(Delivery.subscription_id == subscription_id)
    rows = session.execute(statement).all()
    found: dict[uuid.UUID, Backlog] = {}
    for subscription_id, pending_count, dead_count, oldest, due in rows:
        found[subscription_id] = Backlog(
            pending=int(pending_count or 0),
            dead=int(dead_count or 0),
            oldest_pending_at=oldest,
            due=int(due or 0),
        )
    return found


def purge_delivered(session: Session, *, before: datetime) -> int:
    result = session.execute(
        delete(Delivery).where(
            Delivery.status == DeliveryStatus.DELIVERED.value, Delivery.delivered_at < before
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def lowest_owed_seq(session: Session) -> int | None:
    """The earliest change some subscriber is still owed (its feed rows must stay)."""
    value = session.scalar(select(func.min(Delivery.seq)).where(Delivery.status.in_(_UNDELIVERED)))
    return int(value) if value is not None else None


def rehome_undelivered(
    session: Session, *, from_person_ids: Sequence[uuid.UUID], to_person_id: uuid.UUID
) -> None:
    """Merged persons' undelivered changes join the survivor's queue, so the survivor's later
    changes (the merge itself first) wait behind them, in order."""
    if from_person_ids:
        session.execute(
            update(Delivery)
            .where(
                Delivery.person_id.in_(sorted(set(from_person_ids))),
                Delivery.status.in_(_UNDELIVERED),
            )
            .values(person_id=to_person_id)
            .execution_options(synchronize_session=False)
        )
