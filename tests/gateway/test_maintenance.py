"""Expired Idempotency-Key records are purged by the app's background task."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gateway.db import Database
from gateway.main import purge_idempotency_keys
from gateway.models import ApiClient, IdempotencyKey, utcnow


def seed_keys(db: Database) -> None:
    now = utcnow()
    client_id = uuid.uuid4()

    def work(session):  # type: ignore[no-untyped-def]
        session.add(
            ApiClient(
                id=client_id,
                name="c",
                role="source",
                source="crc-north",
                key_prefix="p",
                key_hash=uuid.uuid4().hex,
                created_at=now,
            )
        )
        session.flush()
        for key, expires in (
            ("old", now - timedelta(seconds=1)),
            ("new", now + timedelta(hours=24)),
        ):
            session.add(
                IdempotencyKey(
                    client_id=client_id,
                    key=key,
                    fingerprint="f",
                    state="completed",
                    created_at=now,
                    locked_until=now,
                    expires_at=expires,
                )
            )

    db.write(work)


@pytest.mark.anyio
async def test_the_purge_task_deletes_only_expired_keys(db: Database) -> None:
    seed_keys(db)

    task = asyncio.create_task(purge_idempotency_keys(db, interval=3600))
    for _ in range(200):
        remaining = db.read(lambda s: s.scalars(select(IdempotencyKey.key)).all())
        if list(remaining) == ["new"]:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert db.read(lambda s: s.scalar(select(func.count()).select_from(IdempotencyKey))) == 1
    assert list(remaining) == ["new"]
