"""Keep the record, flag the field: bad identity fields become data-quality warnings."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.main import create_app
from gateway.models import MatchDecision, RejectedRecord, SourceRecord
from gateway.services.clients import Role
from gateway.settings import Settings, SourceSettings
from tests.builders import OMIT, make_case_record
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio


async def push(
    client: httpx.AsyncClient, key: str, records: list[Any], *, source: str = "crc-north"
) -> list[dict[str, Any]]:
    response = await client.post(
        f"/v1/sources/{source}/records", json={"records": records}, headers=bearer(key)
    )
    assert response.status_code == 200
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def stored(db: Database, external_id: str) -> SourceRecord:
    return db.read(
        lambda s: s.scalars(
            select(SourceRecord).where(SourceRecord.external_id == external_id)
        ).one()
    )


def quarantined(db: Database) -> list[RejectedRecord]:
    return list(db.read(lambda s: s.scalars(select(RejectedRecord)).all()))


@pytest.mark.parametrize(
    ("person", "path", "rule", "value"),
    [
        ({"date_of_birth": "1959-0s-11"}, "person.date_of_birth", "invalid", "1959-0s-11"),
        ({"date_of_birth": "1959-13-11"}, "person.date_of_birth", "invalid", "1959-13-11"),
        ({"surname": OMIT}, "person.surname", "missing", None),
        ({"surname": "   "}, "person.surname", "missing", "   "),
        ({"surname": None}, "person.surname", "missing", None),
        (
            {"identifiers": {"pnc": "2002/0073319Q"}},
            "person.identifiers.pnc",
            "invalid",
            "2002/0073319Q",
        ),
        ({"identifiers": {"cro": "65656/91A"}}, "person.identifiers.cro", "invalid", "65656/91A"),
    ],
)
async def test_a_bad_identity_field_is_dropped_with_a_warning_and_the_record_kept(
    client: httpx.AsyncClient,
    make_key: KeyMaker,
    db: Database,
    person: dict[str, Any],
    path: str,
    rule: str,
    value: Any,
) -> None:
    record = make_case_record(person=person)
    [result] = await push(client, make_key(Role.SOURCE, source="crc-north"), [record])

    assert result["outcome"] == "created"
    assert result["person_id"] is not None
    assert [(w["path"], w["rule"], w["value"]) for w in result["warnings"]] == [(path, rule, value)]
    row = stored(db, record["provenance"]["external_id"])
    assert [(w["path"], w["rule"], w["value"]) for w in row.warnings or []] == [(path, rule, value)]
    assert row.warning_count == 1
    field = path.rsplit(".", 1)[-1]
    holder = row.canonical["person"]
    if path.startswith("person.identifiers"):
        holder = holder["identifiers"]
    assert holder.get(field) is None
    assert quarantined(db) == []


async def test_a_postal_code_from_abroad_is_kept_as_text(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    record = make_case_record()
    record["person"]["addresses"][0]["postcode"] = "75001"
    [result] = await push(client, make_key(Role.SOURCE, source="crc-north"), [record])

    assert result["outcome"] == "created"
    [warning] = result["warnings"]
    assert (warning["path"], warning["rule"], warning["value"]) == (
        "person.addresses.0.postcode",
        "not_uk_postcode",
        "75001",
    )
    address = stored(db, record["provenance"]["external_id"]).canonical["person"]["addresses"][0]
    assert address["postcode"] is None
    assert address["postal_code"] == "75001"


async def test_a_uk_postcode_is_still_canonicalised_without_a_warning(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    record = make_case_record()
    record["person"]["addresses"][0]["postcode"] = " sw1a1aa"
    [result] = await push(client, make_key(Role.SOURCE, source="crc-north"), [record])

    assert result["warnings"] == []
    address = stored(db, record["provenance"]["external_id"]).canonical["person"]["addresses"][0]
    assert address["postcode"] == "SW1A 1AA"
    assert address["postal_code"] is None


async def test_a_record_below_the_minimum_is_still_quarantined(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    record = make_case_record(
        person={
            "forenames": [],
            "surname": OMIT,
            "date_of_birth": "1959-0s-11",
            "aliases": [],
            "identifiers": {"crn": OMIT, "noms": OMIT, "pnc": "2002/0073319Q"},
        }
    )
    [result] = await push(client, make_key(Role.SOURCE, source="crc-north"), [record])

    assert result["outcome"] == "rejected"
    assert result["warnings"] == []
    paths = {error["path"]: error["type"] for error in result["errors"]}
    assert paths["person"] == "unidentifiable"
    assert "person.date_of_birth" in paths
    assert "person.identifiers.pnc" in paths
    assert len(quarantined(db)) == 1
    assert db.read(lambda s: s.scalars(select(SourceRecord)).all()) == []


async def test_other_faults_still_reject_the_whole_record(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    record = make_case_record(person={"date_of_birth": "1959-0s-11", "sex": "SOMETIMES"})
    [result] = await push(client, make_key(Role.SOURCE, source="crc-north"), [record])

    assert result["outcome"] == "rejected"
    assert {error["path"] for error in result["errors"]} >= {"person.sex"}


@pytest.fixture
async def strict_client(database_url: str, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=database_url,
        log_format="text",
        sources={"crc-strict": SourceSettings(strict=True)},
    )
    transport = httpx.ASGITransport(app=create_app(settings, db=db))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http


@pytest.mark.parametrize(
    ("person", "path"),
    [
        ({"date_of_birth": "1959-0s-11"}, "person.date_of_birth"),
        ({"surname": None}, "person.surname"),
        ({"identifiers": {"pnc": "2002/0073319Q"}}, "person.identifiers.pnc"),
    ],
)
async def test_a_strict_source_quarantines_as_before(
    strict_client: httpx.AsyncClient,
    make_key: KeyMaker,
    db: Database,
    person: dict[str, Any],
    path: str,
) -> None:
    key = make_key(Role.SOURCE, source="crc-strict")
    [result] = await push(
        strict_client, key, [make_case_record(person=person)], source="crc-strict"
    )

    assert result["outcome"] == "rejected"
    assert [error["path"] for error in result["errors"]] == [path]
    assert len(quarantined(db)) == 1


async def test_a_warned_record_is_still_matched_on_its_other_fields(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    first = make_case_record(person={"identifiers": {"crn": OMIT, "pnc": OMIT, "noms": OMIT}})
    second = copy.deepcopy(first)
    second["provenance"]["external_id"] = "ext-second"
    second["person"]["date_of_birth"] = "1959-13-11"
    second.pop("case")
    key = make_key(Role.SOURCE, source="crc-north")

    [one] = await push(client, key, [first])
    [two] = await push(client, key, [second])

    assert two["outcome"] == "created"
    assert [w["path"] for w in two["warnings"]] == ["person.date_of_birth"]
    pending = db.read(
        lambda s: s.scalars(select(MatchDecision).where(MatchDecision.status == "pending")).all()
    )
    assert two["person_id"] == one["person_id"] or any(
        decision.candidate_person_id == uuid_of(one["person_id"]) for decision in pending
    )


def uuid_of(text: str) -> Any:
    import uuid

    return uuid.UUID(text)


async def test_operators_see_counts_and_pages_of_warned_records(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    records = [
        make_case_record(person={"date_of_birth": "1959-0s-11"}),
        make_case_record(person={"date_of_birth": "1960-13-01"}),
        make_case_record(person={"surname": OMIT, "identifiers": {"pnc": "2002/0073319Q"}}),
        make_case_record(),
    ]
    for index, record in enumerate(records):
        record["provenance"]["external_id"] = f"rec-{index}"
    await push(client, make_key(Role.SOURCE, source="crc-north"), records)
    operator = bearer(make_key(Role.OPERATOR))

    first = await client.get(
        "/v1/sources/crc-north/data-quality", params={"limit": 2}, headers=operator
    )
    assert first.status_code == 200
    body = first.json()
    assert (body["records"], body["warned_records"]) == (4, 3)
    assert {(c["path"], c["rule"]): c["records"] for c in body["counts"]} == {
        ("person.date_of_birth", "invalid"): 2,
        ("person.identifiers.pnc", "invalid"): 1,
        ("person.surname", "missing"): 1,
    }
    assert [item["external_id"] for item in body["items"]] == ["rec-0", "rec-1"]
    assert body["items"][0]["warnings"][0]["value"] == "1959-0s-11"
    second = (
        await client.get(
            "/v1/sources/crc-north/data-quality",
            params={"limit": 2, "after": body["next_after"]},
            headers=operator,
        )
    ).json()
    assert [item["external_id"] for item in second["items"]] == ["rec-2"]
    assert second["next_after"] is None
    assert {w["path"] for w in second["items"][0]["warnings"]} == {
        "person.surname",
        "person.identifiers.pnc",
    }


async def test_an_updated_record_without_its_fault_loses_its_warning(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    record = make_case_record(person={"date_of_birth": "1959-0s-11"})
    key = make_key(Role.SOURCE, source="crc-north")
    await push(client, key, [record])
    record["person"]["date_of_birth"] = "1959-01-11"
    [result] = await push(client, key, [record])

    assert result["outcome"] == "updated"
    assert result["warnings"] == []
    row = stored(db, record["provenance"]["external_id"])
    assert (row.warnings, row.warning_count) == ([], 0)
