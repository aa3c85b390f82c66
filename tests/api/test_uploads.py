"""Files in a source's own format: streamed, imported in chunks, every record accounted for."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.main import create_app
from gateway.models import Change, RejectedRecord
from gateway.services.clients import Role
from gateway.settings import LimitSettings, Settings
from tests.builders import make_case_record
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio
NDJSON = "application/x-ndjson"


def ndjson(records: list[Any]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


async def test_an_ndjson_upload_accounts_for_every_line(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    good = [make_case_record() for _ in range(3)]
    bad = make_case_record(person={"sex": "SOMETIMES"})  # a bad CRN alone is only flagged
    payload = ndjson(good[:2]) + b"{not json\n" + ndjson([bad]) + b"\xff\xfe\n" + ndjson(good[2:])

    response = await client.post(
        "/v1/sources/crc-north/records",
        content=payload,
        headers={**bearer(make_key(Role.SOURCE, source="crc-north")), "Content-Type": NDJSON},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["summary"] == {
        "received": 6,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 3,
    }
    assert [item["index"] for item in body["rejected"]] == [2, 3, 4]
    positions = db.read(
        lambda s: s.scalars(select(RejectedRecord.position).order_by(RejectedRecord.id)).all()
    )
    assert list(positions) == ["line 3", "line 4", "line 5"]
    progress = await client.get(
        f"/v1/imports/{body['import_id']}", headers=bearer(make_key(Role.OPERATOR))
    )
    assert progress.json()["summary"]["received"] == 6


async def test_an_import_is_visible_to_its_own_source_only(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    own = bearer(make_key(Role.SOURCE, source="crc-north"))
    response = await client.post(
        "/v1/sources/crc-north/records",
        content=ndjson([make_case_record()]),
        headers={**own, "Content-Type": NDJSON},
    )
    import_id = response.json()["import_id"]

    mine = await client.get(f"/v1/imports/{import_id}", headers=own)
    theirs = await client.get(
        f"/v1/imports/{import_id}", headers=bearer(make_key(Role.SOURCE, source="crc-south"))
    )
    central = await client.get(f"/v1/imports/{import_id}", headers=bearer(make_key(Role.CENTRAL)))

    assert (mine.status_code, theirs.status_code, central.status_code) == (200, 403, 403)


async def test_a_content_type_the_source_cannot_read_is_415(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    response = await client.post(
        "/v1/sources/crc-north/records",
        content=b"CRN,SURNAME\nX320741,Notarealname\n",
        headers={**bearer(make_key(Role.SOURCE, source="crc-north")), "Content-Type": "text/csv"},
    )

    assert response.status_code == 415
    assert "application/x-ndjson" in response.json()["detail"]


async def test_uploads_have_their_own_larger_limit(
    settings: Settings, db: Database, make_key: KeyMaker
) -> None:
    limited = settings.model_copy(
        update={"limits": LimitSettings(max_body_bytes=2048, max_upload_bytes=1_000_000)}
    )
    app = create_app(limited, db=db)
    key = bearer(make_key(Role.SOURCE, source="crc-north"))
    records = [make_case_record() for _ in range(4)]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        as_upload = await http.post(
            "/v1/sources/crc-north/records",
            content=ndjson(records),
            headers={**key, "Content-Type": NDJSON},
        )
        as_batch = await http.post(
            "/v1/sources/crc-north/records", json={"records": records}, headers=key
        )

    assert as_upload.status_code == 200
    assert as_batch.status_code == 413


async def test_a_reuploaded_file_changes_nothing(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    key = {**bearer(make_key(Role.SOURCE, source="crc-north")), "Content-Type": NDJSON}
    payload = ndjson([make_case_record() for _ in range(3)] + [{"not": "a record"}])
    await client.post("/v1/sources/crc-north/records", content=payload, headers=key)
    changes_before = db.read(lambda s: len(s.scalars(select(Change.seq)).all()))

    again = (
        await client.post("/v1/sources/crc-north/records", content=payload, headers=key)
    ).json()

    assert again["summary"]["unchanged"] == 3
    assert db.read(lambda s: len(s.scalars(select(Change.seq)).all())) == changes_before
    occurrences = db.read(lambda s: s.scalars(select(RejectedRecord.occurrences)).all())
    assert list(occurrences) == [2]
