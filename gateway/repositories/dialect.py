"""Dialect-specific statements the repositories share."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert_insert(session: Session, entity: type[Any]) -> Any:
    """An INSERT of a mapped class that supports ON CONFLICT on the session's engine."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(entity)
    return sqlite.insert(entity)


def supports_row_locks(session: Session) -> bool:
    """SQLite serialises writers with one database lock, so SELECT ... FOR UPDATE is moot there."""
    return session.get_bind().dialect.name == "postgresql"
