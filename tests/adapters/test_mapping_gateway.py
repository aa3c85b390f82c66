"""A source onboarded by a mapping file, through the gateway: push, quarantine, fix, replay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from adapters import registry
from adapters.canonical import CanonicalAdapter
from adapters.mapping import MappingAdapter
from gateway.db import Database
from gateway.main import create_app
from gateway.models import SourceRecord
from gateway.services.clients import Role
from gateway.settings import Settings, SourceSettings
from tests.adapters.test_mapping import EXAMPLES
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio
RECORDS = "/v1/sources/crc-merlin/records"
SAMPLE = (EXAMPLES / "merlin-sample.json").read_bytes()
REJECTS = (EXAMPLES / "merlin-rejects.json").read_bytes()
#: The record in REJECTS whose date of birth is 31 February.
DATE_RECORD = "MRL-100902"


def fix_the_mapping(path: Path) -> None:
    """Merlin's XHIGH is very high risk: map it, and bump the mapping's version."""
    text = path.read_text(encoding="utf-8")
    text = text.replace('version: "3"', 'version: "4"').replace(
        "VHIGH: VERY_HIGH}", "VHIGH: VERY_HIGH, XHIGH: VERY_HIGH}"
    )
    path.write_text(text, encoding="utf-8")


def merlin_app(database_url: str, db: Database, mapping: Path) -> FastAPI:
    settings = Settings(
        database_url=database_url,
        log_format="text",
        sources={"crc-merlin": SourceSettings(adapter="mapping", config={"file": str(mapping)})},
    )
    return create_app(settings, db=db)


@pytest.fixture
def mapping_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(
        registry, "discover", lambda: {"canonical": CanonicalAdapter, "mapping": MappingAdapter}
    )
    path = tmp_path / "merlin.yaml"
    path.write_text((EXAMPLES / "merlin.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture
async def merlin(
    database_url: str, db: Database, mapping_file: Path
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=merlin_app(database_url, db, mapping_file))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http


async def test_a_merlin_export_is_pushed_and_its_rejects_quarantined_with_the_mapping_version(
    merlin: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    source = {**bearer(make_key(Role.SOURCE, source="crc-merlin"))}
    operator = bearer(make_key(Role.OPERATOR))

    pushed = await merlin.post(
        RECORDS,
        content=SAMPLE,
        headers={**source, "Content-Type": "application/json"},
    )
    rejected = await merlin.post(
        RECORDS,
        content=REJECTS,
        headers={**source, "Content-Type": "application/json"},
    )

    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["summary"]["created"] == 10
    # A bad PNC check letter and a 31 February (which fails in the mapping's own date transform,
    # before the canonical schema) are identity fields: each record is kept and flagged.
    assert rejected.json()["summary"]["rejected"] == 3
    kept = {r["external_id"]: r["warnings"] for r in rejected.json()["results"] if r["warnings"]}
    assert {key: [w["path"] for w in value] for key, value in kept.items()} == {
        "MRL-100903": ["person.identifiers.pnc"],
        DATE_RECORD: ["person.date_of_birth"],
    }
    [date_warning] = kept[DATE_RECORD]
    assert date_warning["rule"] == "invalid"
    assert date_warning["value"] == "31/02/1985"
    assert date_warning["message"].startswith("not a date in the format")
    versions = db.read(lambda s: set(s.scalars(select(SourceRecord.adapter_version)).all()))
    assert versions == {"1+merlin-3"}
    items = (await merlin.get("/v1/quarantine", headers=operator)).json()["items"]
    assert {item["adapter_version"] for item in items} == {"1+merlin-3"}
    assert len(items) == 3


async def test_a_whole_export_streams_in_as_an_upload(
    merlin: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    response = await merlin.post(
        RECORDS,
        content=SAMPLE,
        headers={
            **bearer(make_key(Role.SOURCE, source="crc-merlin")),
            "Content-Type": "application/vnd.merlin.export+json",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert response.json()["summary"]["created"] == 10


async def test_an_unreadable_export_is_a_client_error(
    merlin: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    response = await merlin.post(
        RECORDS,
        content=b'{"data": {"cases": [{"caseRef": ',
        headers={
            **bearer(make_key(Role.SOURCE, source="crc-merlin")),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_after_a_mapping_fix_a_quarantined_record_replays_under_the_new_version(
    merlin: httpx.AsyncClient,
    make_key: KeyMaker,
    db: Database,
    database_url: str,
    mapping_file: Path,
) -> None:
    source = bearer(make_key(Role.SOURCE, source="crc-merlin"))
    operator = bearer(make_key(Role.OPERATOR))
    await merlin.post(
        RECORDS,
        content=REJECTS,
        headers={**source, "Content-Type": "application/json"},
    )
    items = (
        await merlin.get("/v1/quarantine", params={"error_type": "unknown_code"}, headers=operator)
    ).json()["items"]
    [xhigh] = items
    assert xhigh["errors"][0]["path"] == "case.registrations.0.rosh_level <- risk"

    fix_the_mapping(mapping_file)  # then restart: a new app reads the mapping again
    transport = httpx.ASGITransport(app=merlin_app(database_url, db, mapping_file))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as fixed:
        replayed = await fixed.post(f"/v1/quarantine/{xhigh['id']}/replay", headers=operator)

    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["outcome"] == "created"
    stored = db.read(
        lambda s: s.scalars(
            select(SourceRecord).where(SourceRecord.external_id == "MRL-100901")
        ).one()
    )
    assert (stored.external_id, stored.adapter_version) == ("MRL-100901", "1+merlin-4")
