"""An XML case export through the gateway's chunked import, against a real database."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.xml_case_export import XmlCaseExportAdapter, write_records
from adapters.xml_case_export.format import CONTACT_NAMESPACE, EXPORT_NAMESPACE
from gateway.db import Database
from gateway.errors import MalformedBody
from gateway.models import Import, RejectedRecord, SourceRecord
from gateway.services import imports
from schemas import CaseRecord
from tests.builders import make_case_record

SAMPLE = Path(__file__).parents[2] / "adapters" / "xml_case_export" / "samples"
ADAPTER = XmlCaseExportAdapter()


def run(db: Database, payload: bytes) -> imports.ImportSummary:
    stream = io.BytesIO(payload)
    digest, size = imports.sha256_of(stream)
    return imports.run_import(
        db,
        source="crc-c16",
        adapter=ADAPTER,
        stream=stream,
        content_type="application/xml",
        filename="export.xml",
        file_sha256=digest,
        file_size=size,
        principal=None,
        chunk_records=2,
    )


def test_the_sample_export_is_stored_and_sending_it_again_changes_nothing(db: Database) -> None:
    payload = (SAMPLE / "case-export-v2.xml").read_bytes()

    first = run(db, payload)
    assert (first.status, first.records, first.created, first.rejected) == ("completed", 5, 5, 0)

    again = run(db, payload.replace(b"02:00:04Z", b"02:00:05Z"))  # a later export, same cases
    assert (again.records, again.unchanged, again.created) == (5, 5, 0)
    external_ids = db.read(lambda s: set(s.scalars(select(SourceRecord.external_id)).all()))
    assert external_ids == {f"CW-00000{n}" for n in range(17, 22)}


def test_rejected_cases_are_quarantined_with_source_paths_and_a_broken_tail_fails_the_import(
    db: Database,
) -> None:
    good = [CaseRecord.model_validate(make_case_record()) for _ in range(3)]
    buffer = io.BytesIO()
    write_records(good, buffer)
    text = buffer.getvalue().decode()
    bad_case = (
        '<Case id="CW-BAD"><Person><Name>DOE, Jo</Name></Person><Events><Event number="1">'
        "<Sentence><Type>Weekend Detention</Type></Sentence></Event></Events></Case>"
    )
    text = text.replace("</CaseExport>", f"{bad_case}\n<Case id='CW-CUT'><Person>")
    assert f'xmlns="{EXPORT_NAMESPACE}" xmlns:ct="{CONTACT_NAMESPACE}"' in text

    with pytest.raises(MalformedBody, match="cut short") as caught:
        run(db, text.encode())

    assert "after 4 records, which are stored" in caught.value.args[0]
    row = db.read(lambda s: s.scalars(select(Import)).one())
    assert row.status == "failed"
    assert db.read(lambda s: len(s.scalars(select(SourceRecord.id)).all())) == 3
    quarantined = db.read(lambda s: s.scalars(select(RejectedRecord)).one())
    assert quarantined.external_id == "CW-BAD"
    line = text[: text.index('<Case id="CW-BAD"')].count("\n") + 1
    assert quarantined.position == f"case 4 (line {line})"
    assert [error["path"] for error in quarantined.errors] == ["Events/Event[1]/Sentence/Type"]
    assert quarantined.payload["xml"].startswith("<Case ")
