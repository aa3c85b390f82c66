"""The change log: appended in commit order, read by cursor."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from gateway.models import Change, FeedHead

FEED_HEAD_ID = 1


def append(session: Session, changes: list[dict[str, Any]]) -> list[int]:
    """Give the changes the next sequence numbers and insert them; returns the numbers.

    Call this last in a write transaction. The UPDATE takes the feed-head row lock and keeps it
    until commit, so a later writer gets higher numbers only after this one has committed: the
    numbers become visible in order, which is what makes `seq > cursor` safe for readers.
    """
    if not changes:
        return []
    # Everything else the transaction writes goes out first, keeping the lock hold short.
    session.flush()
    top = session.execute(
        update(FeedHead)
        .where(FeedHead.id == FEED_HEAD_ID)
        .values(seq=FeedHead.seq + len(changes))
        .returning(FeedHead.seq)
    ).scalar_one()
    first = top - len(changes) + 1
    rows = [{**change, "seq": first + offset} for offset, change in enumerate(changes)]
    # A Core insert of the table: one executemany (the ORM bulk path sent one row at a time).
    session.execute(insert(cast(Table, Change.__table__)), rows)
    return [row["seq"] for row in rows]


def page(
    session: Session,
    *,
    after: int,
    limit: int,
    types: Collection[str] = (),
    sources: Collection[str] = (),
    exclude_origin_client: uuid.UUID | None = None,
) -> Sequence[Change]:
    statement = select(Change).where(Change.seq > after)
    if types:
        statement = statement.where(Change.type.in_(sorted(types)))
    if sources:
        statement = statement.where(Change.source.in_(sorted(sources)))
    if exclude_origin_client is not None:
        statement = statement.where(
            or_(Change.origin_client_id.is_(None), Change.origin_client_id != exclude_origin_client)
        )
    return session.scalars(statement.order_by(Change.seq).limit(limit)).all()


def mark_purged(session: Session, seq: int) -> None:
    session.execute(
        update(FeedHead)
        .where(FeedHead.id == FEED_HEAD_ID, FeedHead.purged_through < seq)
        .values(purged_through=seq)
    )


def head_seq(session: Session) -> int:
    """The last sequence number handed out (every change up to it is committed)."""
    return int(session.scalar(select(FeedHead.seq).where(FeedHead.id == FEED_HEAD_ID)) or 0)


def purgeable_through(session: Session, *, before: datetime, below_seq: int | None) -> int | None:
    """The last change older than `before` (and below `below_seq`): purge up to it."""
    statement = select(func.max(Change.seq)).where(Change.occurred_at < before)
    if below_seq is not None:
        statement = statement.where(Change.seq < below_seq)
    value = session.scalar(statement)
    return int(value) if value is not None else None


def purge_through(session: Session, seq: int) -> int:
    """Delete every change up to `seq`; returns how many."""
    result = session.execute(delete(Change).where(Change.seq <= seq))
    mark_purged(session, seq)
    return int(getattr(result, "rowcount", 0) or 0)


def feed_head(session: Session) -> tuple[int, int]:
    """The last sequence number handed out, and the last one purged."""
    row = session.execute(
        select(FeedHead.seq, FeedHead.purged_through).where(FeedHead.id == FEED_HEAD_ID)
    ).first()
    return (int(row[0] or 0), int(row[1] or 0)) if row is not None else (0, 0)


def head(session: Session) -> tuple[int, int]:
    """The last sequence number handed out, and how many changes the log holds.

    Numbers have no gaps (a rolled-back writer rolls back its bump of the counter too) and purges
    remove a prefix, so the count is the head less what was purged: no scan of the log.
    """
    seq, purged = feed_head(session)
    return seq, seq - purged


def last_occurred_at(session: Session) -> Any:
    return session.scalar(select(Change.occurred_at).order_by(Change.seq.desc()).limit(1))
