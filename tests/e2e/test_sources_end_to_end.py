"""Every built-in adapter end to end: samples through the API and the CLI, good and bad records
accounted for one by one, and hostile payloads answered with a 4xx or per-record errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.db import Database
from gateway.main import create_app
from gateway.models import RejectedRecord, SourceRecord
from gateway.services.clients import Role
from gateway.settings import Settings, SourceSettings, get_settings
from schemas import CaseRecord
from tests.builders import make_case_record, random_pnc
from tests.conftest import KeyMaker, bearer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "adapters" / "mapping" / "examples"
SOURCES = {
    "crc-delius": {"adapter": "delius_flat"},
    "crc-xml": {"adapter": "xml_case_export"},
    "crc-rest": {"adapter": "rest_json"},
    "crc-merlin": {"adapter": "mapping", "config": {"file": str(EXAMPLES / "merlin.yaml")}},
    "crc-kestrel": {"adapter": "mapping", "config": {"file": str(EXAMPLES / "kestrel.yaml")}},
    "crc-heron": {"adapter": "mapping", "config": {"file": str(EXAMPLES / "heron.yaml")}},
}
SAMPLES = [
    ("crc-delius", "adapters/delius_flat/samples/export-v1.csv", "text/csv"),
    ("crc-delius", "adapters/delius_flat/samples/export-v2.csv", "text/csv"),
    ("crc-xml", "adapters/xml_case_export/samples/case-export-v2.xml", "application/xml"),
    ("crc-xml", "adapters/xml_case_export/samples/case-export-prefixed-latin1.xml", "text/xml"),
    ("crc-merlin", "adapters/mapping/examples/merlin-sample.json", "application/json"),
    ("crc-kestrel", "adapters/mapping/examples/kestrel-sample.csv", "text/csv"),
    ("crc-heron", "adapters/mapping/examples/heron-sample.xml", "application/xml"),
]

pytestmark = pytest.mark.anyio


@pytest.fixture
def configured(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"sources": {n: SourceSettings.model_validate(s) for n, s in SOURCES.items()}}
    )


@pytest.fixture
async def http(configured: Settings, db: Database) -> Any:
    transport = httpx.ASGITransport(app=create_app(configured, db=db))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


def stored(db: Database) -> int:
    return int(db.read(lambda s: s.scalar(select(func.count()).select_from(SourceRecord))))


def quarantined(db: Database) -> int:
    total = db.read(lambda s: s.scalar(select(func.sum(RejectedRecord.occurrences))))
    return int(total or 0)


async def upload(
    http: httpx.AsyncClient, key: str, source: str, payload: bytes, content_type: str
) -> httpx.Response:
    return await http.post(
        f"/v1/sources/{source}/records",
        content=payload,
        headers={**bearer(key), "Content-Type": content_type},
    )


def summary_of(response: httpx.Response) -> dict[str, int]:
    summary: dict[str, int] = response.json()["summary"]
    return summary


@pytest.mark.parametrize(("source", "sample", "content_type"), SAMPLES)
async def test_every_sample_imports_through_the_api(
    http: httpx.AsyncClient,
    make_key: KeyMaker,
    db: Database,
    source: str,
    sample: str,
    content_type: str,
) -> None:
    key = make_key(Role.SOURCE, source=source)
    payload = (ROOT / sample).read_bytes()

    first = await upload(http, key, source, payload, content_type)
    again = await upload(http, key, source, payload, content_type)

    assert first.status_code == 200, first.text
    summary = summary_of(first)
    assert summary["rejected"] == 0, first.json()
    assert summary["created"] + summary["updated"] == summary["received"] > 0
    assert stored(db) == summary["created"]
    assert summary_of(again)["unchanged"] == summary["received"]


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database) -> Iterator[None]:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_SOURCES", json.dumps(SOURCES))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize(("source", "sample", "content_type"), SAMPLES)
def test_every_sample_imports_through_the_cli(
    db: Database, source: str, sample: str, content_type: str
) -> None:
    result = CliRunner().invoke(
        cli, ["import", str(ROOT / sample), "--source", source, "--content-type", content_type]
    )

    assert result.exit_code == 0, result.output
    assert " 0 rejected" in result.output
    assert stored(db) > 0


def write_canonical_lines(records: list[CaseRecord], stream: io.BytesIO) -> None:
    for record in records:
        stream.write(record.model_dump_json().encode() + b"\n")


WRITTEN_FORMATS = [
    ("crc-delius", "adapters.delius_flat.writer", "text/csv"),
    ("crc-xml", "adapters.xml_case_export.writer", "application/xml"),
    ("crc-rest", "adapters.rest_json.writer", "application/vnd.crc-rest-json+jsonl"),
    ("crc-north", None, "application/x-ndjson"),
]


@pytest.mark.parametrize(("source", "writer", "content_type"), WRITTEN_FORMATS)
async def test_good_and_bad_records_are_each_stored_or_quarantined(
    http: httpx.AsyncClient,
    make_key: KeyMaker,
    db: Database,
    source: str,
    writer: str | None,
    content_type: str,
) -> None:
    pncs = [random_pnc() for _ in range(8)]
    records = [
        CaseRecord.model_validate(make_case_record(person={"identifiers": {"pnc": pnc}}))
        for pnc in pncs
    ]
    buffer = io.BytesIO()
    if writer is None:
        write_canonical_lines(records, buffer)
    else:
        __import__(writer, fromlist=["write_records"]).write_records(records, buffer)
    payload = buffer.getvalue()
    # Break two records' PNC check letters in the source's own bytes (on every row that
    # repeats the person).
    for pnc in pncs[2:4]:
        wrong = "A" if pnc[-1] != "A" else "B"
        assert payload.count(pnc.encode()) >= 1
        payload = payload.replace(pnc.encode(), (pnc[:-1] + wrong).encode())

    response = await upload(
        http, make_key(Role.SOURCE, source=source), source, payload, content_type
    )

    assert response.status_code == 200, response.text
    summary = summary_of(response)
    if source != "crc-rest":
        # These adapters hand over the canonical document: a bad PNC is dropped and flagged.
        assert (summary["received"], summary["created"], summary["rejected"]) == (8, 8, 0)
        report = await http.get(
            f"/v1/sources/{source}/data-quality", headers=bearer(make_key(Role.OPERATOR))
        )
        assert report.json()["counts"] == [
            {"path": "person.identifiers.pnc", "rule": "invalid", "records": 2}
        ]
        return
    assert (summary["received"], summary["created"], summary["rejected"]) == (8, 6, 2)
    assert stored(db) == 6
    assert quarantined(db) == 2
    rejected_ids = {item["external_id"] for item in response.json()["rejected"]}
    expected = {records[2].provenance.external_id, records[3].provenance.external_id}
    if source == "crc-delius":  # the export identifies an offender by CRN
        expected = {r.person.identifiers.crn for r in records[2:4]}
    assert rejected_ids == expected
    for item in response.json()["rejected"]:
        assert any("PNC" in e["path"].upper() for e in item["errors"]), item


async def test_a_mapped_source_accounts_for_its_rejects(
    http: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    key = make_key(Role.SOURCE, source="crc-merlin")
    good = (EXAMPLES / "merlin-sample.json").read_bytes()
    bad = (EXAMPLES / "merlin-rejects.json").read_bytes()

    accepted = summary_of(await upload(http, key, "crc-merlin", good, "application/json"))
    refused = summary_of(await upload(http, key, "crc-merlin", bad, "application/json"))

    assert accepted["rejected"] == 0
    # Two of the five fail only on an identity field (a bad PNC, a 31 February): kept with a
    # warning each.
    assert (refused["received"], refused["rejected"], refused["created"]) == (5, 3, 2)
    assert stored(db) == accepted["created"] + refused["created"]
    assert quarantined(db) == refused["rejected"]


def billion_laughs() -> bytes:
    """Ten entities each expanding to ten of the previous: 10^9 'lol's if ever expanded."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    doctype = f"<!DOCTYPE lolz [{''.join(entities)}]>"
    return f'<?xml version="1.0"?>{doctype}<CaseExport>&lol9;</CaseExport>'.encode()


