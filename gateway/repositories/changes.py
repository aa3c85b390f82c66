"""The change log: appended in commit order, read by cursor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
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


def page(session: Session, *, after: int, limit: int) -> Sequence[Change]:
    return session.scalars(
        select(Change).where(Change.seq > after).order_by(Change.seq).limit(limit)
    ).all()


def head(session: Session) -> tuple[int, int]:
    """The last sequence number handed out, and how many changes the log holds."""
    seq = session.scalar(select(FeedHead.seq).where(FeedHead.id == FEED_HEAD_ID)) or 0
    count = session.scalar(select(func.count()).select_from(Change)) or 0
    return int(seq), int(count)


def last_occurred_at(session: Session) -> Any:
    return session.scalar(select(Change.occurred_at).order_by(Change.seq.desc()).limit(1))
