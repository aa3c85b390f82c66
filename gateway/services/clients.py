"""API clients and their credentials: keys are random, shown once, stored as SHA-256 digests."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from gateway.errors import InvalidRequest, NotFound
from gateway.models import ApiClient
from gateway.repositories import clients as clients_repo

KEY_PREFIX = "crcgw"
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Role(StrEnum):
    SOURCE = "source"
    CENTRAL = "central"
    OPERATOR = "operator"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    client_id: uuid.UUID
    name: str
    role: Role
    source: str | None


def hash_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast digest is enough: there is nothing to
    # brute-force, and a slow KDF would cost every request.
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new key and its public prefix (shown in listings to tell keys apart)."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def validate_source_name(source: str) -> str:
    if not SOURCE_NAME.fullmatch(source):
        raise InvalidRequest(
            "source names are 1-63 lower-case letters, digits and hyphens",
            errors=[{"path": "source", "message": "invalid source name", "type": "pattern"}],
        )
    return source


def create(
    session: Session, *, name: str, role: Role, source: str | None, now: datetime
) -> tuple[ApiClient, str]:
    """Create a client; returns it with its key, which is not stored and cannot be shown again."""
    if not name.strip() or len(name) > 100:
        raise InvalidRequest("a client name is 1-100 characters")
    if role is Role.SOURCE:
        if source is None:
            raise InvalidRequest("a source client needs the source it writes for")
        validate_source_name(source)
    elif source is not None:
        raise InvalidRequest(f"a {role.value} client is not tied to a source")
    key, prefix = generate_key()
    client = ApiClient(
        id=uuid.uuid4(),
        name=name.strip(),
        role=role.value,
        source=source,
        key_prefix=prefix,
        key_hash=hash_key(key),
        created_at=now,
    )
    clients_repo.add(session, client)
    return client, key


def authenticate(session: Session, key: str) -> Principal | None:
    if not key.startswith(f"{KEY_PREFIX}_") or len(key) > 200:
        return None
    client = clients_repo.get_active_by_key_hash(session, hash_key(key))
    if client is None:
        return None
    return Principal(
        client_id=client.id, name=client.name, role=Role(client.role), source=client.source
    )


def list_clients(session: Session) -> Sequence[ApiClient]:
    return clients_repo.list_all(session)


def revoke(session: Session, client_id: uuid.UUID, *, now: datetime) -> None:
    if not clients_repo.revoke(session, client_id, at=now):
        raise NotFound("no active client with that id")


def rotate_named(
    session: Session, *, name: str, role: Role, source: str | None, now: datetime
) -> tuple[ApiClient, str]:
    """Revoke every active client of this name and create a fresh one (used for the demo key)."""
    clients_repo.revoke_by_name(session, name, at=now)
    return create(session, name=name, role=role, source=source, now=now)


def count_active_admins(session: Session) -> int:
    """Admin clients whose key is not revoked (the keys that can still manage clients)."""
    # Clients number in the tens, so counting the listing avoids a query of its own.
    return sum(
        1
        for client in clients_repo.list_all(session)
        if client.role == Role.ADMIN and client.revoked_at is None
    )
