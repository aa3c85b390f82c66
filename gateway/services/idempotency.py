"""Idempotency-Key handling (IETF draft-ietf-httpapi-idempotency-key-header).

A keyed request first claims its key in a short transaction of its own, so a concurrent retry
sees it in flight; the response is then stored in the same transaction as the work it
describes; if the work fails, the claim is released so the client can try again.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gateway.errors import BadRequest, IdempotencyKeyInFlight, IdempotencyKeyReused
from gateway.models import IdempotencyKey
from gateway.repositories import idempotency as idempotency_repo

_KEY = re.compile(r'^"?([\x21\x23-\x7e]{1,255})"?$')


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str


def parse_key(header: str) -> str:
    """The key from the header (a structured-field string in the draft; quotes optional here)."""
    match = _KEY.fullmatch(header.strip())
    if match is None:
        raise BadRequest("Idempotency-Key must be 1-255 printable ASCII characters")
    return match.group(1)


def fingerprint(method: str, path: str, content_type: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), content_type.encode()):
        digest.update(part)
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def claim(
    session: Session,
    *,
    client_id: uuid.UUID,
    key: str,
    request_fingerprint: str,
    now: datetime,
    retention: timedelta,
    lock: timedelta,
) -> StoredResponse | None:
    """Claim the key for this request; returns the stored response if it was already answered."""
    fresh = IdempotencyKey(
        client_id=client_id,
        key=key,
        fingerprint=request_fingerprint,
        state="in_flight",
        created_at=now,
        locked_until=now + lock,
        expires_at=now + retention,
    )
    if idempotency_repo.claim(session, fresh):
        return None
    row = idempotency_repo.get_for_update(session, client_id, key)
    if row is None or row.expires_at <= now:
        # Expired (or purged meanwhile): the key is free again.
        idempotency_repo.delete_key(session, client_id, key)
        session.flush()
        if not idempotency_repo.claim(session, fresh):
            # Another request re-claimed the expired key between our delete and insert.
            raise IdempotencyKeyInFlight(
                "a request with this Idempotency-Key is still in flight",
                headers={"Retry-After": "1"},
            )
        return None
    if row.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was already used with another request")
    if row.state == "completed" and row.response_status is not None:
        return StoredResponse(status=row.response_status, body=row.response_body or "")
    if row.locked_until > now:
        raise IdempotencyKeyInFlight(
            "a request with this Idempotency-Key is still in flight", headers={"Retry-After": "1"}
        )
    # The request that claimed it died without finishing: take it over.
    row.locked_until = now + lock
    return None


def complete(session: Session, *, client_id: uuid.UUID, key: str, status: int, body: str) -> None:
    row = idempotency_repo.get_for_update(session, client_id, key)
    if row is not None:
        row.state = "completed"
        row.response_status = status
        row.response_body = body


def release(session: Session, *, client_id: uuid.UUID, key: str) -> None:
    idempotency_repo.delete_key(session, client_id, key)


def purge_expired(session: Session, *, now: datetime) -> int:
    return idempotency_repo.purge_expired(session, now=now)
