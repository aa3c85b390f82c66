"""The delius_flat adapter on hostile and malformed files, and in constant memory.

Whatever arrives, parse never raises anything but PayloadRejected, never holds more than one
offender's rows, and accounts for every line: each lands in a record or in an error record whose
message names it.
"""

from __future__ import annotations

import io
import json
import re
import tracemalloc
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from adapters.base import PayloadRejected, RawRecord
from adapters.delius_flat import DeliusFlatAdapter, DeliusFlatConfig
from tests.adapters.test_delius_flat import (
    CSV,
    NO_REQUIREMENT,
    V2,
    adapter_with,
    csv_payload,
    paths,
    records_of,
    v2_row,
)

_LINES = re.compile(r"lines? (\d+)(?:-(\d+))?")


def offenders(count: int, *, start: int = 0) -> list[dict[str, str]]:
    """Rows of `count` offenders, two rows each."""
    rows = []
    for number in range(start, start + count):
        crn = f"X{number:06d}"
        rows.append(v2_row(CRN=crn, PNC_ID=""))
        rows.append(
            v2_row(
                CRN=crn,
                PNC_ID="",
                RQMNT_MAIN_CAT_CODE="F",
                RQMNT_LENGTH="20",
                RQMNT_LENGTH_UNITS="D",
            )
        )
    return rows


def lines_of(payload: bytes) -> list[bytes]:
    return payload.split(b"\r\n")


def assert_every_line_is_accounted_for(records: list[RawRecord], last_line: int) -> None:
    """Record positions run on from line 2 to `last_line` without a gap or an overlap."""
    expected_first = 2
    for raw in records:
        match = _LINES.fullmatch(raw.position or "")
        assert match is not None, raw.position
        first, last = int(match[1]), int(match[2] or match[1])
        assert first == expected_first, (raw.position, expected_first)
        expected_first = last + 1
        json.dumps(raw.data)  # storable as it is
        for error in raw.errors:
            assert _LINES.match(error["message"]) or error["path"], error
    assert expected_first == last_line + 1


def outcome(records: list[RawRecord]) -> list[tuple[str | None, bool]]:
    return [(raw.external_id, bool(raw.errors)) for raw in records]


class TestTruncated:
    def test_a_file_cut_mid_row(self) -> None:
        payload = csv_payload(offenders(3))
        cut = payload[: payload.rindex(b"Fictionworth")]
        records = records_of(cut)
        assert outcome(records) == [("X000000", False), ("X000001", False), ("X000002", True)]
        last = records[-1]
        assert last.position == "lines 6-7"
        assert last.errors[0]["path"] == ""
        assert last.errors[0]["message"].startswith("line 7: the row has ")
        assert len(last.data["rows"]) == 1  # the complete row is kept with the cut one
        assert last.data["unreadable"][0]["position"] == "line 7"
        assert_every_line_is_accounted_for(records, 7)

    def test_a_file_cut_inside_a_quoted_field(self) -> None:
        rows = offenders(2)
        rows[-1]["COURT_NAME"] = "Fictionville, Magistrates' Court"
        payload = csv_payload(rows)
        cut = payload[: payload.rindex(b"Fictionville, Mag")]
        records = records_of(cut)
        assert outcome(records) == [("X000000", False), ("X000001", True)]
        assert records[-1].errors[0]["message"] == (
            "line 5: the file ends inside a quoted field (a truncated row)"
        )
        assert_every_line_is_accounted_for(records, 5)

    def test_an_unclosed_quote_mid_file_swallows_lines_into_an_error_record(self) -> None:
        payload = csv_payload(offenders(3)).replace(b"X000001,,", b'X000001,"', 1)
        records = records_of(payload)
        assert records[0].external_id == "X000000"
        assert not records[0].errors
        assert all(raw.errors for raw in records[1:])
        assert_every_line_is_accounted_for(records, 7)

    def test_text_after_a_closing_quote_is_an_error(self) -> None:
        payload = csv_payload(offenders(2)).replace(b"X000001,,", b'X000001,"A"B,', 1)
        records = records_of(payload)
        assert outcome(records) == [("X000000", False), ("X000001", True)]
        assert "not valid CSV" in records[1].errors[0]["message"]

    def test_a_row_with_too_many_fields(self) -> None:
        payload = csv_payload(offenders(2)).replace(b"X000001,", b"X000001,,,", 1)
        records = records_of(payload)
        assert records[1].errors[0]["message"].startswith("line 4: the row has 60 fields")


