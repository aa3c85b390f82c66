"""Readiness answers probes without a credential and tells operators why it is not ready."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from gateway import migrate
from gateway.db import Database
from gateway.main import create_app
from gateway.services.clients import Role
from gateway.settings import Settings
from tests.api.conftest import assert_problem
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio


@pytest.fixture
def schema_behind(db: Database) -> Iterator[str]:
    """The database claims an older schema revision for the length of the test."""
    head = migrate.head_revision()
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        yield "0001"
    finally:
        with db.engine.begin() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": head}
            )


async def test_a_probe_without_a_credential_learns_only_that_the_gateway_is_ready(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN])
async def test_operators_see_the_engine_and_schema_revision(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database, role: Role
) -> None:
    response = await client.get("/health/ready", headers=bearer(make_key(role)))

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": db.dialect,
        "schema_revision": migrate.head_revision(),
    }


async def test_other_roles_get_the_bare_answer(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    for key in (make_key(Role.CENTRAL), make_key(Role.SOURCE, source="crc-north")):
        response = await client.get("/health/ready", headers=bearer(key))
        assert response.status_code == 200
        assert response.json() == {"status": "ready"}


async def test_a_credential_that_is_sent_must_be_valid(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/health/ready", headers=bearer("crcgw_0_unknown")), 401)


async def test_a_schema_behind_is_503_with_the_reason_only_for_an_operator(
    client: httpx.AsyncClient, make_key: KeyMaker, schema_behind: str
) -> None:
    operator_key = make_key(Role.OPERATOR)
    anonymous = await client.get("/health/ready")
    operator = await client.get("/health/ready", headers=bearer(operator_key))

    body = assert_problem(anonymous, 503)
    assert body["detail"] == "not ready"
    assert schema_behind not in anonymous.text
    assert str(migrate.head_revision()) not in anonymous.text
    assert f"schema is at {schema_behind}" in assert_problem(operator, 503)["detail"]


async def test_an_unreachable_database_is_503_without_a_credential(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # A folder where the database file should be: SQLite cannot open it, as if a server were down.
    url = f"sqlite:///{tmp_path_factory.mktemp('not-a-file')}"
    database = Database.from_settings(Settings(database_url=url))
    app = create_app(Settings(database_url=url, log_format="text"), db=database)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            response = await http.get("/health/ready")
    finally:
        database.dispose()

    assert assert_problem(response, 503)["detail"] == "not ready"


def test_the_contract_says_the_credential_is_optional(app: FastAPI) -> None:
    security = app.openapi()["paths"]["/health/ready"]["get"]["security"]

    assert {} in security
    assert {"HTTPBearer": []} in security
