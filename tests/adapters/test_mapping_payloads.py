"""Payloads through a mapping: streamed in bounded memory; hostile input refused, never a crash."""

from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import PayloadRejected, RawRecord, RecordRejected
from adapters.mapping import MappingAdapter, MappingConfig, readers
from adapters.mapping.jsonstream import JsonStreamError, scan_records
from adapters.testing import outcomes
from tests.adapters.test_mapping import EXAMPLES, mapping_adapter, parse


class Trickle(io.RawIOBase):
    """A stream that hands out at most `size` bytes per read, and counts what was read."""

    def __init__(self, payload: bytes, size: int = 1) -> None:
        self._payload = payload
        self._size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        step = self._size if size < 0 else min(size, self._size)
        chunk = self._payload[self.position : self.position + step]
        self.position += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        end = self._payload.find(b"\n", self.position)
        end = len(self._payload) if end < 0 else end + 1
        if size >= 0:
            end = min(end, self.position + size)
        line = self._payload[self.position : end]
        self.position = end
        return line


def json_mapping(tmp_path: Path, records: str = "$.data.cases[*]") -> MappingAdapter:
    return mapping_adapter(
        tmp_path,
        f"""\
        name: t
        version: "1"
        format: json
        json: {{records: "{records}"}}
        external_id: id
        fields:
          person.surname: surname
        """,
    )


def csv_mapping(tmp_path: Path, csv_options: str = "", fields: str = "") -> MappingAdapter:
    head = textwrap.dedent(
        f"""\
        name: t
        version: "1"
        format: csv
        csv: {{{csv_options}}}
        external_id: ID
        fields:
          person.surname: SURNAME
        """
    )
    return mapping_adapter(tmp_path, head + textwrap.indent(textwrap.dedent(fields), "  "))


# -- JSON documents ------------------------------------------------------------------------


def test_records_are_taken_from_the_path_and_everything_else_is_stepped_over(
    tmp_path: Path,
) -> None:
    adapter = json_mapping(tmp_path)
    document = {
        "meta": {"note": 'brackets ] } [ { and "quotes" \\ in strings', "n": [1, [2, {"x": []}]]},
        "data": {
            "before": None,
            "cases": [{"id": "A-1", "surname": "ONE"}, {"id": "A-2", "surname": "T]WO"}],
            "after": True,
        },
        "cases": [{"id": "NOT-ME", "surname": "X"}],
    }
    records = parse(adapter, json.dumps(document).encode())
    assert [(raw.external_id, raw.position) for raw in records] == [
        ("A-1", "$.data.cases[0]"),
        ("A-2", "$.data.cases[1]"),
    ]
    assert records[1].data == {"id": "A-2", "surname": "T]WO"}


@pytest.mark.parametrize(
    ("path", "document", "expected"),
    [
        ("$[*]", [{"id": "1"}, {"id": "2"}], ["$[0]", "$[1]"]),
        ("$.cases[*]", {"cases": []}, []),
        (
            "$.batches[*].cases[*]",
            {"batches": [{"cases": [{"id": "1"}]}, {"cases": [{"id": "2"}, {"id": "3"}]}]},
            ["$.batches[0].cases[0]", "$.batches[1].cases[0]", "$.batches[1].cases[1]"],
        ),
    ],
)
def test_record_paths(tmp_path: Path, path: str, document: Any, expected: list[str]) -> None:
    adapter = json_mapping(tmp_path, path)
    assert [raw.position for raw in parse(adapter, json.dumps(document).encode())] == expected


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "expected an object at $"),
        (b'{"data": {"cases": [{"id": "1"}', "unexpected end"),
        (b'{"data": {"other": []}}', "no list of records at $.data.cases"),
        (b'{"data": [1, 2]}', "expected an object at $.data"),
        (b'{"data": {"cases": {"id": "1"}}}', "expected a list at $.data.cases"),
        (b'{"data": {"cases": []}} trailing', "unexpected data after the end"),
        (b'{"data": {"cases": []}}\xff', "not valid UTF-8"),
        (b'\xef\xbb\xbf{"data": {"cases": [1 2]}}', "expected ',' or ']'"),
    ],
)
def test_an_unreadable_document_is_refused(tmp_path: Path, payload: bytes, message: str) -> None:
    with pytest.raises(PayloadRejected, match=re.escape(message)):
        parse(json_mapping(tmp_path), payload)


