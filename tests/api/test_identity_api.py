"""Review, explain, person sources, manual link and split over HTTP, with auth and audit."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.models import AuditEntry
from gateway.services.clients import Role
from tests.api.conftest import assert_problem
from tests.builders import make_case_record, random_pnc
from tests.conftest import KeyMaker, bearer


async def push(client: httpx.AsyncClient, key: str, source: str, *records: Any) -> list[Any]:
    response = await client.post(
        f"/v1/sources/{source}/records", json={"records": list(records)}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    results: list[Any] = response.json()["results"]
    return results


def conflicting_copy(record: dict[str, Any]) -> dict[str, Any]:
    other = copy.deepcopy(record)
    other["provenance"]["external_id"] = f"ext-{uuid.uuid4().hex[:12]}"
    other["person"]["identifiers"] = {"pnc": random_pnc()}
    return other


@pytest.mark.anyio
async def test_a_possible_match_is_reviewed_and_linked_over_http(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    north, south = (
        make_key(Role.SOURCE, source="crc-north"),
        make_key(Role.SOURCE, source="crc-south"),
    )
    operator = bearer(make_key(Role.OPERATOR))
    original = make_case_record()
    [first] = await push(client, north, "crc-north", original)
    [second] = await push(client, south, "crc-south", conflicting_copy(original))
    assert second["person_id"] != first["person_id"]

    identity = (await client.get("/v1/status", headers=operator)).json()["identity"]
    assert identity["review_pending"] == 1
    assert identity["oldest_pending_at"] is not None
    assert identity["model_version"] == "default-2"

    queue = await client.get("/v1/review", headers=operator)
    assert queue.status_code == 200, queue.text
    [item] = queue.json()["items"]
    assert item["candidate"]["person_id"] == first["person_id"]
    assert item["record"]["external_id"] == second["external_id"]
    assert item["decision"]["status"] == "pending"
    assert item["decision"]["explanation"]["best"]["guards"] == ["identifier_conflict:pnc"]

    explained = await client.get(f"/v1/match-decisions/{item['decision']['id']}", headers=operator)
    assert explained.status_code == 200
    assert explained.json()["model_version"]

    settled = await client.post(
        f"/v1/review/{item['decision']['id']}",
        json={"decision": "link", "note": "same person: the PNC was mistyped"},
        headers=operator,
    )
    assert settled.status_code == 200, settled.text
    assert settled.json()["kind"] == "human"
    again = await client.post(
        f"/v1/review/{item['decision']['id']}", json={"decision": "link"}, headers=operator
    )
    assert_problem(again, 409)
    assert (await client.get("/v1/review", headers=operator)).json()["items"] == []
    settled_status = (await client.get("/v1/status", headers=operator)).json()["identity"]
    assert settled_status["review_pending"] == 0

    central = bearer(make_key(Role.CENTRAL))
    moved = await client.get(f"/v1/persons/{second['person_id']}", headers=central)
    assert moved.status_code == 308
    assert moved.headers["location"] == f"/v1/persons/{first['person_id']}"
    moved_sources = await client.get(f"/v1/persons/{second['person_id']}/sources", headers=central)
    assert moved_sources.status_code == 308
    assert moved_sources.headers["location"] == f"/v1/persons/{first['person_id']}/sources"
    sources = await client.get(f"/v1/persons/{first['person_id']}/sources", headers=central)
    assert sources.status_code == 200
    listed = {(r["source"], r["pinned"]) for r in sources.json()["items"]}
    # The reviewer saw both records together: the link pins the person's record too.
    assert listed == {("crc-north", True), ("crc-south", True)}

    audited = db.read(
        lambda s: s.scalars(select(AuditEntry).where(AuditEntry.resource == "match-review")).all()
    )
    assert {entry.action for entry in audited} == {"consult", "alter"}


@pytest.mark.anyio
async def test_split_and_link_over_http(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    north = make_key(Role.SOURCE, source="crc-north")
    operator = bearer(make_key(Role.OPERATOR))
    original = make_case_record()
    elsewhere = copy.deepcopy(original)
    elsewhere["provenance"]["external_id"] = f"ext-{uuid.uuid4().hex[:12]}"
    elsewhere["person"]["identifiers"] = {}
    first, second = await push(client, north, "crc-north", original, elsewhere)
    assert first["person_id"] == second["person_id"]
    person = first["person_id"]
    listed = await client.get(f"/v1/persons/{person}/sources", headers=operator)
    ids = {item["external_id"]: item["id"] for item in listed.json()["items"]}
    first["source_record_id"] = ids[first["external_id"]]
    second["source_record_id"] = ids[second["external_id"]]

    refused = await client.post(
        f"/v1/persons/{person}/split",
        json={"source_record_ids": [first["source_record_id"], second["source_record_id"]]},
        headers=operator,
    )
    assert_problem(refused, 422)
    stranger = await client.post(
        f"/v1/persons/{person}/split",
        json={"source_record_ids": [str(uuid.uuid4())]},
        headers=operator,
    )
    assert_problem(stranger, 422)

    split = await client.post(
        f"/v1/persons/{person}/split",
        json={"source_record_ids": [second["source_record_id"]], "note": "different people"},
        headers=operator,
    )
    assert split.status_code == 200, split.text
    new_person = split.json()["person_id"]
    assert new_person != person

    relinked = await client.post(
        f"/v1/persons/{person}/links",
        json={"source_record_id": second["source_record_id"]},
        headers=operator,
    )
    assert relinked.status_code == 200, relinked.text
    assert relinked.json()["method"] == "manual_link"
    gone = await client.get(f"/v1/persons/{new_person}", headers=bearer(make_key(Role.CENTRAL)))
    assert gone.status_code == 308
    assert gone.headers["location"] == f"/v1/persons/{person}"


@pytest.mark.anyio
async def test_explain_scores_two_persons_field_by_field(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    operator = bearer(make_key(Role.OPERATOR))
    person = make_case_record()["person"]
    typo = {**person, "surname": person["surname"][:-1] + "x", "identifiers": {}}

    same = await client.post(
        "/v1/match/explain", json={"left": person, "right": typo}, headers=operator
    )
    different = await client.post(
        "/v1/match/explain",
        json={"left": person, "right": make_case_record()["person"]},
        headers=operator,
    )

    assert same.status_code == 200, same.text
    body = same.json()
    assert body["band"] == "link"
    assert body["model_version"]
    levels = {c["field"]: c["level"] for c in body["comparisons"]}
    assert levels["date_of_birth"] == "exact"
    assert levels["surname"] != "exact"
    total = body["prior_weight"] + sum(c["weight"] for c in body["comparisons"])
    assert abs(total - body["match_weight"]) < 0.01
    assert different.json()["match_weight"] < body["match_weight"]
    bad = await client.post(
        "/v1/match/explain", json={"left": person, "right": {"surname": 7}}, headers=operator
    )
    assert_problem(bad, 422)


@pytest.mark.anyio
async def test_the_review_queue_pages_oldest_first(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    north, south = (
        make_key(Role.SOURCE, source="crc-north"),
        make_key(Role.SOURCE, source="crc-south"),
    )
    operator = bearer(make_key(Role.OPERATOR))
    originals = [make_case_record(), make_case_record()]
    await push(client, north, "crc-north", *originals)
    pushed = []
    for original in originals:  # one push each, so the second is strictly newer
        [result] = await push(client, south, "crc-south", conflicting_copy(original))
        pushed.append(result["external_id"])

    first = await client.get("/v1/review", params={"limit": 1}, headers=operator)
    second = await client.get(
        "/v1/review", params={"limit": 1, "after": first.json()["next"]}, headers=operator
    )
    last = await client.get(
        "/v1/review", params={"limit": 1, "after": second.json()["next"]}, headers=operator
    )

    seen = [page.json()["items"][0]["record"]["external_id"] for page in (first, second)]
    assert seen == pushed
    assert last.json() == {"items": [], "next": None}
    bad = await client.get("/v1/review", params={"after": "not-a-cursor"}, headers=operator)
    assert_problem(bad, 422)
