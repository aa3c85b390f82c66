"""Every path, query and body parameter is range-checked at the edge: a value the database
cannot take is a 4xx problem document on both engines and never reaches the driver."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from gateway.services.clients import Role
from tests.api.conftest import assert_problem
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio
BIG = 2**63


@pytest.fixture
def operator(make_key: KeyMaker) -> dict[str, str]:
    return bearer(make_key(Role.OPERATOR))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/quarantine/{BIG}", None),
        ("GET", f"/v1/quarantine/{10**30}", None),
        ("POST", f"/v1/quarantine/{BIG}/replay", None),
        ("POST", f"/v1/quarantine/{BIG}/discard", {"reason": "duplicate"}),
        ("GET", "/v1/quarantine/0", None),
    ],
)
async def test_a_row_id_past_64_bits_is_refused_at_the_edge(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    response = await client.request(method, path, json=body, headers=operator)

    assert_problem(response, 422)


async def test_paging_cursors_past_64_bits_are_refused(
    client: httpx.AsyncClient, make_key: KeyMaker, operator: dict[str, str]
) -> None:
    admin = bearer(make_key(Role.ADMIN))
    central = bearer(make_key(Role.CENTRAL))
    created = await client.post(
        "/v1/subscriptions",
        json={"name": "central", "url": "https://central.example/hooks"},
        headers=admin,
    )
    subscription = created.json()["id"] if created.status_code == 201 else str(uuid.uuid4())
    feed_cursor = base64.urlsafe_b64encode(f"c1:{BIG}".encode()).decode().rstrip("=")

    quarantine = await client.get("/v1/quarantine", params={"after": BIG}, headers=operator)
    dead = await client.get(
        f"/v1/subscriptions/{subscription}/dead-letters", params={"after": BIG}, headers=operator
    )
    feed = await client.get("/v1/changes", params={"after": feed_cursor}, headers=central)

    assert_problem(quarantine, 422)
    assert_problem(dead, 422)
    assert_problem(feed, 400)


@pytest.mark.parametrize(
    "delivery_ids", [[BIG], [-(BIG + 1)], [True, False], ["1"], [1.5], [0]], ids=str
)
async def test_delivery_ids_are_integers_a_row_can_have(
    client: httpx.AsyncClient, make_key: KeyMaker, delivery_ids: list[object]
) -> None:
    response = await client.post(
        f"/v1/subscriptions/{uuid.uuid4()}/dead-letters/replay",
        json={"delivery_ids": delivery_ids},
        headers=bearer(make_key(Role.OPERATOR)),
    )

    error = assert_problem(response, 422)["errors"][0]
    assert "delivery_ids" in error["path"] + error["message"]


@pytest.mark.parametrize(
    ("path", "params", "role"),
    [
        ("/v1/quarantine", {"source": "crc\x00a"}, Role.OPERATOR),
        ("/v1/quarantine", {"error_path": "person\x00surname"}, Role.OPERATOR),
        ("/v1/quarantine", {"error_type": "enum\x00"}, Role.OPERATOR),
        ("/v1/persons", {"crn": "X32\x000741"}, Role.CENTRAL),
        ("/v1/changes", {"source": "crc-north\x00"}, Role.CENTRAL),
        ("/v1/changes", {"type": "person.created\x00"}, Role.CENTRAL),
    ],
)
async def test_a_nul_in_any_filter_is_a_4xx(
    client: httpx.AsyncClient,
    make_key: KeyMaker,
    path: str,
    params: dict[str, str],
    role: Role,
) -> None:
    response = await client.get(path, params=params, headers=bearer(make_key(role)))

    body = assert_problem(response, 422)
    assert "\x00" not in response.text
    assert body["errors"]


async def test_a_nul_or_lone_surrogate_in_a_body_is_a_4xx(
    client: httpx.AsyncClient, make_key: KeyMaker, operator: dict[str, str]
) -> None:
    admin = bearer(make_key(Role.ADMIN))
    named = await client.post(
        "/v1/clients",
        content=b'{"name": "ops\\u0000", "role": "operator"}',
        headers={**admin, "content-type": "application/json"},
    )
    surrogate = await client.post(
        "/v1/clients",
        content=b'{"name": "ops\\ud800", "role": "operator"}',
        headers={**admin, "content-type": "application/json"},
    )
    reason = await client.post(
        "/v1/quarantine/1/discard",
        content=b'{"reason": "dup\\ud800"}',
        headers={**operator, "content-type": "application/json"},
    )

    assert_problem(named, 422)
    assert_problem(surrogate, 422)
    assert_problem(reason, 422)
