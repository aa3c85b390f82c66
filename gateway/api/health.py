"""Liveness (no credential) and readiness (database reachable, migrations at head)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway import migrate
from gateway.api.deps import DatabaseDep, authenticate
from gateway.errors import ServiceUnavailable
from gateway.services.clients import Principal

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str
    database: str | None = None
    schema_revision: str | None = None


@router.get("/health/live", response_model=HealthOut, summary="The process is up")
def live() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/health/ready", response_model=HealthOut, summary="Ready to serve")
def ready(db: DatabaseDep, _principal: Annotated[Principal, Depends(authenticate)]) -> HealthOut:
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            revision = migrate.current_revision(connection)
    except SQLAlchemyError:
        raise ServiceUnavailable("the database is not reachable") from None
    head = migrate.head_revision()
    if revision != head:
        raise ServiceUnavailable(f"database schema is at {revision}, expected {head}")
    return HealthOut(status="ok", database=db.dialect, schema_revision=revision)
