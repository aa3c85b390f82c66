"""Liveness and readiness: both answer probes without a credential; details need one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway import migrate
from gateway.api.deps import DatabaseDep, authenticate_if_sent
from gateway.errors import ServiceUnavailable
from gateway.services.clients import Principal, Role

router = APIRouter(tags=["health"])

# The engine, the schema revision and why the gateway is not ready are for operators.
SEES_DETAILS = frozenset({Role.OPERATOR, Role.ADMIN})


class HealthOut(BaseModel):
    status: str
    database: str | None = None
    schema_revision: str | None = None


@router.get("/health/live", response_model=HealthOut, summary="The process is up")
def live() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/health/ready",
    response_model=HealthOut,
    response_model_exclude_none=True,
    summary="Ready to serve",
    description="200 or 503 for anyone, as probes expect: the database is reachable and its "
    "schema at the latest migration. An operator or admin credential adds the engine, the "
    "schema revision and why it is not ready; a credential that is sent must be valid.",
    # The empty requirement joins the bearer one FastAPI lists: the credential is optional here.
    openapi_extra={"security": [{}]},
)
def ready(
    db: DatabaseDep, caller: Annotated[Principal | None, Depends(authenticate_if_sent)]
) -> HealthOut:
    detailed = caller is not None and caller.role in SEES_DETAILS
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            revision = migrate.current_revision(connection)
    except SQLAlchemyError:
        raise ServiceUnavailable(
            "the database is not reachable" if detailed else "not ready"
        ) from None
    head = migrate.head_revision()
    if revision != head:
        raise ServiceUnavailable(
            f"database schema is at {revision}, expected {head}" if detailed else "not ready"
        )
    if not detailed:
        return HealthOut(status="ready")
    return HealthOut(status="ready", database=db.dialect, schema_revision=revision)