def test_a_bad_record_is_its_own_error_and_the_rest_carry_on(tmp_path: Path) -> None:
    payload = b'{"data": {"cases": [{"id": "1"}, {"id": tru}, [1], {"id": "3"}]}}'
    records = parse(json_mapping(tmp_path), payload)
    assert [bool(raw.errors) for raw in records] == [False, True, True, False]
    assert records[1].errors[0]["message"].startswith("not valid JSON")
    assert records[1].data == {"text": '{"id": tru}'}
    assert records[2].errors[0]["message"] == "a record is a JSON object"


def test_deep_nesting_is_refused_per_record_without_recursing(tmp_path: Path) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    payload = (
        '{"skipped": '
        + deep
        + ', "data": {"cases": [{"id": "1", "x": '
        + deep
        + '}, {"id": "2"}]}}'
    ).encode()
    records = parse(json_mapping(tmp_path), payload)
    assert [bool(raw.errors) for raw in records] == [True, False]
    assert "nested deeper than 32" in records[0].errors[0]["message"]


def test_a_record_over_the_size_limit_is_refused_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 1000)
    big = {"id": "1", "surname": "X" * 5000}
    payload = json.dumps({"data": {"cases": [big, {"id": "2", "surname": "Y"}]}}).encode()
    records = parse(json_mapping(tmp_path), payload)
    assert [bool(raw.errors) for raw in records] == [True, False]
    assert "larger than" in records[0].errors[0]["message"]
    assert records[0].data == {"text": "", "truncated": True}


def test_the_document_is_read_as_it_streams(tmp_path: Path) -> None:
    cases = [{"id": str(n), "surname": "EXAMPLE", "padding": "." * 200} for n in range(20_000)]
    payload = json.dumps({"data": {"cases": cases}}).encode()
    stream = Trickle(payload, size=64 * 1024)
    records = json_mapping(tmp_path).parse(stream, "application/json")  # type: ignore[arg-type]
    first = next(records)
    assert first.external_id == "0"
    assert stream.position < 200 * 1024 < len(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=4),
    noise=json_values,
    chunk=st.integers(min_value=1, max_value=7),
)
def test_scanning_finds_exactly_what_json_loads_finds(
    records: list[dict[str, Any]], noise: Any, chunk: int
) -> None:
    document = {"noise": noise, "data": {"cases": records, "more": noise}, "end": noise}
    payload = json.dumps(document, ensure_ascii=False).encode()
    found = list(scan_records(Trickle(payload, chunk), ("data", "cases", None), limit=10**6))  # type: ignore[arg-type]
    assert [json.loads(item.text or "") for item in found] == records


def test_scanning_errors_give_a_line_and_column() -> None:
    with pytest.raises(JsonStreamError) as raised:
        list(scan_records(io.BytesIO(b'{\n  "data":\n    7 }'), ("data", None), limit=100))
    assert (raised.value.line, raised.value.column) == (3, 5)


# -- JSON Lines ----------------------------------------------------------------------------


def test_json_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 100)
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
    lines = [
        b'\xef\xbb\xbf{"id": "1", "surname": "A"}',
        b"",
        b"{broken",
        b'{"id": "2", "x": "' + b"y" * 200 + b'"}',
        b'{"id": "3", "surname": "\xff"}',
        b'{"id": "4", "surname": "D"}',
    ]
    records = parse(adapter, b"\n".join(lines) + b"\n", "application/x-ndjson")
    assert [(raw.position, bool(raw.errors)) for raw in records] == [
        ("line 1", False),
        ("line 3", True),
        ("line 4", True),
        ("line 5", True),
        ("line 6", False),
    ]
    assert [raw.external_id for raw in records] == ["1", None, None, None, "4"]


# -- CSV -----------------------------------------------------------------------------------


def test_rows_become_records_and_bad_rows_become_errors(tmp_path: Path) -> None:
    adapter = csv_mapping(tmp_path)
    payload = (
        b"\xef\xbb\xbf ID , SURNAME\r\nC-1,ONE\r\n\r\nC-2\r\n"
        b'C-3,"TH\r\nREE"\r\nC-4,"bad"x\r\nC-5,F\xcfVE\r\n'
    )
    records = parse(adapter, payload)
    assert [(raw.position, raw.external_id, bool(raw.errors)) for raw in records] == [
        ("line 2", "C-1", False),
        ("line 4", None, True),
        ("lines 5-6", "C-3", False),
        ("line 7", None, True),
        ("line 8", None, True),
    ]
    assert records[1].errors[0]["message"] == "row has 1 values, the header has 2"
    assert records[1].data == {"ID": "C-2"}
    assert records[2].data == {"ID": "C-3", "SURNAME": "TH\r\nREE"}
    assert "not valid utf-8" in records[4].errors[0]["message"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "no header row"),
        (b"ID,ID\r\n", "empty or repeated column"),
        (b"ID,SURNAMES\r\nC-1,X\r\n", "lacks columns the mapping reads"),
    ],
)
def test_an_unusable_header_refuses_the_payload(
    tmp_path: Path, payload: bytes, message: str
) -> None:
    with pytest.raises(PayloadRejected, match=message):
        parse(csv_mapping(tmp_path), payload)


