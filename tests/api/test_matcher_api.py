"""The matcher's admin API: store a model, activate it, re-run in the background, follow it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.db import Database
from gateway.matching import Bands, load_model
from gateway.services.clients import Role
from gateway.settings import Settings
from tests.api.conftest import assert_problem
from tests.builders import another_record_of, make_case_record
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Queued re-runs are looked for often, so the test does not wait long.
    return Settings(
        database_url=database_url, log_format="text", matching={"rerun_check_seconds": 0.05}
    )


@pytest.fixture
async def live(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield http


def strict_model() -> dict[str, Any]:
    """Links nothing on weight: copies with no identifier in common come apart."""
    model = load_model().model_copy(
        update={"version": f"strict-{uuid.uuid4().hex[:6]}", "bands": Bands(link=200, possible=0)}
    )
    return model.model_dump(mode="json")


async def wait_for(client: httpx.AsyncClient, location: str, key: str) -> dict[str, Any]:
    for _ in range(400):
        run: dict[str, Any] = (await client.get(location, headers=bearer(key))).json()
        if run["status"] in ("succeeded", "failed"):
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"the run did not finish: {run}")


async def test_an_admin_stores_activates_and_reruns_a_model(
    live: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    admin, source = make_key(Role.ADMIN), make_key(Role.SOURCE, source="crc-north")
    first = make_case_record()
    pushed = await live.post(
        "/v1/sources/crc-north/records",
        json={"records": [first, another_record_of(first)]},
        headers=bearer(source),
    )
    results = pushed.json()["results"]
    assert results[0]["person_id"] == results[1]["person_id"]
    document = strict_model()

    stored = await live.post("/v1/matcher/models", json=document, headers=bearer(admin))
    assert stored.status_code == 201, stored.text
    assert stored.json()["created"] is True
    again = await live.post("/v1/matcher/models", json=document, headers=bearer(admin))
    assert again.status_code == 200
    assert again.json()["created"] is False
    version = document["version"]
    whole = await live.get(f"/v1/matcher/models/{version}", headers=bearer(admin))
    assert whole.json() == document
    active = await live.post(f"/v1/matcher/models/{version}/activate", headers=bearer(admin))
    assert active.status_code == 200
    assert active.json()["active"] is True
    listed = (await live.get("/v1/matcher/models", headers=bearer(admin))).json()
    assert [m["version"] for m in listed if m["active"]] == [version]

    requested = await live.post("/v1/matcher/reruns", headers=bearer(admin))
    assert requested.status_code == 202, requested.text
    location = requested.headers["location"]
    assert location == f"/v1/matcher/reruns/{requested.json()['id']}"
    run = await wait_for(live, location, admin)

    assert run["status"] == "succeeded", run
    assert run["model_version"] == version
    assert (run["records_total"], run["records_done"]) == (2, 2)
    assert (run["persons_split"], run["records_moved"]) == (1, 1)
    feed = (await live.get("/v1/changes", headers=bearer(admin))).json()
    split = [c for c in feed["changes"] if c["type"] == "person.split"]
    assert len(split) == 1
    assert split[0]["related_person_ids"] == [results[0]["person_id"]]


async def test_a_model_that_does_not_validate_is_refused_naming_the_problem(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    document = strict_model()
    del document["comparisons"]["surname"]

    response = await client.post(
        "/v1/matcher/models", json=document, headers=bearer(make_key(Role.ADMIN))
    )

    assert_problem(response, 422)
    assert "surname" in response.text


async def test_one_rerun_at_a_time(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    admin = make_key(Role.ADMIN)
    assert (await client.post("/v1/matcher/reruns", headers=bearer(admin))).status_code == 202

    second = await client.post("/v1/matcher/reruns", headers=bearer(admin))

    assert_problem(second, 409)


async def test_status_and_explain_name_the_active_model(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    admin = make_key(Role.ADMIN)
    document = strict_model()
    await client.post("/v1/matcher/models", json=document, headers=bearer(admin))
    await client.post(f"/v1/matcher/models/{document['version']}/activate", headers=bearer(admin))

    status = (await client.get("/v1/status", headers=bearer(admin))).json()
    person = make_case_record()["person"]
    explained = await client.post(
        "/v1/match/explain", json={"left": person, "right": person}, headers=bearer(admin)
    )

    assert status["identity"]["model_version"] == document["version"]
    assert explained.json()["model_version"] == document["version"]