class TestEncoding:
    def test_undecodable_bytes_quarantine_their_offender_only(self) -> None:
        payload = csv_payload(offenders(3))
        rows = lines_of(payload)
        rows[3] = rows[3].replace(b"Fictionworth", b"Fictionw\xf6rth")  # latin-1 in a UTF-8 file
        records = records_of(b"\r\n".join(rows))
        assert outcome(records) == [("X000000", False), ("X000001", True), ("X000002", False)]
        [error] = records[1].errors
        assert error == {
            "path": "FAMILY_NAME",
            "message": (
                "line 4: FAMILY_NAME holds bytes that are not valid utf-8, or a NUL character"
            ),
            "type": "undecodable",
        }
        assert "Fictionw\\xf6rth" in records[1].data["unreadable"][0]["text"]
        assert len(records[1].data["rows"]) == 1
        assert_every_line_is_accounted_for(records, 7)

    def test_a_windows_file_read_as_utf8_is_quarantined_not_failed(self) -> None:
        payload = (
            csv_payload(offenders(2, start=5)).decode().replace("Leeds", "Lée").encode("cp1252")
        )
        records = records_of(payload)
        assert [paths(raw) for raw in records] == [{"TOWN_CITY"}, {"TOWN_CITY"}]

    def test_a_nul_character_is_an_error_on_its_column(self) -> None:
        payload = csv_payload(offenders(1)).replace(b"Leeds", b"Le\x00ds", 1)
        [raw] = records_of(payload)
        assert paths(raw) == {"TOWN_CITY"}
        assert "Le\\x00ds" in raw.data["unreadable"][0]["text"]

    def test_an_undecodable_crn_joins_the_offender_in_progress(self) -> None:
        rows = lines_of(csv_payload(offenders(2)))
        rows[2] = rows[2].replace(b"X000000", b"X00\xff000")
        records = records_of(b"\r\n".join(rows))
        assert outcome(records) == [("X000000", True), ("X000001", False)]
        assert paths(records[0]) == {"CRN"}


