"""The quarantine over HTTP: every rejected record is kept, listed, replayed or discarded."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.db import Database
from gateway.models import AuditEntry, RejectedRecord, SourceRecord
from gateway.services.clients import Role
from tests.builders import OMIT, make_case_record
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio


async def push(client: httpx.AsyncClient, key: str, records: list[Any]) -> dict[str, Any]:
    response = await client.post(
        "/v1/sources/crc-north/records", json={"records": records}, headers=bearer(key)
    )
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def keys(make_key: KeyMaker) -> dict[str, str]:
    return {
        "source": make_key(Role.SOURCE, source="crc-north"),
        "operator": make_key(Role.OPERATOR),
    }


def bad_pnc_record() -> dict[str, Any]:
    # A bad PNC alone is dropped with a warning; with nothing else to identify the person the
    # record is still quarantined.
    return make_case_record(
        person={
            "forenames": [],
            "surname": None,
            "date_of_birth": OMIT,
            "aliases": [],
            "identifiers": {"crn": OMIT, "noms": OMIT, "pnc": "2002/0073319Q"},
        }
    )


async def test_rejected_records_are_listed_with_their_errors_and_filters(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    await push(
        client,
        keys["source"],
        [make_case_record(), bad_pnc_record(), make_case_record(person={"sex": "SOMETIMES"})],
    )
    operator = bearer(keys["operator"])

    everything = (await client.get("/v1/quarantine", headers=operator)).json()
    by_path = (
        await client.get(
            "/v1/quarantine", params={"error_path": "person.identifiers"}, headers=operator
        )
    ).json()
    by_type = (
        await client.get("/v1/quarantine", params={"error_type": "enum"}, headers=operator)
    ).json()
    other_source = (
        await client.get("/v1/quarantine", params={"source": "crc-south"}, headers=operator)
    ).json()

    assert len(everything["items"]) == 2
    assert [item["errors"][0]["path"] for item in by_path["items"]] == ["person.identifiers.pnc"]
    assert [item["errors"][0]["path"] for item in by_type["items"]] == ["person.sex"]
    assert other_source["items"] == []
    assert all("payload" not in item for item in everything["items"])


async def test_the_same_bad_record_sent_twice_is_counted_not_copied(
    client: httpx.AsyncClient, keys: dict[str, str], db: Database
) -> None:
    record = bad_pnc_record()
    await push(client, keys["source"], [record])
    await push(client, keys["source"], [copy.deepcopy(record)])

    rows = db.read(lambda s: s.scalars(select(RejectedRecord)).all())
    assert [row.occurrences for row in rows] == [2]


async def test_an_operator_replays_with_a_corrected_payload(
    client: httpx.AsyncClient, keys: dict[str, str], db: Database
) -> None:
    record = bad_pnc_record()
    await push(client, keys["source"], [record])
    operator = bearer(keys["operator"])
    [item] = (await client.get("/v1/quarantine", headers=operator)).json()["items"]
    detail = (await client.get(f"/v1/quarantine/{item['id']}", headers=operator)).json()
    assert detail["payload"] == record
    corrected = copy.deepcopy(detail["payload"])
    corrected["person"]["identifiers"]["pnc"] = "2002/0073319Z"

    replayed = await client.post(
        f"/v1/quarantine/{item['id']}/replay", json={"payload": corrected}, headers=operator
    )

    assert replayed.status_code == 200
    body = replayed.json()
    assert body["outcome"] == "created"
    assert body["record"]["status"] == "replayed"
    stored = db.read(lambda s: s.scalars(select(SourceRecord)).one())
    assert body["record"]["replayed_as"] == str(stored.id)
    assert stored.canonical["person"]["identifiers"]["pnc"] == "2002/0073319Z"
    again = await client.post(f"/v1/quarantine/{item['id']}/replay", headers=operator)
    assert again.status_code == 409
    assert (await client.get("/v1/quarantine", headers=operator)).json()["items"] == []
    replayed_list = await client.get(
        "/v1/quarantine", params={"status": "replayed"}, headers=operator
    )
    assert len(replayed_list.json()["items"]) == 1


async def test_a_replay_that_fails_again_keeps_the_record_and_says_why(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    await push(client, keys["source"], [bad_pnc_record()])
    operator = bearer(keys["operator"])
    [item] = (await client.get("/v1/quarantine", headers=operator)).json()["items"]

    response = await client.post(f"/v1/quarantine/{item['id']}/replay", headers=operator)

    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "person.identifiers.pnc"
    [still] = (await client.get("/v1/quarantine", headers=operator)).json()["items"]
    assert still["id"] == item["id"]


async def test_a_discarded_record_keeps_its_payload_and_reason(
    client: httpx.AsyncClient, keys: dict[str, str], db: Database
) -> None:
    await push(client, keys["source"], [bad_pnc_record()])
    operator = bearer(keys["operator"])
    [item] = (await client.get("/v1/quarantine", headers=operator)).json()["items"]

    discarded = await client.post(
        f"/v1/quarantine/{item['id']}/discard",
        json={"reason": "test record sent by the CRC by mistake"},
        headers=operator,
    )

    assert discarded.status_code == 200
    assert discarded.json()["status"] == "discarded"
    row = db.read(lambda s: s.get(RejectedRecord, item["id"]))
    assert row is not None
    assert row.payload is not None
    assert row.resolution_note == "test record sent by the CRC by mistake"
    assert (
        await client.post(
            f"/v1/quarantine/{item['id']}/discard", json={"reason": "x"}, headers=operator
        )
    ).status_code == 409
    actions = db.read(
        lambda s: s.scalars(
            select(AuditEntry.action).where(AuditEntry.resource == "quarantine")
        ).all()
    )
    assert set(actions) == {"consult", "alter"}


async def test_a_discard_needs_a_reason(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    await push(client, keys["source"], [bad_pnc_record()])
    operator = bearer(keys["operator"])
    [item] = (await client.get("/v1/quarantine", headers=operator)).json()["items"]

    response = await client.post(
        f"/v1/quarantine/{item['id']}/discard", json={"reason": ""}, headers=operator
    )

    assert response.status_code == 422


async def test_pages_follow_next_after(
    client: httpx.AsyncClient, keys: dict[str, str], db: Database
) -> None:
    await push(client, keys["source"], [bad_pnc_record() for _ in range(5)])
    operator = bearer(keys["operator"])

    first = (await client.get("/v1/quarantine", params={"limit": 3}, headers=operator)).json()
    second = (
        await client.get(
            "/v1/quarantine", params={"limit": 3, "after": first["next_after"]}, headers=operator
        )
    ).json()

    ids = [item["id"] for item in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 5
    assert second["next_after"] is None
    assert db.read(lambda s: s.scalar(select(func.count()).select_from(RejectedRecord))) == 5


async def test_the_list_filters_by_when_a_record_was_last_received(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    await push(client, keys["source"], [make_case_record(person={"sex": "SOMETIMES"})])
    operator = bearer(keys["operator"])
    [item] = (await client.get("/v1/quarantine", headers=operator)).json()["items"]
    received = item["last_received_at"]

    async def listed(**params: str) -> int:
        response = await client.get("/v1/quarantine", params=params, headers=operator)
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    # From: last received at or after; to: first received before (so a record sent again and
    # again is found by any window its receipts overlap).
    assert await listed(received_from=received) == 1
    assert await listed(received_from="2999-01-01T00:00:00Z") == 0
    assert await listed(received_to="2999-01-01T00:00:00Z") == 1
    assert await listed(received_to=received) == 0
    assert await listed(received_to="2000-01-01T00:00:00+01:00") == 0


@pytest.mark.parametrize(
    "moment",
    [
        "-1",
        "-1700000000",
        "1700000000",
        "yesterday",
        "01-02-2026",
        "2026-01-02",
        "2026-01-02T09:00",
    ],
)
async def test_a_moment_that_is_not_iso_8601_is_refused(
    client: httpx.AsyncClient, keys: dict[str, str], moment: str
) -> None:
    # A number would otherwise be read as a Unix time, negative ones included; a moment with
    # no zone is no moment at all.
    response = await client.get(
        "/v1/quarantine", params={"received_from": moment}, headers=bearer(keys["operator"])
    )
    assert response.status_code == 422
