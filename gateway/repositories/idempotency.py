"""Idempotency-Key records."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.models import IdempotencyKey
from gateway.repositories.dialect import supports_row_locks, upsert_insert


def claim(session: Session, row: IdempotencyKey) -> bool:
    """Insert an in-flight record for the key; False when one already exists."""
    statement = (
        upsert_insert(session, IdempotencyKey)
        .values(
            client_id=row.client_id,
            key=row.key,
            fingerprint=row.fingerprint,
            state=row.state,
            created_at=row.created_at,
            locked_until=row.locked_until,
            expires_at=row.expires_at,
        )
        .on_conflict_do_nothing()
        # A row comes back only if it was inserted: rowcount of an INSERT is -1 on psycopg.
        .returning(IdempotencyKey.key)
    )
    return session.execute(statement).first() is not None


def get_for_update(session: Session, client_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    statement = select(IdempotencyKey).where(
        IdempotencyKey.client_id == client_id, IdempotencyKey.key == key
    )
    if supports_row_locks(session):
        statement = statement.with_for_update()
    return session.scalar(statement)


def delete_key(session: Session, client_id: uuid.UUID, key: str) -> None:
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.client_id == client_id, IdempotencyKey.key == key
        )
    )


def purge_expired(session: Session, *, now: datetime) -> int:
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < now))
    return int(result.rowcount)  # type: ignore[attr-defined]
