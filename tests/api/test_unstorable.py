"""A value the database cannot store is that one record's problem: it is quarantined, whole,
and every other record of its batch or file is stored."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from gateway.cli import app as cli_app
from gateway.db import Database
from gateway.models import RejectedRecord, SourceRecord
from gateway.services.clients import Role
from tests.builders import make_case_record
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio
RECORDS = "/v1/sources/crc-north/records"


def _requirement(record: dict[str, Any]) -> dict[str, Any]:
    requirement: dict[str, Any] = record["case"]["events"][0]["requirements"][0]
    return requirement


# (how the value is put in a record, the field path the rejection names)
UNSTORABLE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "lone surrogate": (
        lambda r: r["person"].update(surname="Fictionworth\ud800"),
        "person.surname",
    ),
    "NUL": (lambda r: r["person"].update(surname="Fiction\x00worth"), "person.surname"),
    "2^63": (
        lambda r: _requirement(r).update(amount=2**63),
        "case.events[0].requirements[0].amount",
    ),
    "-2^63-1": (
        lambda r: _requirement(r).update(amount=-(2**63) - 1),
        "case.events[0].requirements[0].amount",
    ),
    "4,300 digits": (
        lambda r: _requirement(r).update(amount=10**4299),
        "case.events[0].requirements[0].amount",
    ),
    "NaN": (
        lambda r: _requirement(r).update(amount=math.nan),
        "case.events[0].requirements[0].amount",
    ),
    "surrogate in the external id": (
        lambda r: r["provenance"].update(external_id="ext-\udc00"),
        "provenance.external_id",
    ),
    "NUL in a field name": (
        lambda r: r["person"].update({"sur\x00name": "x"}),
        "person.sur\\x00name",
    ),
}


def with_unstorable(kind: str) -> dict[str, Any]:
    record = make_case_record()
    UNSTORABLE[kind][0](record)
    return record


def as_json(document: Any) -> str:
    """What a source could send: escapes for surrogates and NUL, NaN as Python writes it."""
    return json.dumps(document, ensure_ascii=True, allow_nan=True)


@pytest.fixture
def keys(make_key: KeyMaker) -> dict[str, str]:
    return {
        "source": make_key(Role.SOURCE, source="crc-north"),
        "operator": make_key(Role.OPERATOR),
    }


@pytest.mark.parametrize("kind", list(UNSTORABLE))
async def test_an_unstorable_value_rejects_its_record_and_the_rest_are_stored(
    client: httpx.AsyncClient, keys: dict[str, str], kind: str
) -> None:
    records = [make_case_record(), with_unstorable(kind), make_case_record()]

    response = await client.post(
        RECORDS,
        content=as_json({"records": records}),
        headers={**bearer(keys["source"]), "content-type": "application/json"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"] == {
        "received": 3,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
    }
    [error] = body["results"][1]["errors"]
    assert error["type"] == "unstorable_value"
    assert error["path"] == UNSTORABLE[kind][1]
    assert error["message"]

    operator = bearer(keys["operator"])
    [item] = (await client.get("/v1/quarantine", headers=operator)).json()["items"]
    detail = (await client.get(f"/v1/quarantine/{item['id']}", headers=operator)).json()
    # Kept whole as it was sent: as escaped JSON text, since no JSON column takes it.
    assert detail["payload"] is None
    assert as_json(json.loads(detail["payload_text"])) == as_json(records[1])


async def test_an_unstorable_record_replays_into_a_rejection_and_its_correction_is_stored(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    bad = with_unstorable("NUL")
    await client.post(
        RECORDS,
        content=as_json({"records": [bad]}),
        headers={**bearer(keys["source"]), "content-type": "application/json"},
    )
    operator = bearer(keys["operator"])
    [item] = (await client.get("/v1/quarantine", headers=operator)).json()["items"]

    again = await client.post(f"/v1/quarantine/{item['id']}/replay", headers=operator)
    bad["person"]["surname"] = "Fictionworth"
    corrected = await client.post(
        f"/v1/quarantine/{item['id']}/replay", json={"payload": bad}, headers=operator
    )

    assert again.status_code == 422, again.text
    assert again.json()["errors"][0]["type"] == "unstorable_value"
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["outcome"] == "created"


def ndjson_with_one_unstorable(path: Path, *, records: int, bad_line: int, kind: str) -> Path:
    with path.open("w", encoding="ascii") as file:
        for line in range(1, records + 1):
            record = with_unstorable(kind) if line == bad_line else make_case_record()
            file.write(as_json(record) + "\n")
    return path


def stored_and_quarantined(db: Database) -> tuple[int, list[RejectedRecord]]:
    return db.read(
        lambda session: (
            session.scalar(select(func.count()).select_from(SourceRecord)) or 0,
            list(session.scalars(select(RejectedRecord))),
        )
    )


@pytest.mark.slow
async def test_an_uploaded_file_stores_every_record_but_the_unstorable_one(
    client: httpx.AsyncClient, keys: dict[str, str], db: Database, tmp_path: Path
) -> None:
    file = ndjson_with_one_unstorable(
        tmp_path / "north.ndjson", records=3000, bad_line=1501, kind="2^63"
    )

    response = await client.post(
        RECORDS,
        content=file.read_bytes(),
        headers={**bearer(keys["source"]), "content-type": "application/x-ndjson"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["summary"]["created"] == 2999
    assert body["summary"]["rejected"] == 1
    stored, [rejected] = stored_and_quarantined(db)
    assert stored == 2999
    assert rejected.position == "line 1501"
    assert rejected.errors[0]["path"] == "case.events[0].requirements[0].amount"


@pytest.mark.slow
def test_an_imported_file_stores_every_record_but_the_unstorable_one(
    cli_database: Database, tmp_path: Path
) -> None:
    file = ndjson_with_one_unstorable(
        tmp_path / "north.ndjson", records=3000, bad_line=1501, kind="lone surrogate"
    )

    result = CliRunner().invoke(cli_app, ["import", str(file), "--source", "crc-north"])

    assert result.exit_code == 0, result.output
    assert "3000 records, 2999 created" in result.output
    stored, [rejected] = stored_and_quarantined(cli_database)
    assert stored == 2999
    assert rejected.position == "line 1501"
    assert rejected.payload_text is not None
    assert "Fictionworth\\ud800" in rejected.payload_text
