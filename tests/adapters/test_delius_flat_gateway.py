"""A Delius flat export pushed through the gateway: stored, quarantined and accounted for.

The adapter is installed here by hand; in a deployment its entry point makes it discoverable.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from adapters import registry
from adapters.delius_flat import DeliusFlatAdapter
from gateway.db import Database
from gateway.main import create_app
from gateway.models import RejectedRecord
from gateway.services.clients import Role
from gateway.settings import Settings, SourceSettings
from tests.adapters.test_delius_flat import SAMPLES, csv_payload, v2_row
from tests.conftest import KeyMaker, bearer

pytestmark = pytest.mark.anyio
SOURCE = "crc-delius"


async def test_an_export_with_bad_rows_is_stored_and_quarantined_row_by_row(
    settings: Settings, db: Database, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = {**registry.discover(), "delius_flat": DeliusFlatAdapter}
    monkeypatch.setattr(registry, "discover", lambda: installed)
    configured = settings.model_copy(
        update={"sources": {SOURCE: SourceSettings(adapter="delius_flat")}}
    )
    app = create_app(configured, db=db)
    good = (SAMPLES / "export-v2.csv").read_bytes()
    bad = csv_payload(
        [
            v2_row(CRN="K000001", PNC_ID="", FAMILY_NAME="Fictionwoerth"),
            v2_row(CRN="K000002", PNC_ID="", RQMNT_LENGTH="90"),
        ]
    ).split(b"\r\n", 1)[1]
    payload = good + bad.replace(b"Fictionwoerth", b"Fictionw\xf6rth")  # latin-1 in UTF-8
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        response = await http.post(
            f"/v1/sources/{SOURCE}/records",
            content=payload,
            headers={
                **bearer(make_key(Role.SOURCE, source=SOURCE)),
                "Content-Type": "text/csv",
            },
        )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"]["received"] == 8
    assert body["summary"]["created"] == 6
    assert body["summary"]["rejected"] == 2
    rejected = db.read(
        lambda s: [
            (r.external_id, r.position, [e["path"] for e in r.errors])
            for r in s.scalars(select(RejectedRecord).order_by(RejectedRecord.id))
        ]
    )
    assert rejected == [
        ("K000001", "line 14", ["FAMILY_NAME"]),
        ("K000002", "line 15", ["rows[0].RQMNT_LENGTH"]),
    ]
