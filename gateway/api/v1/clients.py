"""Admin: API clients."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway.api.deps import DatabaseDep, require
from gateway.models import utcnow
from gateway.services import audit, clients
from gateway.services.clients import Principal, Role

router = APIRouter(tags=["clients"])
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Role
    source: str | None = Field(None, description="Required for, and only for, the source role.")


class ClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role
    source: str | None
    key_prefix: str = Field(description="Public part of the key, to tell keys apart.")
    created_at: datetime
    revoked_at: datetime | None


class CreatedClientOut(ClientOut):
    key: str = Field(description="The API key. Shown only now; it is stored only as a hash.")


@router.post(
    "/v1/clients",
    response_model=CreatedClientOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API client",
)
def create_client(body: ClientIn, db: DatabaseDep, principal: AdminDep) -> CreatedClientOut:
    def work(session: Session) -> CreatedClientOut:
        now = utcnow()
        client, key = clients.create(
            session,
            name=body.name,
            role=body.role,
            source=body.source,
            now=now,
        )
        audit.record(
            session,
            principal=principal,
            action=audit.AuditAction.ADMINISTER,
            resource="clients",
            person_ids=[],
            now=now,
            detail={"created_client": str(client.id), "role": client.role},
        )
        return CreatedClientOut(**ClientOut.model_validate(client).model_dump(), key=key)

    return db.write(work)


@router.get("/v1/clients", response_model=list[ClientOut], summary="List API clients")
def list_clients(db: DatabaseDep, _principal: AdminDep) -> list[ClientOut]:
    return [ClientOut.model_validate(c) for c in db.read(clients.list_clients)]


@router.delete(
    "/v1/clients/{client_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a client"
)
def revoke_client(client_id: uuid.UUID, db: DatabaseDep, principal: AdminDep) -> None:
    def work(session: Session) -> None:
        now = utcnow()
        clients.revoke(session, client_id, now=now)
        audit.record(
            session,
            principal=principal,
            action=audit.AuditAction.ADMINISTER,
            resource="clients",
            person_ids=[],
            now=now,
            detail={"revoked_client": str(client_id)},
        )

    db.write(work)
