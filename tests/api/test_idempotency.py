"""Idempotency-Key on POST /v1/sources/{source}/records, through the HTTP API."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.errors import ServiceUnavailable
from gateway.models import AuditEntry, Change, IdempotencyKey, utcnow
from gateway.services import clients, idempotency, ingest
from gateway.services.clients import Role
from gateway.settings import IdempotencySettings, Settings
from tests.builders import make_case_record
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio

PATH = "/v1/sources/crc-north/records"
PROBLEMS = "https://crc-gateway.example/problems/"
WAIT_SECONDS = 10.0  # a safety net for held requests, never a measurement


def batch(*records: dict[str, Any]) -> bytes:
    return json.dumps({"records": list(records) or [make_case_record()]}).encode()


async def push(
    client: httpx.AsyncClient, api_key: str, body: bytes, idempotency_key: str | bytes | None
) -> httpx.Response:
    headers: dict[str, Any] = {**bearer(api_key), "Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return await client.post(PATH, content=body, headers=headers)


def client_id_of(db: Database, api_key: str) -> uuid.UUID:
    principal = db.read(lambda session: clients.authenticate(session, api_key))
    assert principal is not None
    return principal.client_id


def count(db: Database, *criteria: Any, of: Any = Change) -> int:
    statement = select(func.count()).select_from(of).where(*criteria)
    return db.read(lambda session: session.scalar(statement)) or 0


def stored_keys(db: Database) -> list[IdempotencyKey]:
    return db.read(
        lambda session: list(session.scalars(select(IdempotencyKey).order_by(IdempotencyKey.key)))
    )


def alter_key(db: Database, client_id: uuid.UUID, key: str, **values: Any) -> None:
    statement = (
        update(IdempotencyKey)
        .where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)
        .values(**values)
    )

    def work(session: Session) -> None:
        assert session.execute(statement).rowcount == 1  # type: ignore[attr-defined]

    db.write(work)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"] == PROBLEMS + slug
    assert problem["status"] == status
    return problem


async def test_a_replay_returns_the_stored_response_and_changes_nothing(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    api_key = make_key(Role.SOURCE, source="crc-north")
    body = batch(make_case_record(), make_case_record(person={"surname": "NOT ENTERED"}))

    first = await push(client, api_key, body, "batch-0001")
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert first.json()["summary"]["created"] == 2
    changes_after_first = count(db)
    collects_after_first = count(db, AuditEntry.action == "collect", of=AuditEntry)
    assert (changes_after_first, collects_after_first) == (4, 1)

    for _ in range(2):
        replay = await push(client, api_key, body, "batch-0001")
        assert replay.status_code == first.status_code
        assert replay.content == first.content
        assert replay.headers["content-type"] == first.headers["content-type"]
        assert replay.headers["idempotent-replayed"] == "true"

    # Without the key the same body is processed again: unchanged, and still nothing emitted.
    again = await push(client, api_key, body, None)
    assert again.json()["summary"]["unchanged"] == 2
    assert "idempotent-replayed" not in again.headers

    assert count(db) == changes_after_first
    assert count(db, AuditEntry.action == "collect", of=AuditEntry) == collects_after_first
    [stored] = stored_keys(db)
    assert (stored.state, stored.response_status) == ("completed", 200)
    assert stored.response_body == first.text


async def test_the_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    api_key = make_key(Role.SOURCE, source="crc-north")
    body = batch()
    first = await push(client, api_key, body, "batch-0002")
    assert first.status_code == 200
    changes_before = count(db)

    reused = await push(client, api_key, batch(), "batch-0002")

    problem = assert_problem(reused, 422, "idempotency-key-reused")
    assert problem["type"].endswith("idempotency-key-reused")
    assert count(db) == changes_before
    # The refusal does not disturb what the key stands for.
    replay = await push(client, api_key, body, "batch-0002")
    assert replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"


async def test_a_key_in_flight_is_refused_until_its_lock_runs_out(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database, settings: Settings
) -> None:
    api_key = make_key(Role.SOURCE, source="crc-north")
    client_id = client_id_of(db, api_key)
    body = batch()
    now = utcnow()
    # Another request with this key and this body has claimed it and is still working.
    claimed = db.write(
        lambda session: idempotency.claim(
            session,
            client_id=client_id,
            key="batch-0003",
            request_fingerprint=idempotency.fingerprint("POST", PATH, "application/json", body),
            now=now,
            retention=timedelta(hours=settings.idempotency.retention_hours),
            lock=timedelta(seconds=settings.idempotency.lock_seconds),
        )
    )
    assert claimed is None

    in_flight = await push(client, api_key, body, "batch-0003")

    assert_problem(in_flight, 409, "idempotency-key-in-flight")
    assert in_flight.headers["retry-after"] == "1"
    assert count(db) == 0
    [stored] = stored_keys(db)
    assert stored.state == "in_flight"

    # The claimant died: once its lock has run out, a retry takes the key over and does the work.
    alter_key(db, client_id, "batch-0003", locked_until=now - timedelta(seconds=1))
    taken_over = await push(client, api_key, body, "batch-0003")
    assert taken_over.status_code == 200, taken_over.text
    assert "idempotent-replayed" not in taken_over.headers
    assert taken_over.json()["summary"]["created"] == 1
    assert count(db) == 2

    replay = await push(client, api_key, body, "batch-0003")
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == taken_over.content


@pytest.mark.postgres_only
async def test_a_retry_while_the_first_request_is_still_working_is_409(
    client: httpx.AsyncClient,
    make_key: KeyMaker,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PostgreSQL only: on SQLite the retry's claim waits behind the first request's write lock
    # and then replays, so "in flight" is never visible there while the work runs.
    api_key = make_key(Role.SOURCE, source="crc-north")
    body = batch()
    working, release = threading.Event(), threading.Event()
    real_ingest = ingest.ingest_batch

    def held_ingest(*args: Any, **kwargs: Any) -> ingest.BatchResult:
        working.set()
        if not release.wait(WAIT_SECONDS):
            raise TimeoutError("the test never released the first request")
        return real_ingest(*args, **kwargs)

    monkeypatch.setattr(ingest, "ingest_batch", held_ingest)
    first = asyncio.create_task(push(client, api_key, body, "batch-0004"))
    try:
        assert await anyio.to_thread.run_sync(working.wait, WAIT_SECONDS)
        retry = await push(client, api_key, body, "batch-0004")
        assert_problem(retry, 409, "idempotency-key-in-flight")
    finally:
        release.set()
        done = await first
    assert done.status_code == 200
    replay = await push(client, api_key, body, "batch-0004")
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == done.content


def _raise_domain_error(*_args: Any, **_kwargs: Any) -> ingest.BatchResult:
    raise ServiceUnavailable("the database went away")


def _raise_unexpected_error(*_args: Any, **_kwargs: Any) -> ingest.BatchResult:
    raise RuntimeError("something broke half way")


@pytest.mark.parametrize("failure", [_raise_domain_error, _raise_unexpected_error])
async def test_a_failed_request_releases_its_key_so_a_retry_succeeds(
    client: httpx.AsyncClient,
    make_key: KeyMaker,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    failure: Callable[..., ingest.BatchResult],
) -> None:
    api_key = make_key(Role.SOURCE, source="crc-north")
    body = batch()
    with monkeypatch.context() as patched:
        patched.setattr(ingest, "ingest_batch", failure)
        if failure is _raise_unexpected_error:
            # The app answers 500 and the in-process transport re-raises the original error.
            with pytest.raises(RuntimeError, match="half way"):
                await push(client, api_key, body, "batch-0005")
        else:
            failed = await push(client, api_key, body, "batch-0005")
            assert_problem(failed, 503, "service-unavailable")
    assert stored_keys(db) == []
    assert count(db) == 0

    retry = await push(client, api_key, body, "batch-0005")

    assert retry.status_code == 200, retry.text
    assert "idempotent-replayed" not in retry.headers
    assert retry.json()["summary"]["created"] == 1
    assert count(db) == 2


async def test_keys_belong_to_the_client_that_sent_them(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    north_a = make_key(Role.SOURCE, source="crc-north", name="north case system")
    north_b = make_key(Role.SOURCE, source="crc-north", name="north bulk loader")
    body_a, body_b = batch(), batch()

    from_a = await push(client, north_a, body_a, "shared-key")
    from_b = await push(client, north_b, body_b, "shared-key")

    assert (from_a.status_code, from_b.status_code) == (200, 200)
    assert "idempotent-replayed" not in from_b.headers
    assert from_a.json()["results"][0]["person_id"] != from_b.json()["results"][0]["person_id"]
    assert {row.client_id for row in stored_keys(db)} == {
        client_id_of(db, north_a),
        client_id_of(db, north_b),
    }
    replay_a = await push(client, north_a, body_a, "shared-key")
    replay_b = await push(client, north_b, body_b, "shared-key")
    assert (replay_a.content, replay_b.content) == (from_a.content, from_b.content)
    assert replay_a.headers["idempotent-replayed"] == replay_b.headers["idempotent-replayed"]
    # Client B's body under client A's key is another request for A: refused, not replayed.
    crossed = await push(client, north_a, body_b, "shared-key")
    assert_problem(crossed, 422, "idempotency-key-reused")


async def test_an_expired_key_can_be_used_for_a_new_request(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    api_key = make_key(Role.SOURCE, source="crc-north")
    client_id = client_id_of(db, api_key)
    first = await push(client, api_key, batch(), "batch-0006")
    assert first.status_code == 200
    alter_key(db, client_id, "batch-0006", expires_at=utcnow() - timedelta(seconds=1))

    reused = await push(client, api_key, batch(), "batch-0006")

    assert reused.status_code == 200, reused.text
    assert "idempotent-replayed" not in reused.headers
    assert reused.json()["summary"]["created"] == 1
    [stored] = stored_keys(db)
    assert stored.state == "completed"
    assert stored.response_body == reused.text
    assert stored.expires_at > utcnow() + timedelta(hours=23)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("k" * 300, id="300-characters"),
        pytest.param("k" * 256, id="256-characters"),
        pytest.param("clé-0001".encode(), id="non-ascii"),
        pytest.param("", id="empty"),
        pytest.param("two words", id="space"),
        pytest.param('"', id="lone-quote"),
    ],
)
async def test_a_malformed_key_is_refused_before_any_work(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database, header: str | bytes
) -> None:
    api_key = make_key(Role.SOURCE, source="crc-north")

    response = await push(client, api_key, batch(), header)

    assert_problem(response, 400, "bad-request")
    assert stored_keys(db) == []
    assert count(db) == 0


async def test_the_longest_key_and_a_quoted_key_are_accepted(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    api_key = make_key(Role.SOURCE, source="crc-north")
    longest = "k" * 255
    assert (await push(client, api_key, batch(), longest)).status_code == 200

    body = batch()
    quoted = await push(client, api_key, body, '"batch-0007"')
    assert quoted.status_code == 200
    # The structured-field string and the bare token name the same key.
    bare = await push(client, api_key, body, "batch-0007")
    assert bare.headers["idempotent-replayed"] == "true"
    assert bare.content == quoted.content
    assert [row.key for row in stored_keys(db)] == ["batch-0007", longest]


async def test_keys_are_kept_for_at_least_24_hours(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    api_key = make_key(Role.SOURCE, source="crc-north")
    assert (await push(client, api_key, batch(), "batch-0008")).status_code == 200

    [stored] = stored_keys(db)

    assert stored.expires_at - stored.created_at >= timedelta(hours=24)


def test_the_documented_retention_default_is_24_hours_and_cannot_be_shortened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GATEWAY_IDEMPOTENCY__RETENTION_HOURS", raising=False)
    assert Settings().idempotency.retention_hours == 24
    with pytest.raises(ValidationError):
        IdempotencySettings(retention_hours=23)
