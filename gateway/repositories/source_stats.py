"""Per-source counters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import SourceStats
from gateway.repositories.dialect import upsert_insert

COUNTERS = ("received", "created", "updated", "unchanged", "rejected")


def bump(session: Session, source: str, counts: dict[str, int], *, received_at: datetime) -> None:
    """Add to a source's counters, creating its row on first use."""
    values = {name: counts.get(name, 0) for name in COUNTERS}
    table = SourceStats.__table__
    statement = upsert_insert(session, SourceStats).values(
        source=source, last_received_at=received_at, **values
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.source],
        set_={
            **{name: table.c[name] + statement.excluded[name] for name in COUNTERS},
            # Concurrent batches commit in any order; the newest receipt time must win.
            "last_received_at": _later(
                session, table.c.last_received_at, statement.excluded.last_received_at
            ),
        },
    )
    session.execute(statement)


def _later(session: Session, current: Any, incoming: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.greatest(current, incoming)
    # SQLite's two-argument max() is a scalar function; NULL would win, so coalesce first.
    return func.max(func.coalesce(current, incoming), incoming)


def list_all(session: Session) -> Sequence[SourceStats]:
    return session.scalars(select(SourceStats).order_by(SourceStats.source)).all()


def get(session: Session, source: str) -> SourceStats | None:
    return session.get(SourceStats, source)
