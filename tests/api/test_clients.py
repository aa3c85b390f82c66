"""Admin management of API clients over HTTP."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.models import ApiClient
from gateway.services.clients import Role, hash_key
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio


async def test_an_admin_creates_a_client_whose_key_works_and_is_stored_hashed(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    admin = bearer(make_key(Role.ADMIN))

    created = await client.post(
        "/v1/clients",
        json={"name": "north system", "role": "source", "source": "crc-north"},
        headers=admin,
    )

    assert created.status_code == 201
    key = created.json()["key"]
    stored = db.read(
        lambda s: s.scalars(select(ApiClient).where(ApiClient.name == "north system")).one()
    )
    assert stored.key_hash == hash_key(key)
    assert key not in {stored.key_hash, stored.key_prefix}
    listing = (await client.get("/v1/clients", headers=admin)).json()
    assert all("key" not in item for item in listing)
    pushed = await client.get("/v1/sources/crc-north/status", headers=bearer(key))
    assert pushed.status_code == 200


async def test_a_revoked_key_stops_working(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    admin = bearer(make_key(Role.ADMIN))
    created = (
        await client.post("/v1/clients", json={"name": "central", "role": "central"}, headers=admin)
    ).json()

    revoked = await client.delete(f"/v1/clients/{created['id']}", headers=admin)

    assert revoked.status_code == 204
    assert (await client.get("/v1/changes", headers=bearer(created["key"]))).status_code == 401
    again = await client.delete(f"/v1/clients/{created['id']}", headers=admin)
    assert again.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "role": "source"},
        {"name": "x", "role": "central", "source": "crc-north"},
        {"name": "x", "role": "source", "source": "Not A Source"},
        {"name": "x", "role": "superuser"},
        {"name": "", "role": "central"},
        {"name": "x", "role": "central", "colour": "blue"},
    ],
)
async def test_invalid_clients_are_refused(
    client: httpx.AsyncClient, make_key: KeyMaker, body: dict[str, str]
) -> None:
    response = await client.post("/v1/clients", json=body, headers=bearer(make_key(Role.ADMIN)))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
