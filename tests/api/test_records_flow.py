"""One record pushed by a source comes out of the feed, the persons API and the status."""

from __future__ import annotations

import uuid

import httpx
import pytest

from gateway import migrate
from gateway.services.clients import Role
from tests.builders import make_case_record
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio


async def test_a_pushed_record_shows_up_in_feed_persons_and_status(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    source_key = make_key(Role.SOURCE, source="crc-north")
    central_key = make_key(Role.CENTRAL)
    operator_key = make_key(Role.OPERATOR)
    record = make_case_record()
    crn = record["person"]["identifiers"]["crn"]

    pushed = await client.post(
        "/v1/sources/crc-north/records", json={"records": [record]}, headers=bearer(source_key)
    )
    assert pushed.status_code == 200
    body = pushed.json()
    assert body["summary"] == {
        "received": 1,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
    }
    person_id = body["results"][0]["person_id"]

    feed = (await client.get("/v1/changes", headers=bearer(central_key))).json()
    assert [c["type"] for c in feed["changes"]] == ["person.created", "case.created"]
    created = feed["changes"][0]
    assert created["person_id"] == person_id
    assert created["schema_version"] == 1
    assert created["snapshot"]["person"]["identifiers"]["crn"] == crn
    assert feed["changes"][1]["snapshot"]["case"]["tier"]["value"] == "B2"
    assert feed["has_more"] is False

    found = (await client.get(f"/v1/persons?crn={crn.lower()}", headers=bearer(central_key))).json()
    assert [item["id"] for item in found["items"]] == [person_id]
    person = (await client.get(f"/v1/persons/{person_id}", headers=bearer(central_key))).json()
    assert person["person"]["surname"] == record["person"]["surname"]
    assert person["provenance"]["surname"]["source"] == "crc-north"
    assert person["provenance"]["surname"]["external_id"] == record["provenance"]["external_id"]
    assert [case["external_id"] for case in person["cases"]] == [
        record["provenance"]["external_id"]
    ]

    status = (await client.get("/v1/status", headers=bearer(operator_key))).json()
    [north] = status["sources"]
    assert (north["source"], north["received"], north["created"]) == ("crc-north", 1, 1)
    assert north["last_received_at"] is not None
    assert status["feed"]["changes"] == 2
    assert status["feed"]["head_cursor"] == feed["next_cursor"]

    own = await client.get("/v1/sources/crc-north/status", headers=bearer(source_key))
    assert own.json()["created"] == 1


async def test_the_feed_pages_by_cursor_without_loss_or_repeat(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    source_key = make_key(Role.SOURCE, source="crc-north")
    central_key = make_key(Role.CENTRAL)
    records = [make_case_record(case=None) for _ in range(7)]
    await client.post(
        "/v1/sources/crc-north/records", json={"records": records}, headers=bearer(source_key)
    )

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 3, **({"after": cursor} if cursor else {})}
        page = (await client.get("/v1/changes", params=params, headers=bearer(central_key))).json()
        seen.extend(change["id"] for change in page["changes"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break

    assert seen == [str(n) for n in range(1, 8)]
    again = (
        await client.get("/v1/changes", params={"after": cursor}, headers=bearer(central_key))
    ).json()
    assert again["changes"] == []
    assert again["next_cursor"] == cursor


async def test_resuming_from_any_change_cursor_gives_the_rest(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    source_key = make_key(Role.SOURCE, source="crc-north")
    central_key = make_key(Role.CENTRAL)
    await client.post(
        "/v1/sources/crc-north/records",
        json={"records": [make_case_record() for _ in range(3)]},
        headers=bearer(source_key),
    )
    everything = (await client.get("/v1/changes", headers=bearer(central_key))).json()["changes"]

    middle = everything[2]
    rest = (
        await client.get(
            "/v1/changes", params={"after": middle["cursor"]}, headers=bearer(central_key)
        )
    ).json()["changes"]

    assert [c["id"] for c in rest] == [c["id"] for c in everything[3:]]


@pytest.mark.parametrize(
    ("cursor", "status"), [("not-a-cursor", 400), ("YzE6LTE", 400), ("eDE6MQ", 400), ("%%%", 422)]
)
async def test_a_cursor_the_feed_did_not_issue_is_refused(
    client: httpx.AsyncClient, make_key: KeyMaker, cursor: str, status: int
) -> None:
    response = await client.get(
        "/v1/changes", params={"after": cursor}, headers=bearer(make_key(Role.CENTRAL))
    )

    # Not base64url at all breaks the schema (422); well-formed but never issued is a 400.
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_cursor_ahead_of_the_feed_is_a_400(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    from gateway.services.changes import encode_cursor

    response = await client.get(
        "/v1/changes", params={"after": encode_cursor(99)}, headers=bearer(make_key(Role.CENTRAL))
    )

    assert response.status_code == 400
    assert "ahead" in response.json()["detail"]


async def test_an_unknown_person_is_a_404_problem(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    response = await client.get(
        f"/v1/persons/{uuid.uuid4()}", headers=bearer(make_key(Role.CENTRAL))
    )

    assert response.status_code == 404
    assert response.json()["type"].endswith("/not-found")


@pytest.mark.parametrize("params", [{"crn": "320741"}, {"pnc": "02/73319Q"}])
async def test_person_lookups_need_valid_identifiers(
    client: httpx.AsyncClient, make_key: KeyMaker, params: dict[str, str]
) -> None:
    response = await client.get(
        "/v1/persons", params=params, headers=bearer(make_key(Role.CENTRAL))
    )

    assert response.status_code == 422


async def test_persons_are_listed_in_pages_and_narrowed_by_every_identifier_given(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    records = [make_case_record() for _ in range(3)]
    await client.post(
        "/v1/sources/crc-north/records",
        json={"records": records},
        headers=bearer(make_key(Role.SOURCE, source="crc-north")),
    )
    central = bearer(make_key(Role.CENTRAL))

    first = (await client.get("/v1/persons", params={"limit": 2}, headers=central)).json()
    rest = (
        await client.get(
            "/v1/persons", params={"limit": 2, "after": first["next_after"]}, headers=central
        )
    ).json()
    identifiers = records[0]["person"]["identifiers"]
    both = {"crn": identifiers["crn"], "pnc": identifiers["pnc"]}
    narrowed = (await client.get("/v1/persons", params=both, headers=central)).json()
    mismatched = {"crn": identifiers["crn"], "pnc": records[1]["person"]["identifiers"]["pnc"]}
    nobody = (await client.get("/v1/persons", params=mismatched, headers=central)).json()

    assert len(first["items"]) == 2
    assert len(rest["items"]) == 1
    assert rest["next_after"] is None
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == sorted(ids)
    assert [item["person"]["identifiers"]["crn"] for item in narrowed["items"]] == [
        identifiers["crn"]
    ]
    assert nobody["items"] == []


async def test_lookups_by_pnc_and_noms_accept_any_surface_form(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    record = make_case_record(person={"identifiers": {"pnc": "2002/0073319Z", "noms": "A1234BC"}})
    await client.post(
        "/v1/sources/crc-north/records",
        json={"records": [record]},
        headers=bearer(make_key(Role.SOURCE, source="crc-north")),
    )
    central = bearer(make_key(Role.CENTRAL))

    by_pnc = await client.get("/v1/persons", params={"pnc": "02/73319z"}, headers=central)
    by_noms = await client.get("/v1/persons", params={"noms": "a1234bc"}, headers=central)

    assert len(by_pnc.json()["items"]) == 1
    assert by_pnc.json()["items"] == by_noms.json()["items"]


async def test_a_source_with_nothing_received_reports_zeros(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    response = await client.get(
        "/v1/sources/crc-east/status", headers=bearer(make_key(Role.OPERATOR))
    )

    assert response.status_code == 200
    assert response.json()["received"] == 0


async def test_liveness_needs_no_credential_and_readiness_checks_the_schema(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    assert (await client.get("/health/live")).json() == {
        "status": "ok",
        "database": None,
        "schema_revision": None,
    }
    ready = await client.get("/health/ready", headers=bearer(make_key(Role.OPERATOR)))
    assert ready.status_code == 200
    assert ready.json()["schema_revision"] == migrate.head_revision()