class TestOversized:
    def test_a_10mb_field_in_a_line_over_the_row_limit(self) -> None:
        rows = lines_of(csv_payload(offenders(3)))
        rows[3] = rows[3].replace(b"Fictionworth", b"F" * 10_000_000)
        records = records_of(b"\r\n".join(rows))
        assert outcome(records) == [("X000000", False), ("X000001", True), ("X000002", False)]
        assert records[1].errors[0]["message"] == (
            "line 4: the row is longer than 4000000 characters"
        )
        preview = records[1].data["unreadable"][0]["text"]
        assert len(preview) < 1100
        assert preview.endswith("more characters]")
        assert_every_line_is_accounted_for(records, 7)

    def test_a_10mb_field_refused_by_the_csv_modules_own_limit(self) -> None:
        rows = lines_of(csv_payload(offenders(3)))
        rows[3] = rows[3].replace(b"Fictionworth", b"F" * 10_000_000)
        records = records_of(b"\r\n".join(rows), max_row_bytes=20_000_000)
        assert outcome(records) == [("X000000", False), ("X000001", True), ("X000002", False)]
        assert records[1].errors[0]["message"] == (
            "line 4: a field is larger than the limit of 1000000 characters"
        )

    def test_a_quoted_multiline_field_over_the_limit_then_recovers(self) -> None:
        rows = offenders(3)
        # 130,000 characters over 5,000 lines, in the last column of the offender's first row.
        rows[2]["LAST_UPDATED_DATETIME"] = "line of a long time stamp\n" * 4_999 + "end"
        records = records_of(csv_payload(rows), max_field_bytes=100_000)
        assert outcome(records)[0] == ("X000000", False)
        assert records[1].external_id == "X000001"
        assert records[1].errors[0]["message"] == (
            "lines 4-3850: a field is larger than the limit of 100000 characters"
        )
        # The rest of the field reads as rows of one field each, quarantined, until it ends.
        assert all(raw.errors for raw in records[1:-1])
        assert outcome(records)[-1] == ("X000002", False)
        assert_every_line_is_accounted_for(records, 5_006)

    def test_a_field_over_the_limit_in_bytes_but_not_in_characters(self) -> None:
        rows = offenders(2)
        rows[2]["FAMILY_NAME"] = "ë" * 60  # 120 bytes in UTF-8
        records = records_of(csv_payload(rows), max_field_bytes=100)
        assert outcome(records) == [("X000000", False), ("X000001", True)]
        assert records[1].errors[0] == {
            "path": "FAMILY_NAME",
            "message": "line 4: FAMILY_NAME is 120 bytes long; at most 100 are allowed",
            "type": "field_too_large",
        }

    def test_a_data_row_of_10000_fields(self) -> None:
        rows = lines_of(csv_payload(offenders(2)))
        rows[2] = b"X000000" + b"," * 9_999
        records = records_of(b"\r\n".join(rows))
        assert records[0].errors[0]["message"].startswith("line 3: the row has 10000 fields")
        assert not records[1].errors

    def test_an_endless_line_is_skipped_in_constant_memory(self) -> None:
        chunks = iter([csv_payload([])] + [b"x" * 65_536] * 500)  # 32 MB with no line break
        stream = io.BufferedReader(GeneratedStream(chunks))
        tracemalloc.start()
        try:
            records = list(adapter_with(max_row_bytes=1_000_000).parse(stream, CSV))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        [raw] = records
        assert raw.errors[0]["message"] == "line 2: the row is longer than 1000000 characters"
        assert peak < 8_000_000

    def test_an_offender_with_too_many_rows_is_split_and_quarantined(self) -> None:
        rows = offenders(1) * 20 + offenders(1, start=1)
        records = records_of(csv_payload(rows), max_record_bytes=3_000)
        assert all(raw.external_id == "X000000" for raw in records[:-1])
        assert len(records) >= 4
        assert all(raw.errors for raw in records[:-1])
        assert "exceed 3000 characters" in records[0].errors[-1]["message"]
        assert "continues an offender" in records[1].errors[0]["message"]
        assert records[-1].external_id == "X000001"
        assert not records[-1].errors
        assert_every_line_is_accounted_for(records, 43)

    def test_a_record_keeps_at_most_100_unreadable_rows_and_counts_the_rest(self) -> None:
        payload = csv_payload([]) + b"X000009,not enough fields\r\n" * 250
        [raw] = records_of(payload)
        assert len(raw.data["unreadable"]) == 100
        assert len(raw.errors) == 101
        assert raw.errors[-1]["message"] == (
            "lines 102-251: 150 more rows could not be read either; only the first 100 are kept"
        )
        assert_every_line_is_accounted_for([raw], 251)


class TestHeaderAttacks:
    def test_a_header_of_10000_columns(self) -> None:
        with pytest.raises(PayloadRejected) as caught:
            records_of(b",".join(b"COLUMN_%d" % n for n in range(10_000)) + b"\r\n")
        assert caught.value.message == "the header row has 10000 columns; at most 200 are allowed"

    def test_an_endless_header_line(self) -> None:
        with pytest.raises(PayloadRejected, match="header row is longer than 1000 characters"):
            records_of(b"CRN" * 10_000, max_row_bytes=1_000)

    def test_a_missing_required_column(self) -> None:
        header = [column for column in V2.header if column != "RQMNT_LENGTH"]
        with pytest.raises(PayloadRejected) as caught:
            records_of(csv_payload(offenders(1), header))
        assert caught.value.message == "the header lacks required export v2 columns: RQMNT_LENGTH"

    def test_an_empty_file(self) -> None:
        with pytest.raises(PayloadRejected) as caught:
            records_of(b"")
        assert caught.value.message == "no header row"