def test_an_over_long_line_refuses_the_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 50)
    with pytest.raises(PayloadRejected, match="line 2 is longer"):
        parse(csv_mapping(tmp_path), b"ID,SURNAME\n" + b"C-1," + b"X" * 100 + b"\n")


GROUPED_FIELDS = """\
case.events[]:
  each_row: {by: ORDER}
  fields:
    event_number: ORDER
    requirements[]:
      each_row: true
      when: {field: REQ, present: true}
      fields:
        category: {from: REQ, map: {UPW: UNPAID_WORK, "*": OTHER}}
"""


def grouped(tmp_path: Path) -> MappingAdapter:
    return csv_mapping(tmp_path, "group_by: ID, delimiter: '|'", GROUPED_FIELDS)


def test_group_by_folds_adjacent_rows_into_one_record(tmp_path: Path) -> None:
    payload = (
        b"ID|SURNAME|ORDER|REQ\n"
        b"C-1|ONE|1|UPW\nC-1|ONE|1|XYZ\nC-1|ONE|2|\n"
        b"C-2|TWO||\n"
        b"C-1|ONE|3|UPW\n"  # not adjacent: a record of its own
    )
    adapter = grouped(tmp_path)
    records = parse(adapter, payload)
    assert [(raw.position, raw.external_id) for raw in records] == [
        ("lines 2-4", "C-1"),
        ("line 5", "C-2"),
        ("line 6", "C-1"),
    ]
    first = adapter.translate(records[0].data)
    assert first.case is not None
    assert [(e.event_number, [r.category for r in e.requirements]) for e in first.case.events] == [
        ("1", ["UNPAID_WORK", "OTHER"]),
        ("2", []),
    ]
    second = adapter.translate(records[1].data)
    assert second.case is None


def test_a_bad_row_spoils_the_record_being_folded(tmp_path: Path) -> None:
    payload = (
        b"ID|SURNAME|ORDER|REQ\n"
        b"|NOBODY|1|\n"  # no record being folded yet: an error of its own
        b"C-1|ONE|1|UPW\nC-1|ONE|1|UPW|extra\n|NOBODY|1|\n"
        b"C-2|TWO|1|\n"
    )
    records = parse(grouped(tmp_path), payload)
    assert [(raw.position, bool(raw.errors)) for raw in records] == [
        ("line 2", True),
        ("lines 3-5", True),
        ("line 6", False),
    ]
    assert records[0].errors[0]["message"] == "the ID column is empty"
    assert [error["message"] for error in records[1].errors] == [
        "line 4: row has 5 values, the header has 4",
        "line 5: the ID column is empty",
    ]
    assert {error["path"] for error in records[1].errors} == {"rows"}
    assert records[1].data["rows"][1]["_extra"] == ["extra"]
    assert records[1].external_id == "C-1"


def test_a_group_holds_a_bounded_number_of_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "MAX_ROWS_PER_RECORD", 3)
    payload = b"ID|SURNAME|ORDER|REQ\n" + b"C-1|ONE|1|UPW\n" * 10 + b"C-2|TWO|1|\n"
    records = parse(grouped(tmp_path), payload)
    assert [len(raw.data["rows"]) for raw in records] == [3, 1]
    assert records[0].errors[0]["message"] == "more than 3 rows for one record"


def test_a_grouped_record_replayed_in_the_wrong_shape_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(RecordRejected) as raised:
        grouped(tmp_path).translate({"ID": "C-1"})
    assert raised.value.errors[0]["path"] == "rows"


# -- XML -----------------------------------------------------------------------------------


def heron() -> MappingAdapter:
    return MappingAdapter(MappingConfig(file=EXAMPLES / "heron.yaml"))


