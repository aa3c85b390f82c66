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
from pathlib import Path

from sqlalchemy.orm import Session

from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.models import ApiClient
from gateway.repositories import clients as clients_repo

KEY_PREFIX = "crcgw"
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# A name people type (a client's): something besides spaces, and no control characters, which
# would rewrite a terminal line or a log line when the name is shown.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
MAX_NAME_CHARS = 100


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
    if len(name) > MAX_NAME_CHARS or not re.fullmatch(NAME_PATTERN, name):
        raise InvalidRequest(
            f"a client name is 1-{MAX_NAME_CHARS} characters, not only spaces, with no control "
            "characters"
        )
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


BOOTSTRAP_ADMIN_NAME = "bootstrap-admin"
# A key as generate_key makes it; the random part is at least as long as token_urlsafe(32) gives.
KEY_SHAPE = re.compile(rf"{KEY_PREFIX}_(?P<prefix>[0-9a-f]{{8}})_(?P<secret>[A-Za-z0-9_-]+)")
MIN_SECRET_CHARS = 43
MAX_KEY_CHARS = 200


class BootstrapKeyError(ValueError):
    """The deployer's first admin key cannot be used; the message never quotes the key."""


def read_bootstrap_key(path: Path) -> str:
    """The admin key held in `path` (e.g. a mounted secret), checked to be a strong gateway key."""
    setting = "GATEWAY_BOOTSTRAP_ADMIN_KEY_FILE"
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise BootstrapKeyError(f"{setting}: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise BootstrapKeyError(f"{setting}: {path} is not UTF-8 text") from None
    shape = KEY_SHAPE.fullmatch(key)
    if shape is None or len(key) > MAX_KEY_CHARS:
        raise BootstrapKeyError(
            f"{setting}: {path} does not hold a gateway API key; one looks like "
            f"{KEY_PREFIX}_<8 hex digits>_<43 or more URL-safe base64 characters>"
        )
    if len(shape["secret"]) < MIN_SECRET_CHARS:
        raise BootstrapKeyError(
            f"{setting}: the key in {path} is too short; its random part needs "
            f"{MIN_SECRET_CHARS} or more characters (256 bits)"
        )
    return key


def bootstrap_admin(session: Session, *, key: str, now: datetime) -> ApiClient | None:
    """Create an admin holding `key` unless an active admin exists; None when nothing is done."""
    if clients_repo.any_active_with_role(session, Role.ADMIN.value):
        return None
    key_hash = hash_key(key)
    if clients_repo.get_by_key_hash(session, key_hash) is not None:
        # Reviving a revoked key, or promoting another client's, would undo someone's decision.
        raise BootstrapKeyError(
            "GATEWAY_BOOTSTRAP_ADMIN_KEY_FILE: that key was revoked or belongs to another "
            "client; put a new key in the file"
        )
    shape = KEY_SHAPE.fullmatch(key)
    if shape is None:
        raise BootstrapKeyError("GATEWAY_BOOTSTRAP_ADMIN_KEY_FILE: not a gateway API key")
    client = ApiClient(
        id=uuid.uuid4(),
        name=BOOTSTRAP_ADMIN_NAME,
        role=Role.ADMIN.value,
        source=None,
        key_prefix=shape["prefix"],
        key_hash=key_hash,
        created_at=now,
    )
    return clients_repo.add(session, client)


def authenticate(session: Session, key: str) -> Principal | None:
    if not key.startswith(f"{KEY_PREFIX}_") or len(key) > MAX_KEY_CHARS:
        return None
    client = clients_repo.get_active_by_key_hash(session, hash_key(key))
    if client is None:
        return None
    return Principal(
        client_id=client.id, name=client.name, role=Role(client.role), source=client.source
    )


def list_clients(session: Session) -> Sequence[ApiClient]:
    return clients_repo.list_all(session)


class AdminLockout(Conflict):
    """Revoking this key would leave the gateway with no admin able to manage it."""

    slug = "admin-lockout"
    title = "This would lock every admin out"


def revoke(
    session: Session,
    client_id: uuid.UUID,
    *,
    now: datetime,
    revoked_by: uuid.UUID | None = None,
    allow_lockout: bool = False,
) -> None:
    """Revoke a client's key; never the caller's own admin key or the last active admin key,
    unless `allow_lockout` (the command line, run by whoever holds the database)."""
    if not allow_lockout:
        admins = clients_repo.lock_active_with_role(session, Role.ADMIN.value)
        if any(admin.id == client_id for admin in admins):
            if client_id == revoked_by:
                raise AdminLockout("an admin cannot revoke its own key; use another admin's")
            if len(admins) <= 1:
                raise AdminLockout("this is the last active admin key; create another first")
    if not clients_repo.revoke(session, client_id, at=now):
        raise NotFound("no active client with that id")


def rotate_named(
    session: Session, *, name: str, role: Role, source: str | None, now: datetime
) -> tuple[ApiClient, str]:
    """Revoke every active client of this name and create a fresh one (used for the demo key)."""
    clients_repo.revoke_by_name(session, name, at=now)
    return create(session, name=name, role=role, source=source, now=now)
