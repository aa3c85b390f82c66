"""Request dependencies: the database, settings and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from gateway.db import Database
from gateway.errors import Forbidden, ServiceUnavailable, Unauthenticated
from gateway.logs import client_id_var
from gateway.services import clients
from gateway.services.clients import Principal, Role
from gateway.services.identity import Matcher
from gateway.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_matcher(request: Request) -> Matcher:
    matcher: Matcher = request.app.state.matcher
    return matcher


DatabaseDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MatcherDep = Annotated[Matcher, Depends(get_matcher)]


async def authenticate(
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # Async, with the lookup in a worker thread: a sync dependency runs in a copy of the request
    # context, so the client id bound below would never reach the access line.
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
    try:
        principal = await run_in_threadpool(
            db.read, lambda session: clients.authenticate(session, credentials.credentials)
        )
    except SQLAlchemyError:
        raise ServiceUnavailable("the credential store is not reachable") from None
    if principal is None:
        raise Unauthenticated("the API key is unknown or revoked")
    client_id_var.set(str(principal.client_id))
    return principal


async def authenticate_if_sent(
    request: Request,
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """None for a request with no Authorization header; one that is sent must be valid (401)."""
    if "authorization" not in request.headers:
        return None
    return await authenticate(db, credentials)


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets through only the given roles (admin is always allowed)."""
    allowed = {*roles, Role.ADMIN}

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"the {principal.role.value} role may not do this")
        return principal

    return check


def require_source_access(principal: Principal, source: str, *, roles: set[Role]) -> None:
    """Source clients act only on their own source; the other given roles on any."""
    if principal.role is Role.ADMIN or principal.role in roles:
        return
    if principal.role is Role.SOURCE and principal.source == source:
        return
    raise Forbidden("this credential may not act for that source")
