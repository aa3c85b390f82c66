"""Polling state of polled sources: one row per source, locked to claim and to advance it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import SourceState
from gateway.repositories.dialect import supports_row_locks, upsert_insert


def ensure(session: Session, source: str) -> None:
    """Create the source's row if it has none yet (a concurrent creator is not an error)."""
    statement = (
        upsert_insert(session, SourceState)
        .values(source=source, paused=False, consecutive_failures=0, records_polled=0)
        .on_conflict_do_nothing(index_elements=[SourceState.__table__.c.source])
    )
    session.execute(statement)


def lock(session: Session, source: str, *, skip_locked: bool = False) -> SourceState | None:
    """The row, locked until commit; with skip_locked, None while another transaction holds it.

    On SQLite the write transaction already holds the database's one write lock.
    """
    statement = select(SourceState).where(SourceState.source == source)
    if supports_row_locks(session):
        statement = statement.with_for_update(skip_locked=skip_locked)
    # populate_existing: a row read earlier in this session must not shadow the locked read.
    return session.scalar(statement.execution_options(populate_existing=True))


def get(session: Session, source: str) -> SourceState | None:
    return session.get(SourceState, source)


def list_all(session: Session) -> Sequence[SourceState]:
    return session.scalars(select(SourceState).order_by(SourceState.source)).all()
