"""Every collection, alteration and consultation of personal data, and every change of client,
leaves an audit entry naming who, which persons and which request; entries are never changed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.db import Database
from gateway.models import AuditEntry
from gateway.models.audit import AuditLogIsAppendOnly
from gateway.repositories import audit as audit_repo
from gateway.services import clients
from gateway.services.clients import Role
from tests.builders import OMIT, make_case_record
from tests.conftest import KeyMaker, bearer

SOURCE = "crc-north"
RECORDS = f"/v1/sources/{SOURCE}/records"


class Caller:
    """A client of the gateway: its key's headers and its client id."""

    def __init__(self, db: Database, key: str) -> None:
        principal = db.read(lambda session: clients.authenticate(session, key))
        assert principal is not None
        self.client_id = principal.client_id
        self.headers = bearer(key)


@pytest.fixture
def source(db: Database, make_key: KeyMaker) -> Caller:
    return Caller(db, make_key(Role.SOURCE, source=SOURCE))


@pytest.fixture
def central(db: Database, make_key: KeyMaker) -> Caller:
    return Caller(db, make_key(Role.CENTRAL))


@pytest.fixture
def admin(db: Database, make_key: KeyMaker) -> Caller:
    return Caller(db, make_key(Role.ADMIN))


def entries(db: Database, caller: Caller | None = None) -> Sequence[AuditEntry]:
    if caller is not None:
        return db.read(lambda session: audit_repo.list_for_client(session, caller.client_id))
    return db.read(
        lambda session: session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    )


def count_entries(db: Database) -> int:
    return db.read(
        lambda session: session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    )


async def push(client: httpx.AsyncClient, caller: Caller, *records: Any) -> httpx.Response:
    response = await client.post(RECORDS, json={"records": list(records)}, headers=caller.headers)
    assert response.status_code == 200, response.text
    return response


def person_ids(response: httpx.Response) -> list[str]:
    return [result["person_id"] for result in response.json()["results"]]


def assert_holds_no_personal_data(entry: AuditEntry, *records: dict[str, Any]) -> None:
    detail = json.dumps(entry.detail)
    for record in records:
        person = record["person"]
        for value in (person["surname"], person["date_of_birth"], *person["identifiers"].values()):
            assert value not in detail


@pytest.mark.anyio
async def test_pushing_records_collects_new_persons_and_alters_known_ones(
    client: httpx.AsyncClient, db: Database, source: Caller
) -> None:
    first, second = make_case_record(), make_case_record()
    created = await push(client, source, first, second)
    [collect] = entries(db, source)
    assert collect.action == "collect"
    assert collect.resource == "source-records"
    assert collect.client_id == source.client_id
    assert collect.person_ids == sorted(person_ids(created))
    assert collect.request_id == created.headers["x-request-id"]
    assert collect.detail["source"] == SOURCE
    assert collect.detail["created"] == 2
    assert_holds_no_personal_data(collect, first, second)

    # One record changes, one is sent again unchanged, one is new, one is new to the source but
    # shares its CRN with a person already held (so it alters that person).
    changed = {**first, "person": {**first["person"], "surname": "Renamedworth"}}
    third = make_case_record()
    same_crn = make_case_record(
        person={
            "date_of_birth": second["person"]["date_of_birth"],
            "identifiers": {
                "crn": second["person"]["identifiers"]["crn"],
                "pnc": OMIT,
                "noms": OMIT,
            },
        }
    )
    mixed = await push(client, source, changed, second, third, same_crn)
    outcomes = [result["outcome"] for result in mixed.json()["results"]]
    assert outcomes == ["updated", "unchanged", "created", "created"]
    first_id, second_id, third_id, same_crn_id = person_ids(mixed)
    assert same_crn_id == second_id

    later = [entry for entry in entries(db, source) if entry.id > collect.id]
    by_action = {entry.action: entry for entry in later}
    assert sorted(by_action) == ["alter", "collect"]
    assert by_action["collect"].person_ids == [third_id]
    assert by_action["alter"].person_ids == sorted([first_id, second_id])
    for entry in later:
        assert entry.client_id == source.client_id
        assert entry.request_id == mixed.headers["x-request-id"]

    # Sending everything again changes nothing, so nothing is audited.
    before = count_entries(db)
    again = await push(client, source, changed, second, third, same_crn)
    assert {result["outcome"] for result in again.json()["results"]} == {"unchanged"}
    assert count_entries(db) == before


