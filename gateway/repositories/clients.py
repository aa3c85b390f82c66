"""API clients."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.models import ApiClient


def add(session: Session, client: ApiClient) -> ApiClient:
    session.add(client)
    session.flush()
    return client


def get_active_by_key_hash(session: Session, key_hash: str) -> ApiClient | None:
    return session.scalar(
        select(ApiClient).where(ApiClient.key_hash == key_hash, ApiClient.revoked_at.is_(None))
    )


def get_by_key_hash(session: Session, key_hash: str) -> ApiClient | None:
    """The client holding this key, active or revoked."""
    return session.scalar(select(ApiClient).where(ApiClient.key_hash == key_hash))


def any_active_with_role(session: Session, role: str) -> bool:
    found = session.scalar(
        select(ApiClient.id).where(ApiClient.role == role, ApiClient.revoked_at.is_(None)).limit(1)
    )
    return found is not None


def list_all(session: Session) -> Sequence[ApiClient]:
    return session.scalars(select(ApiClient).order_by(ApiClient.created_at, ApiClient.id)).all()


def revoke(session: Session, client_id: uuid.UUID, *, at: datetime) -> bool:
    result = session.execute(
        update(ApiClient)
        .where(ApiClient.id == client_id, ApiClient.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_by_name(session: Session, name: str, *, at: datetime) -> int:
    result = session.execute(
        update(ApiClient)
        .where(ApiClient.name == name, ApiClient.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def get(session: Session, client_id: uuid.UUID) -> ApiClient | None:
    return session.get(ApiClient, client_id)


def lock_active_with_role(session: Session, role: str) -> Sequence[ApiClient]:
    """The active clients of a role, locked so two revocations cannot both see the other."""
    return session.scalars(
        select(ApiClient)
        .where(ApiClient.role == role, ApiClient.revoked_at.is_(None))
        .order_by(ApiClient.id)
        .with_for_update()
    ).all()