def test_a_mixed_hostile_file_loses_nothing_and_raises_nothing() -> None:
    rows = lines_of(csv_payload(offenders(8)))
    rows[3] = rows[3].replace(b"Leeds", b"L\xe9eds")  # undecodable
    rows[6] = rows[6][:50]  # short row
    rows[9] = rows[9].replace(b"X000004,", b'X000004,"', 1)  # unclosed quote...
    rows[10] = rows[10] + b'"'  # ...closed on the next line, with text after it
    rows[13] = b"X000006," + b"Z" * 300_000  # a long field
    records = records_of(b"\r\n".join(rows), max_field_bytes=100_000)
    assert_every_line_is_accounted_for(records, 17)
    clean = [raw.external_id for raw in records if not raw.errors]
    assert clean == ["X000000", "X000003", "X000005", "X000007"]


# -- streaming -----------------------------------------------------------------------------------


class GeneratedStream(io.RawIOBase):
    """A readable binary stream over generated chunks, never holding more than one chunk."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self.bytes_read = 0
        self.exhausted = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.exhausted = True
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.bytes_read += size
        return size


def generated_export(offender_count: int) -> Iterator[bytes]:
    """A v2 export of `offender_count` offenders (two rows each), made as it is read."""
    header, rows = csv_payload(offenders(1, start=999_999)).split(b"\r\n", 1)
    yield header + b"\r\n"
    for start in range(0, offender_count, 500):
        yield b"".join(
            rows.replace(b"X999999", b"X%06d" % number)
            for number in range(start, min(start + 500, offender_count))
        )


def test_parse_runs_in_constant_memory() -> None:
    stream = GeneratedStream(generated_export(5_000))
    adapter = DeliusFlatAdapter(DeliusFlatConfig())
    tracemalloc.start()
    try:
        count = rows = 0
        for raw in adapter.parse(io.BufferedReader(stream), CSV):
            assert not raw.errors
            count += 1
            rows += len(raw.data["rows"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (count, rows) == (5_000, 10_000)
    # The file is 2.4 MB and its rows as dicts several times that; one offender is ~5 kB.
    # (Measured: about 0.7 MB, the same for twice the rows; tracemalloc makes larger runs slow.)
    assert stream.bytes_read > 2_300_000
    assert peak < 1_500_000, peak


def test_parse_yields_the_first_record_before_reading_the_whole_stream() -> None:
    stream = GeneratedStream(generated_export(25_000))  # 50,000 rows, 12 MB
    buffered = io.BufferedReader(stream)
    records = adapter_with().parse(buffered, CSV)
    assert isinstance(records, Generator)
    first = next(records)
    assert first.external_id == "X000000"
    assert not stream.exhausted
    assert stream.bytes_read < 2_000_000
    records.close()
    assert not buffered.closed, "the caller's stream is left open"


def test_an_abandoned_parse_leaves_the_stream_open() -> None:
    stream = io.BytesIO(csv_payload(offenders(3)))
    records = adapter_with().parse(stream, CSV)
    next(records)
    del records
    assert not stream.closed
    assert stream.read(0) == b""


def test_blank_requirement_rows_stay_rows() -> None:
    rows = [v2_row(**NO_REQUIREMENT)]
    [raw] = records_of(csv_payload(rows))
    assert raw.data["rows"][0]["RQMNT_MAIN_CAT_CODE"] == ""


@pytest.mark.parametrize("slack", [-1, 0, 1, 2])
def test_a_row_at_the_length_limit_keeps_the_line_count(slack: int) -> None:
    # A limit that cuts between the \r and \n of a CRLF must not invent a line.
    payload = csv_payload([v2_row(FAMILY_NAME="F" * 900), v2_row(CRN="K482730", PNC_ID="")])
    row = payload.split(b"\r\n")[1]
    first, second = records_of(payload, max_row_bytes=len(row) + slack)
    assert (first.position, second.position) == ("line 2", "line 3")
    assert bool(first.errors) is (slack < 2)  # the limit counts the line break too
    assert not second.errors


def test_a_multibyte_encoding_that_cannot_be_decoded_is_refused() -> None:
    payload = csv_payload([v2_row()]).decode().encode("utf-16")
    assert len(records_of(payload, encoding="utf-16")) == 1
    with pytest.raises(PayloadRejected, match="cannot be decoded as utf-16"):
        records_of(payload[:-1], encoding="utf-16")
