"""GET /v1/sources/{source}/records: what the gateway holds of a source, for reconciliation."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.models import AuditEntry, Person, SourceRecord
from gateway.services.clients import Role
from tests.api.conftest import assert_problem, push_records
from tests.builders import OMIT, make_case_record, random_cro, random_pnc
from tests.conftest import KeyMaker, bearer


def with_external_id(external_id: str, **person: Any) -> dict[str, Any]:
    return make_case_record(provenance={"external_id": external_id}, person=person)


async def read_all(
    client: httpx.AsyncClient, key: str, source: str, **params: Any
) -> tuple[list[Any], int]:
    """Every item, following `next_after`; and how many pages that took."""
    items: list[Any] = []
    after: str | None = None
    pages = 0
    while True:
        query = {**params, **({"after": after} if after is not None else {})}
        response = await client.get(
            f"/v1/sources/{source}/records", params=query, headers=bearer(key)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        pages += 1
        after = body["next_after"]
        if after is None:
            return items, pages


@pytest.mark.anyio
async def test_a_source_pages_through_its_own_records_only(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    north = make_key(Role.SOURCE, source="crc-north")
    south = make_key(Role.SOURCE, source="crc-south")
    ids = [f"N-{n:04d}" for n in (5, 1, 4, 2, 3)]
    results = await push_records(client, north, "crc-north", *(with_external_id(i) for i in ids))
    await push_records(client, south, "crc-south", with_external_id("S-0001"))
    # A second version of one record.
    changed = with_external_id("N-0003")
    await push_records(client, north, "crc-north", changed)

    items, pages = await read_all(client, north, "crc-north", limit=2)

    assert pages == 3
    assert [item["external_id"] for item in items] == sorted(ids)
    person_of = {r["external_id"]: r["person_id"] for r in results}
    assert {item["external_id"]: item["person_id"] for item in items} == person_of
    versions = {item["external_id"]: item["version"] for item in items}
    assert versions == {"N-0001": 1, "N-0002": 1, "N-0003": 2, "N-0004": 1, "N-0005": 1}
    for item in items:
        assert item["received_at"]
        assert item["warnings"] == []
        assert "source_updated_at" in item


@pytest.mark.anyio
async def test_the_external_id_filter_finds_one_record(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    north = make_key(Role.SOURCE, source="crc-north")
    operator = make_key(Role.OPERATOR)
    await push_records(
        client, north, "crc-north", with_external_id("N-1"), with_external_id("N-10")
    )

    found, _ = await read_all(client, operator, "crc-north", external_id="N-1")
    missing, _ = await read_all(client, operator, "crc-north", external_id="N-2")

    assert [item["external_id"] for item in found] == ["N-1"]
    assert missing == []


@pytest.mark.anyio
async def test_a_record_shows_its_live_person_after_a_merge(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    north = make_key(Role.SOURCE, source="crc-north")
    south = make_key(Role.SOURCE, source="crc-south")
    central = make_key(Role.CENTRAL)
    pnc, cro = random_pnc(), random_cro()
    left = make_case_record(
        provenance={"external_id": "N-LEFT"},
        person={
            "forenames": ["Peregrine"],
            "surname": "Pretendley",
            "date_of_birth": "1971-03-04",
            "identifiers": {"pnc": pnc, "crn": OMIT, "noms": OMIT},
        },
    )
    right = make_case_record(
        provenance={"external_id": "N-RIGHT"},
        person={
            "forenames": ["Wilhelmina"],
            "surname": "Inventedale",
            # Born the same day as the left-hand record: a shared CRO is then corroborated,
            # not an identifier on someone else's record (a collision, which goes to review).
            "date_of_birth": "1971-03-04",
            "identifiers": {"cro": cro, "pnc": OMIT, "crn": OMIT, "noms": OMIT},
        },
    )
    [first] = await push_records(client, north, "crc-north", left)
    [second] = await push_records(client, north, "crc-north", right)
    bridge = copy.deepcopy(left)
    bridge["provenance"]["external_id"] = "S-BRIDGE"
    bridge["person"]["identifiers"] = {"pnc": pnc, "cro": cro}
    [tied] = await push_records(client, south, "crc-south", bridge)
    assert (tied["resolution"], tied["method"]) == ("linked", "merged")
    survivor = tied["person_id"]
    merged_away = {first["person_id"], second["person_id"]} - {survivor}
    assert len(merged_away) == 1

    items, _ = await read_all(client, central, "crc-north")

    assert {item["external_id"]: item["person_id"] for item in items} == {
        "N-LEFT": survivor,
        "N-RIGHT": survivor,
    }
    persons = db.read(lambda s: {p.id: p.merged_into_id for p in s.scalars(select(Person))})
    assert {str(p) for p, into in persons.items() if into is not None} == merged_away


@pytest.mark.anyio
async def test_a_record_still_pointing_at_a_merged_person_is_shown_with_the_survivor(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    north = make_key(Role.SOURCE, source="crc-north")
    operator = make_key(Role.OPERATOR)
    [one] = await push_records(client, north, "crc-north", with_external_id("N-A"))
    [two] = await push_records(client, north, "crc-north", with_external_id("N-B"))
    [three] = await push_records(client, north, "crc-north", with_external_id("N-C"))

    def chain(session: Any) -> None:
        # A chain of redirects with the record left behind: the read follows it to the end.
        people = {p.id: p for p in session.scalars(select(Person))}
        by_str = {str(key): value for key, value in people.items()}
        by_str[one["person_id"]].merged_into_id = by_str[two["person_id"]].id
        by_str[two["person_id"]].merged_into_id = by_str[three["person_id"]].id

    db.write(chain)

    [item] = (
        await client.get(
            "/v1/sources/crc-north/records",
            params={"external_id": "N-A"},
            headers=bearer(operator),
        )
    ).json()["items"]

    assert item["person_id"] == three["person_id"]
    stored = db.read(
        lambda s: s.scalar(select(SourceRecord.person_id).where(SourceRecord.external_id == "N-A"))
    )
    assert str(stored) == one["person_id"]


@pytest.mark.anyio
async def test_the_read_is_audited_without_personal_data(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    north = make_key(Role.SOURCE, source="crc-north")
    [result] = await push_records(client, north, "crc-north", with_external_id("N-AUDIT"))

    response = await client.get(
        "/v1/sources/crc-north/records", params={"external_id": "N-AUDIT"}, headers=bearer(north)
    )

    assert response.status_code == 200
    [entry] = db.read(
        lambda s: s.scalars(
            select(AuditEntry).where(
                AuditEntry.resource == "source-records", AuditEntry.action == "consult"
            )
        ).all()
    )
    assert entry.person_ids == [result["person_id"]]
    assert entry.detail == {"source": "crc-north", "lookup": ["external_id"], "found": 1}
    assert "N-AUDIT" not in str(entry.detail)


@pytest.mark.anyio
async def test_a_page_is_cut_to_the_maximum_size(
    client_with_limits: Any, make_key: KeyMaker
) -> None:
    client = await client_with_limits(max_page_size=2)
    north = make_key(Role.SOURCE, source="crc-north")
    await push_records(client, north, "crc-north", *(with_external_id(f"N-{n}") for n in range(3)))

    response = await client.get(
        "/v1/sources/crc-north/records", params={"limit": 50}, headers=bearer(north)
    )

    body = response.json()
    assert [item["external_id"] for item in body["items"]] == ["N-0", "N-1"]
    assert body["next_after"] == "N-1"


@pytest.mark.anyio
async def test_a_source_may_not_read_another_source(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    north = make_key(Role.SOURCE, source="crc-north")

    response = await client.get("/v1/sources/crc-south/records", headers=bearer(north))

    assert_problem(response, 403)


@pytest.mark.anyio
async def test_an_empty_cursor_is_refused(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    response = await client.get(
        "/v1/sources/crc-north/records",
        params={"after": ""},
        headers=bearer(make_key(Role.OPERATOR)),
    )

    assert_problem(response, 422)