def delius_header() -> bytes:
    return (ROOT / "adapters/delius_flat/samples/export-v2.csv").read_bytes().splitlines()[0]


HOSTILE = {
    "truncated CSV": (
        "crc-delius",
        "text/csv",
        lambda: (ROOT / "adapters/delius_flat/samples/export-v2.csv").read_bytes()[:-37],
    ),
    "CSV in the wrong encoding": (
        "crc-delius",
        "text/csv",
        lambda: (
            (ROOT / "adapters/delius_flat/samples/export-v2.csv")
            .read_text("utf-8-sig")
            .encode("utf-16")
        ),
    ),
    "CSV with 10,000 columns": (
        "crc-delius",
        "text/csv",
        lambda: (",".join(f"C{i}" for i in range(10_000)) + "\n" + "x," * 9_999 + "x\n").encode(),
    ),
    "CSV with a 10 MB field": (
        "crc-delius",
        "text/csv",
        lambda: delius_header() + b"\r\n" + b'X320741,"' + b"A" * (10 * 1024 * 1024) + b'"\r\n',
    ),
    "XML entity expansion": ("crc-xml", "application/xml", billion_laughs),
    "XML external entity": (
        "crc-xml",
        "application/xml",
        lambda: (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<CaseExport>&e;</CaseExport>"
        ),
    ),
    "XML with a 10 MB field": (
        "crc-xml",
        "application/xml",
        lambda: (
            (ROOT / "adapters/xml_case_export/samples/case-export-v2.xml")
            .read_bytes()
            .replace(b"</Case>", b"<!--" + b"A" * (10 * 1024 * 1024) + b"--></Case>", 1)
        ),
    ),
    "deeply nested JSON lines": (
        "crc-north",
        "application/x-ndjson",
        lambda: b"[" * 100_000 + b"]" * 100_000 + b"\n",
    ),
    "deeply nested JSON batch": (
        "crc-north",
        "application/json",
        lambda: b'{"records": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
    ),
    "deeply nested mapped JSON": (
        "crc-merlin",
        "application/vnd.merlin.export+json",
        lambda: b'{"data": {"cases": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}}",
    ),
    "truncated mapped JSON": (
        "crc-merlin",
        "application/vnd.merlin.export+json",
        lambda: (EXAMPLES / "merlin-sample.json").read_bytes()[:-200],
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_payloads_get_a_4xx_or_per_record_errors_never_a_5xx(
    http: httpx.AsyncClient, make_key: KeyMaker, db: Database, case: str
) -> None:
    source, content_type, build = HOSTILE[case]

    response = await upload(
        http, make_key(Role.SOURCE, source=source), source, build(), content_type
    )

    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        return
    # Accepted: every record is accounted for, and what was refused is in the quarantine.
    summary = summary_of(response)
    assert summary["received"] == sum(
        summary[k] for k in ("created", "updated", "unchanged", "rejected")
    )
    assert summary["rejected"] > 0, f"{case} was accepted whole"
    assert quarantined(db) == summary["rejected"]
