"""Admin: API clients."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway.api.deps import DatabaseDep, require
from gateway.api.v1.shapes import InputModel, SourceName
from gateway.models import utcnow
from gateway.services import audit, clients
from gateway.services.clients import MAX_NAME_CHARS, NAME_PATTERN, Principal, Role

router = APIRouter(tags=["clients"])
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]


class ClientIn(InputModel):
    """A new client: a source client names the one source it writes for; no other does."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "properties": {"role": {"const": "source"}, "source": {"type": "string"}},
                    "required": ["source"],
                },
                {
                    "properties": {
                        "role": {"enum": ["central", "operator", "admin"]},
                        "source": {"type": "null"},
                    }
                },
            ]
        }
    )

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)
    role: Role
    source: SourceName | None = Field(
        None, description="Required for, and only for, the source role."
    )


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
    "/v1/clients/{client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a client",
    description="An admin cannot revoke its own key or the last active admin key (409); "
    "`crc-gateway clients revoke` can, with an explicit flag.",
    responses={409: {"description": "It is the caller's own key or the last admin key"}},
)
def revoke_client(client_id: uuid.UUID, db: DatabaseDep, principal: AdminDep) -> None:
    def work(session: Session) -> None:
        now = utcnow()
        clients.revoke(session, client_id, now=now, revoked_by=principal.client_id)
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