def xml_cases(*cases: str) -> bytes:
    return (
        '<x:CaseExchange xmlns:x="urn:example:heron:case-exchange:2" '
        'xmlns:p="urn:example:heron:person:1"><x:Cases>' + "".join(cases) + "</x:Cases>"
        "</x:CaseExchange>"
    ).encode()


def test_namespaces_are_matched_by_uri_not_by_the_prefix_written(tmp_path: Path) -> None:
    payload = xml_cases(
        '<x:Case id="H-1"><p:Person><p:Name><p:Family>ONE</p:Family></p:Name></p:Person></x:Case>',
        '<Case xmlns="urn:example:heron:case-exchange:2" id="H-2"><Person '
        'xmlns="urn:example:heron:person:1"><Name><Family>TWO</Family></Name></Person></Case>',
        '<Case id="not-in-the-namespace"/>',
    )
    adapter = heron()
    records = parse(adapter, payload)
    assert [raw.external_id for raw in records] == ["H-1", "H-2"]
    assert [adapter.translate(raw.data).person.surname for raw in records] == ["ONE", "TWO"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b"<x>&b;</x>",
            "XML refused",
            id="entity expansion",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<x>&e;</x>",
            "XML refused",
            id="external entity",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><x/>',
            "XML refused",
            id="external DTD",
        ),
        pytest.param(b"<x><Case></x>", "not well-formed", id="mismatched tags"),
        pytest.param(b"not xml", "not well-formed", id="not xml"),
        pytest.param(b"<a>" * 100 + b"</a>" * 100, "nests more than", id="deep nesting"),
    ],
)
def test_hostile_or_broken_xml_refuses_the_payload(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadRejected, match=message):
        parse(heron(), payload)


def test_an_xml_record_over_the_size_limit_refuses_the_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 20_000)
    small = '<x:Case id="H-1"><p:Person><p:Name><p:Family>A</p:Family></p:Name></p:Person></x:Case>'
    huge = '<x:Case id="H-2"><Note>' + "x" * 50_000 + "</Note></x:Case>"
    stream = Trickle(xml_cases(small * 50, huge), size=4 * 1024)
    records = heron().parse(stream, "application/xml")  # type: ignore[arg-type]
    with pytest.raises(PayloadRejected, match="larger than"):
        for _ in records:
            pass
    # Many small records do not add up: the limit is per record.
    assert len(parse(heron(), xml_cases(small * 500))) == 500


def test_xml_is_read_as_it_streams() -> None:
    case = (
        '<x:Case id="H-{n}"><p:Person><p:Name><p:Family>A</p:Family></p:Name></p:Person></x:Case>'
    )
    payload = xml_cases(*(case.format(n=n) for n in range(20_000)))
    stream = Trickle(payload, size=64 * 1024)
    first: RawRecord = next(heron().parse(stream, "application/xml"))  # type: ignore[arg-type]
    assert first.external_id == "H-0"
    assert stream.position < 200 * 1024 < len(payload)


def test_a_stored_xml_record_is_parsed_safely_on_replay() -> None:
    tampered = {"xml": '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Case>&e;</Case>'}
    with pytest.raises(RecordRejected) as raised:
        heron().translate(tampered)
    assert raised.value.errors[0]["path"] == "xml"
    with pytest.raises(RecordRejected):
        heron().translate({"not": "xml"})


# -- any input -----------------------------------------------------------------------------

SAMPLES = {
    "merlin": (EXAMPLES / "merlin-sample.json").read_bytes()[:3000],
    "kestrel": (EXAMPLES / "kestrel-sample.csv").read_bytes(),
    "heron": (EXAMPLES / "heron-sample.xml").read_bytes()[:2500],
}


ADAPTERS = {name: MappingAdapter(MappingConfig(file=EXAMPLES / f"{name}.yaml")) for name in SAMPLES}


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(sorted(SAMPLES)),
    cut=st.integers(min_value=0, max_value=3000),
    junk=st.binary(max_size=12),
)
def test_any_payload_is_records_or_a_refusal_never_a_crash(
    name: str, cut: int, junk: bytes
) -> None:
    adapter, sample = ADAPTERS[name], SAMPLES[name]
    payload = sample[:cut] + junk + sample[cut + len(junk) :]
    refusal: str | None = None
    try:
        records = parse(adapter, payload)
    except PayloadRejected as rejected:
        refusal, records = rejected.message, []
    assert refusal is None or refusal
    for result in outcomes(adapter, records):
        json.dumps(result.data if isinstance(result, RawRecord) else [])
        if isinstance(result, RecordRejected | RawRecord):
            assert result.errors
