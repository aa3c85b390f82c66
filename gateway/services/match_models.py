"""Stored match models: an admin adds a trained model file and activates it; ingest follows.

At most one stored model is active. Every ingest transaction asks which (one indexed read) and
scores with it, so an activation reaches every server, worker and poller at their next batch
without a restart. With none active, the configured model file (or the packaged one) is used.
A model is parsed once per process and version (`ActiveModels`), never per batch.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.errors import Conflict, NotFound
from gateway.matching import MatchModel
from gateway.models import MatchModelRow
from gateway.services import audit
from gateway.services.clients import Principal

__all__ = [
    "ActiveModels",
    "activate",
    "active_version",
    "add_model",
    "get_model",
    "list_models",
    "model_summary",
]

#: Parsed models a process keeps; activations are rare, so a few cover every one in use.
_PARSED_MODELS: Final = 4


def add_model(
    session: Session, model: MatchModel, *, principal: Principal | None, now: datetime
) -> tuple[MatchModelRow, bool]:
    """Store a model under its version; (row, created). The same model again is not an error;
    another model under a stored version is (versions name exactly one set of parameters)."""
    document = model.model_dump(mode="json")
    existing = session.get(MatchModelRow, model.version)
    if existing is not None:
        if existing.document != document:
            raise Conflict(f"another model is stored as version {model.version}")
        return existing, False
    row = MatchModelRow(
        version=model.version,
        document=document,
        active=False,
        created_at=now,
        created_by=principal.client_id if principal else None,
    )
    session.add(row)
    session.flush()
    _audit(session, principal, now, {"added_model": model.version})
    return row, True


def activate(
    session: Session, version: str, *, principal: Principal | None, now: datetime
) -> MatchModelRow:
    """Make a stored model the one ingest scores with (the previous one stays stored)."""
    row = session.get(MatchModelRow, version, with_for_update=True)
    if row is None:
        raise NotFound("no stored match model with that version")
    if not row.active:
        session.execute(update(MatchModelRow).where(MatchModelRow.active).values(active=False))
        session.flush()
        row.active = True
        row.activated_at = now
        row.activated_by = principal.client_id if principal else None
        session.flush()
    _audit(session, principal, now, {"activated_model": version})
    return row


def _audit(
    session: Session, principal: Principal | None, now: datetime, detail: dict[str, str]
) -> None:
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.ADMINISTER,
        resource="match-models",
        person_ids=[],
        now=now,
        detail=detail,
    )


def list_models(session: Session) -> list[MatchModelRow]:
    """Every stored model, newest first."""
    return list(
        session.scalars(
            select(MatchModelRow).order_by(MatchModelRow.created_at.desc(), MatchModelRow.version)
        )
    )


def get_model(session: Session, version: str) -> MatchModelRow:
    row = session.get(MatchModelRow, version)
    if row is None:
        raise NotFound("no stored match model with that version")
    return row


def active_version(session: Session) -> str | None:
    return session.scalar(select(MatchModelRow.version).where(MatchModelRow.active))


class ActiveModels:
    """Which stored model is active, asked per transaction; each version parsed once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[str, MatchModel] = {}

    def current(self, session: Session, *, fallback: MatchModel) -> MatchModel:
        version = active_version(session)
        if version is None:
            return fallback
        with self._lock:
            model = self._parsed.get(version)
        if model is not None:
            return model
        document = session.scalar(
            select(MatchModelRow.document).where(MatchModelRow.version == version)
        )
        # Validated when it was stored; a row edited by hand fails loudly here, not silently.
        model = MatchModel.model_validate(document)
        with self._lock:
            if len(self._parsed) >= _PARSED_MODELS:
                self._parsed.clear()
            self._parsed[version] = model
        return model


def model_summary(row: MatchModelRow) -> dict[str, Any]:
    """What a listing shows of a stored model (no term-frequency tables)."""
    document = row.document
    return {
        "version": row.version,
        "description": document.get("description", ""),
        "prior": document.get("prior"),
        "bands": document.get("bands"),
        "trained": document.get("trained"),
        "active": row.active,
        "created_at": row.created_at,
        "activated_at": row.activated_at,
    }
