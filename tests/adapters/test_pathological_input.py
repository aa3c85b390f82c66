"""Pathological text input costs bounded work: blank lines and empty rows are stepped over in bulk.

Work is counted, not timed: the Python function calls a parse makes. A file of N blank lines
must not cost a call (or a csv row, or a record) per line, so the count stays far below N.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from adapters.base import RawRecord
from adapters.canonical import MAX_LINE_BYTES, NDJSON, CanonicalAdapter
from adapters.rest_json import PAGES_JSONL, RestJsonAdapter, RestJsonConfig
from adapters.rest_json.adapter import MAX_PAGE_LINE_BYTES
from gateway.services.imports import CountingReader
from tests.adapters.test_delius_flat import CSV, adapter_with, csv_payload, v2_row
from tests.adapters.test_mapping import mapping_adapter, parse
from tests.adapters.test_mapping_payloads import csv_mapping, grouped

LINES = 100_000


def python_calls(work: Callable[[], Any]) -> tuple[int, Any]:
    """How many Python function calls (and generator resumptions) `work` makes, and its result."""
    calls = 0

    def count(_frame: FrameType, event: str, _arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        result = work()
    finally:
        sys.setprofile(None)
    return calls, result


@pytest.mark.parametrize("blank", ["\n", "\r\n", "\r", "  \t\r\n"])
def test_delius_flat_steps_over_blank_lines_in_bulk(blank: str) -> None:
    header, row = csv_payload([v2_row(CRN="X000001")]).split(b"\r\n", 1)
    payload = header + b"\r\n" + blank.encode() * LINES + row
    adapter = adapter_with()

    calls, records = python_calls(lambda: list(adapter.parse(io.BytesIO(payload), CSV)))

    assert [(r.external_id, r.position, r.errors) for r in records] == [
        ("X000001", f"line {LINES + 2}", ())
    ]
    assert calls < LINES / 10


def test_delius_flat_counts_blank_lines_split_across_blocks() -> None:
    # "\r\n" pairs straddling every block boundary are still one line each.
    header, row = csv_payload([v2_row(CRN="X000001")]).split(b"\r\n", 1)
    for lead in range(4):
        payload = header + b"\r\n" + b"\n" * lead + b"\r\n" * LINES + row
        records: list[RawRecord] = list(adapter_with().parse(io.BytesIO(payload), CSV))
        assert records[0].position == f"line {LINES + lead + 2}"


@pytest.mark.parametrize("blank", [b"\n", b"\r\n", b" \t\n"])
def test_canonical_ndjson_steps_over_blank_lines_in_bulk(blank: bytes) -> None:
    payload = blank * LINES + b'{"provenance": {"external_id": "E-1"}}\n'
    adapter = CanonicalAdapter(CanonicalAdapter.config_model())

    stream = CountingReader(io.BytesIO(payload))  # as the gateway hands it over

    calls, records = python_calls(lambda: list(adapter.parse(stream, NDJSON)))  # type: ignore[arg-type]

    assert [(r.external_id, r.position) for r in records] == [("E-1", f"line {LINES + 1}")]
    assert calls < LINES / 10


def test_an_over_long_ndjson_line_is_refused_keeping_only_its_start() -> None:
    giant = b'{"provenance": {"external_id": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}}\n'
    payload = giant + b'{"provenance": {"external_id": "E-2"}}\n'
    adapter = CanonicalAdapter(CanonicalAdapter.config_model())

    records = list(adapter.parse(io.BytesIO(payload), NDJSON))

    assert [(r.position, bool(r.errors)) for r in records] == [("line 1", True), ("line 2", False)]
    assert len(records[0].data["line"]) <= 64 * 1024
    assert "longer than 8 MiB" in records[0].errors[0]["message"]


def test_an_over_long_line_of_rest_json_pages_is_refused_without_being_held() -> None:
    giant = b'{"items": [], "nextCursor": "' + b"x" * (MAX_PAGE_LINE_BYTES + 10) + b'"}\n'
    payload = b"\n" + giant + b'{"items": [], "nextCursor": null}\n'
    adapter = RestJsonAdapter(RestJsonConfig())

    records = list(adapter.parse(io.BytesIO(payload), PAGES_JSONL))

    assert [(r.position, bool(r.errors)) for r in records] == [("line 2", True)]
    assert len(records[0].data["line"]) <= 64 * 1024
    assert "longer than 64 MiB" in records[0].errors[0]["message"]


def test_mapping_json_lines_step_over_blank_lines_in_bulk(tmp_path: Path) -> None:
    adapter = mapping_adapter(
        tmp_path,
        """\
        name: t
        version: "1"
        format: json
        json: {lines: true}
        external_id: id
        fields: {person.surname: surname}
        """,
    )
    payload = b"\n" * LINES + b'{"id": "1", "surname": "A"}\n'

    stream = CountingReader(io.BytesIO(payload))  # as the gateway hands it over

    calls, records = python_calls(
        lambda: list(adapter.parse(stream, "application/x-ndjson"))  # type: ignore[arg-type]
    )

    assert [(r.external_id, r.position) for r in records] == [("1", f"line {LINES + 1}")]
    assert calls < LINES / 10


@pytest.mark.parametrize("blank", [b"\n", b"\r\n", b",\n", b" , \r\n"])
def test_mapping_csv_steps_over_blank_and_delimiter_only_rows(tmp_path: Path, blank: bytes) -> None:
    payload = b"ID,SURNAME\n" + blank * LINES + b'C-1,"TWO\n\nLINES"\n'
    adapter = csv_mapping(tmp_path)

    stream = CountingReader(io.BytesIO(payload))  # as the gateway hands it over

    calls, records = python_calls(lambda: list(adapter.parse(stream, "text/csv")))  # type: ignore[arg-type]

    # The blank lines inside the quoted value are part of it, not stepped over.
    assert [(r.external_id, r.position, r.errors) for r in records] == [
        ("C-1", f"lines {LINES + 2}-{LINES + 4}", ())
    ]
    assert records[0].data["SURNAME"] == "TWO\n\nLINES"
    if blank.strip(b"\r\n") == b"":
        assert calls < LINES / 10


def test_delimiter_only_rows_in_a_grouped_mapping_make_no_records(tmp_path: Path) -> None:
    payload = b"ID|SURNAME|ORDER|REQ\n" + b"|||\n" * 1000 + b"C-1|ONE|1|UPW\n" + b"|||\n" * 1000

    records = parse(grouped(tmp_path), payload)

    assert [(r.external_id, r.position, r.errors) for r in records] == [("C-1", "line 1002", ())]


def test_a_folded_record_describes_a_bounded_number_of_broken_rows(tmp_path: Path) -> None:
    payload = b"ID|SURNAME|ORDER|REQ\n" + b"C-1|ONE|1|UPW\n" + b"|ONE|1|UPW\n" * 5000

    records = parse(grouped(tmp_path), payload)

    assert len(records) == 1
    messages = [error["message"] for error in records[0].errors]
    assert len(messages) <= 102
    assert "4900 more rows could not be read either" in messages
