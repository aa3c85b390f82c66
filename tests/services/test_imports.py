"""Chunked imports: an interrupted import resumes after its last committed chunk."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.base import PayloadRejected
from adapters.canonical import NDJSON, CanonicalAdapter
from gateway.db import Database
from gateway.errors import MalformedBody
from gateway.models import Change, Import, RejectedRecord, SourceRecord
from gateway.services import imports
from tests.builders import make_case_record

ADAPTER = CanonicalAdapter(CanonicalAdapter.config_model())


class Interrupted(Exception):
    pass


def payload(records: list[Any]) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in records))


def run(
    db: Database, stream: io.BytesIO, *, stop_after_chunks: int | None = None
) -> imports.ImportSummary:
    digest, size = imports.sha256_of(stream)
    chunks = 0

    def progress(_bytes: int, _summary: imports.ImportSummary) -> None:
        nonlocal chunks
        chunks += 1
        if stop_after_chunks is not None and chunks >= stop_after_chunks:
            raise Interrupted

    return imports.run_import(
        db,
        source="crc-north",
        adapter=ADAPTER,
        stream=stream,
        content_type=NDJSON,
        filename="north.ndjson",
        file_sha256=digest,
        file_size=size,
        principal=None,
        chunk_records=3,
        on_progress=progress,
    )


def test_an_interrupted_import_resumes_with_nothing_twice(db: Database) -> None:
    records = [make_case_record() for _ in range(8)]
    records[1] = {"provenance": {"external_id": "broken"}}  # rejected: no person
    data = payload(records).getvalue()

    with pytest.raises(Interrupted):
        run(db, io.BytesIO(data), stop_after_chunks=2)
    halfway = db.read(lambda s: s.scalars(select(Import)).one())
    assert (halfway.status, halfway.records_done) == ("interrupted", 6)

    summary = run(db, io.BytesIO(data))

    assert summary.resumed_from == 6
    assert summary.status == "completed"
    assert (summary.records, summary.created, summary.rejected) == (8, 7, 1)
    assert db.read(lambda s: len(s.scalars(select(SourceRecord.id)).all())) == 7
    person_created = db.read(
        lambda s: s.scalars(select(Change.seq).where(Change.type == "person.created")).all()
    )
    assert len(person_created) == 7
    assert db.read(lambda s: s.scalars(select(RejectedRecord.occurrences)).all()) == [1]
    assert db.read(lambda s: len(s.scalars(select(Import.id)).all())) == 1


def test_a_file_unreadable_halfway_keeps_what_came_before(db: Database) -> None:
    adapter_payload = io.BytesIO(b'{"records": [')

    with pytest.raises(MalformedBody):
        imports.run_import(
            db,
            source="crc-north",
            adapter=ADAPTER,
            stream=adapter_payload,
            content_type="application/json",
            filename=None,
            file_sha256="0" * 64,
            file_size=13,
            principal=None,
            chunk_records=3,
        )

    row = db.read(lambda s: s.scalars(select(Import)).one())
    assert row.status == "failed"
    assert row.failure


def test_progress_reports_bytes_read_as_the_stream_is_consumed(db: Database) -> None:
    # Several 64 KiB blocks: the stream is read a block at a time.
    stream = payload([make_case_record() for _ in range(150)])
    size = len(stream.getvalue())
    assert size > 3 * 64 * 1024
    seen: list[int] = []
    digest, _ = imports.sha256_of(stream)

    imports.run_import(
        db,
        source="crc-north",
        adapter=ADAPTER,
        stream=stream,
        content_type=NDJSON,
        filename=None,
        file_sha256=digest,
        file_size=size,
        principal=None,
        chunk_records=25,
        on_progress=lambda read, _summary: seen.append(read),
    )

    assert seen == sorted(seen)
    assert 0 < seen[0] < size
    assert seen[-1] == size


def test_an_adapter_refusing_the_payload_at_once_fails_the_import_cleanly(db: Database) -> None:
    class RefusesAtOnce(CanonicalAdapter):
        def parse(self, stream, content_type):  # type: ignore[no-untyped-def]
            raise PayloadRejected("no header row")

    with pytest.raises(MalformedBody, match="no header row"):
        imports.run_import(
            db,
            source="crc-north",
            adapter=RefusesAtOnce(CanonicalAdapter.config_model()),
            stream=io.BytesIO(b""),
            content_type=NDJSON,
            filename=None,
            file_sha256="1" * 64,
            file_size=0,
            principal=None,
            chunk_records=3,
        )

    assert db.read(lambda s: s.scalars(select(Import.status)).one()) == "failed"


def test_a_file_of_delimiter_only_rows_costs_no_chunk_and_no_quarantine_row(
    db: Database, tmp_path: Path
) -> None:
    from tests.adapters.test_mapping_payloads import csv_mapping

    adapter = csv_mapping(tmp_path)
    data = b"ID,SURNAME\n" + b",\n" * 5000 + b"\n" * 5000 + b"C-1,ONE\n"
    stream = io.BytesIO(data)
    digest, size = imports.sha256_of(stream)
    chunks: list[int] = []

    summary = imports.run_import(
        db,
        source="crc-north",
        adapter=adapter,
        stream=stream,
        content_type="text/csv",
        filename=None,
        file_sha256=digest,
        file_size=size,
        principal=None,
        chunk_records=100,
        on_batch=lambda batch: chunks.append(len(batch.results)),
    )

    # One transaction for the one real record, not one per hundred empty rows.
    assert chunks == [1]
    assert (summary.records, summary.rejected) == (1, 0)
    assert db.read(lambda s: s.scalars(select(RejectedRecord.id)).all()) == []