@pytest.mark.anyio
async def test_reading_persons_and_the_feed_is_audited_as_consultation(
    client: httpx.AsyncClient, db: Database, source: Caller, central: Caller
) -> None:
    first, second = make_case_record(), make_case_record()
    first_id, second_id = person_ids(await push(client, source, first, second))

    feed = await client.get("/v1/changes", headers=central.headers)
    assert feed.status_code == 200
    [consult_feed] = entries(db, central)
    assert consult_feed.action == "consult"
    assert consult_feed.resource == "changes"
    assert consult_feed.person_ids == sorted([first_id, second_id])
    assert consult_feed.request_id == feed.headers["x-request-id"]
    assert consult_feed.detail == {"changes": len(feed.json()["changes"])}

    # Reading on from the head returns nothing and consults nobody.
    at_head = await client.get(
        "/v1/changes", params={"after": feed.json()["next_cursor"]}, headers=central.headers
    )
    assert at_head.json()["changes"] == []
    assert len(entries(db, central)) == 1

    one = await client.get(f"/v1/persons/{first_id}", headers=central.headers)
    assert one.status_code == 200
    consult_one = entries(db, central)[-1]
    assert (consult_one.action, consult_one.resource) == ("consult", "persons")
    assert consult_one.person_ids == [first_id]
    assert consult_one.request_id == one.headers["x-request-id"]

    for kind in ("crn", "pnc", "noms"):
        value = second["person"]["identifiers"][kind]
        found = await client.get("/v1/persons", params={kind: value}, headers=central.headers)
        assert [item["id"] for item in found.json()["items"]] == [second_id]
        lookup = entries(db, central)[-1]
        assert (lookup.action, lookup.resource) == ("consult", "persons")
        assert lookup.person_ids == [second_id]
        assert lookup.detail == {"lookup": [kind], "found": 1}
        assert lookup.request_id == found.headers["x-request-id"]
        assert_holds_no_personal_data(lookup, first, second)

    # A lookup that finds nobody is still a consultation (someone asked about that identifier).
    nobody = make_case_record()["person"]["identifiers"]["crn"]
    await client.get("/v1/persons", params={"crn": nobody}, headers=central.headers)
    miss = entries(db, central)[-1]
    assert (miss.person_ids, miss.detail) == ([], {"lookup": ["crn"], "found": 0})

    # Nothing was read, so nothing is recorded: an unknown id, a refused caller.
    before = count_entries(db)
    assert (
        await client.get(f"/v1/persons/{uuid.uuid4()}", headers=central.headers)
    ).status_code == 404
    assert (await client.get("/v1/changes", headers=source.headers)).status_code == 403
    assert (await client.get(f"/v1/persons/{first_id}", headers=source.headers)).status_code == 403
    assert count_entries(db) == before


@pytest.mark.anyio
async def test_creating_and_revoking_clients_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Caller
) -> None:
    created = await client.post(
        "/v1/clients",
        json={"name": "south case system", "role": "source", "source": "crc-south"},
        headers=admin.headers,
    )
    assert created.status_code == 201
    new_id = created.json()["id"]
    [create] = entries(db, admin)
    assert (create.action, create.resource) == ("administer", "clients")
    assert create.detail == {"created_client": new_id, "role": "source"}
    assert create.person_ids == []
    assert create.request_id == created.headers["x-request-id"]
    # The key is shown once, to the caller; never kept in the audit log.
    assert created.json()["key"] not in json.dumps(create.detail)

    revoked = await client.delete(f"/v1/clients/{new_id}", headers=admin.headers)
    assert revoked.status_code == 204
    revoke = entries(db, admin)[-1]
    assert (revoke.action, revoke.resource) == ("administer", "clients")
    assert revoke.detail == {"revoked_client": new_id}
    assert revoke.client_id == admin.client_id

    # A revocation that did nothing leaves no entry.
    before = count_entries(db)
    missing = await client.delete(f"/v1/clients/{uuid.uuid4()}", headers=admin.headers)
    assert missing.status_code == 404
    assert count_entries(db) == before


@pytest.mark.anyio
async def test_audit_entries_cannot_be_updated_or_deleted_through_the_orm(
    client: httpx.AsyncClient, db: Database, source: Caller
) -> None:
    await push(client, source, make_case_record())
    [original] = entries(db)

    def rewrite(session: Any) -> None:
        entry = session.get(AuditEntry, original.id)
        entry.person_ids = []
        session.flush()

    def erase(session: Any) -> None:
        session.delete(session.get(AuditEntry, original.id))
        session.flush()

    with pytest.raises(AuditLogIsAppendOnly):
        db.write(rewrite)
    with pytest.raises(AuditLogIsAppendOnly):
        db.write(erase)

    [after] = entries(db)
    assert (after.id, after.person_ids, after.action) == (
        original.id,
        original.person_ids,
        original.action,
    )
