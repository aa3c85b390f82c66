"""File imports."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Import
from gateway.repositories.dialect import supports_row_locks


def add(session: Session, row: Import) -> None:
    session.add(row)


def get(session: Session, import_id: uuid.UUID, *, for_update: bool = False) -> Import | None:
    statement = select(Import).where(Import.id == import_id)
    if for_update and supports_row_locks(session):
        statement = statement.with_for_update()
    return session.scalar(statement)


def unfinished_for_file(session: Session, source: str, file_sha256: str) -> Import | None:
    """The latest import of this exact file for this source that did not complete."""
    statement = (
        select(Import)
        .where(
            Import.source == source,
            Import.file_sha256 == file_sha256,
            Import.status != "completed",
        )
        .order_by(Import.started_at.desc())
        .limit(1)
    )
    if supports_row_locks(session):
        statement = statement.with_for_update()
    return session.scalar(statement)
