"""The rest_json adapter: conformance, code lists, timestamps, error paths, fetch, writer."""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import (
    MAX_RECORD_NESTING,
    FatalSourceError,
    PayloadRejected,
    RecordRejected,
    RetriableSourceError,
)
from adapters.rest_json import PAGES_JSONL, RestJsonAdapter, RestJsonConfig, write_records
from adapters.rest_json.codes import CODE_LISTS
from adapters.testing import AdapterConformance, Malformed, Sample, parse_all
from schemas import CaseRecord
from tests.builders import OMIT, deep_merge, make_case_record

PACKAGE = Path(__file__).resolve().parents[2] / "adapters" / "rest_json"
SAMPLES = PACKAGE / "samples"
ADAPTER = RestJsonAdapter(RestJsonConfig())
CANARY = "Quxwellington-7731"


def make_item(**overrides: Any) -> dict[str, Any]:
    """A valid synthetic `/cases` item; overrides are deep-merged (OMIT removes a key)."""
    item: dict[str, Any] = {
        "id": "RJ-0009001",
        "revision": 3,
        "updatedAt": "2026-03-04T10:15:00+01:00",
        "person": {
            "firstName": "Peregrine",
            "middleNames": ["Barnaby"],
            "lastName": "Pretendley",
            "dateOfBirth": "1988-05-06",
            "gender": "M",
            "addresses": [
                {
                    "type": "CUR",
                    "addressLines": ["9 Nowhere Close"],
                    "town": "Cardiff",
                    "postcode": "CF10 1EP",
                }
            ],
            "identifiers": {"crn": "X320741", "pncId": "02/73319Z"},
        },
        "riskLevel": "M",
        "tier": "C1",
        "sentences": [
            {
                "id": "1",
                "type": "CO",
                "length": 12,
                "lengthUnit": "M",
                "startDate": "2026-01-05",
                "offences": [{"homeOfficeCode": "02800", "main": True}],
                "requirements": [{"requirementType": "UPW", "quantity": 100, "quantityUnit": "H"}],
            }
        ],
    }
    return deep_merge(item, overrides)


def with_sentence(**fields: Any) -> dict[str, Any]:
    item = make_item()
    item["sentences"][0].update(fields)
    return item


def page(*items: Any, next_cursor: str | None = None) -> bytes:
    return json.dumps({"items": list(items), "nextCursor": next_cursor}).encode()


def rejection(item: Any) -> list[dict[str, str]]:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.translate(item)
    return [dict(error) for error in caught.value.errors]


def paths_of(item: Any) -> set[str]:
    return {error["path"] for error in rejection(item)}


def deeply_nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


class TestRestJsonConformance(AdapterConformance):
    adapter = ADAPTER
    samples = [  # noqa: RUF012 - the conformance suite declares these as class attributes
        Sample(SAMPLES / "cases-page-1.json", "application/json", expect_records=2),
        Sample(SAMPLES / "cases-page-2.json", "application/json", expect_records=2),
        Sample(SAMPLES / "cases-pages.jsonl", PAGES_JSONL, expect_records=4),
    ]
    malformed = [  # noqa: RUF012
        Malformed(b"{not json", "application/json", payload_rejected=True),
        Malformed(b'{"items": {"id": "1"}}', "application/json", payload_rejected=True),
        Malformed(b'[{"id": "1"}]', "application/json", payload_rejected=True),
        Malformed(page(make_item(), next_cursor=""), "application/json", payload_rejected=True),
        Malformed(page(make_item(riskLevel="Q")), "application/json", paths={"riskLevel"}),
        Malformed(page(with_sentence(type="XX")), "application/json", paths={"sentences[0].type"}),
        Malformed(
            page(make_item(person={"lastName": OMIT})),
            "application/json",
            paths={"person.lastName"},
        ),
        Malformed(
            page(make_item(person={"identifiers": {"pncId": "02/73319A"}})),
            "application/json",
            paths={"person.identifiers.pncId"},
        ),
        Malformed(
            page(make_item(updatedAt="2026-03-04T10:15:00")),
            "application/json",
            paths={"updatedAt"},
        ),
        Malformed(
            page(make_item(person={"nickname": "Zeb"})),
            "application/json",
            paths={"person.nickname"},
        ),
        Malformed(page("not an object"), "application/json", paths={""}),
        Malformed(page({"items": deeply_nested(40)}), "application/json", paths={""}),
        Malformed(b"{not a page\n", PAGES_JSONL, paths={""}),
        Malformed(b'{"nextCursor": null}\n', PAGES_JSONL, paths={""}),
        Malformed(page(make_item(tier="E9")) + b"\n", PAGES_JSONL, paths={"tier"}),
    ]


# --- parse -------------------------------------------------------------------------------------


def test_a_page_yields_its_items_with_ids_and_positions() -> None:
    records = parse_all(
        ADAPTER, page(make_item(id="A-1"), make_item(id=42), next_cursor="c2"), "application/json"
    )

    assert [(r.external_id, r.position) for r in records] == [
        ("A-1", "items[0]"),
        ("42", "items[1]"),
    ]


def test_page_lines_are_read_one_by_one_and_a_bad_line_is_quarantined_alone() -> None:
    payload = b"\n".join(
        [page(make_item(id="A-1"), next_cursor="p2"), b"{broken", b"", page(make_item(id="A-2"))]
    )

    records = parse_all(ADAPTER, payload, PAGES_JSONL)

    assert [(r.external_id, r.position, bool(r.errors)) for r in records] == [
        ("A-1", "line 1 items[0]", False),
        (None, "line 2", True),
        ("A-2", "line 4 items[0]", False),
    ]


def test_an_item_nested_too_deeply_is_refused_alone_and_not_kept() -> None:
    hostile = {"id": "A-9", "person": deeply_nested(MAX_RECORD_NESTING + 5)}

    records = parse_all(ADAPTER, page(make_item(id="A-1"), hostile), "application/json")

    assert not records[0].errors
    assert records[1].external_id == "A-9"
    assert records[1].errors[0]["type"] == "too_deeply_nested"
    assert "person" not in records[1].data


def test_unknown_envelope_fields_are_ignored() -> None:
    payload = json.dumps({"items": [make_item()], "nextCursor": None, "total": 1}).encode()

    assert len(parse_all(ADAPTER, payload, "application/json")) == 1


def test_a_document_nested_beyond_the_parser_is_refused_as_a_whole() -> None:
    with pytest.raises(PayloadRejected):
        parse_all(ADAPTER, b"[" * 100_000 + b"]" * 100_000, "application/json")


# --- code lists --------------------------------------------------------------------------------


def _case_value(record: CaseRecord, table: str) -> Any:
    assert record.case is not None
    event = record.case.events[0] if record.case.events else None
    return {
        "gender": lambda: record.person.sex,
        "riskLevel": lambda: record.case.registrations[0].rosh_level,  # type: ignore[union-attr]
        "address type": lambda: record.person.addresses[0].status,
        "sentence type": lambda: event.sentence.type,  # type: ignore[union-attr]
        "lengthUnit": lambda: event.sentence.length_unit,  # type: ignore[union-attr]
        "requirementType": lambda: event.requirements[0].category,  # type: ignore[union-attr]
        "quantityUnit": lambda: event.requirements[0].unit,  # type: ignore[union-attr]
        "flagType": lambda: record.case.registrations[-1].type,  # type: ignore[union-attr]
    }[table]()


def _item_with_code(table: str, code: str) -> dict[str, Any]:
    item = make_item()
    sentence = item["sentences"][0]
    if table == "gender":
        item["person"]["gender"] = code
    elif table == "riskLevel":
        item["riskLevel"] = code
    elif table == "address type":
        item["person"]["addresses"][0]["type"] = code
    elif table == "sentence type":
        sentence["type"] = code
    elif table == "lengthUnit":
        sentence["lengthUnit"] = code
    elif table == "requirementType":
        # A category free of a fixed unit, so any code can be tried.
        sentence["requirements"] = [{"requirementType": code}]
    elif table == "quantityUnit":
        sentence["requirements"] = [{"requirementType": "OTH", "quantity": 3, "quantityUnit": code}]
    elif table == "flagType":
        item["flags"] = [{"flagType": code}]
    return item


CODE_CASES = [(table, code) for table, codes in CODE_LISTS.items() for code in codes]


@pytest.mark.parametrize(("table", "code"), CODE_CASES, ids=[f"{t}={c}" for t, c in CODE_CASES])
def test_every_code_maps_onto_its_canonical_code(table: str, code: str) -> None:
    record = ADAPTER.translate(_item_with_code(table, code))

    assert _case_value(record, table) == CODE_LISTS[table][code]


@pytest.mark.parametrize("table", list(CODE_LISTS))
def test_codes_are_read_trimmed_and_in_any_case(table: str) -> None:
    code = next(iter(CODE_LISTS[table]))

    record = ADAPTER.translate(_item_with_code(table, f" {code.lower()} "))

    assert _case_value(record, table) == CODE_LISTS[table][code]


def test_a_rosh_level_carries_its_delius_code() -> None:
    record = ADAPTER.translate(make_item(riskLevel="V", riskAssessedOn="2026-01-02"))

    assert record.case is not None
    [rosh] = record.case.registrations
    assert (rosh.code, rosh.start_date) == ("RVHR", date(2026, 1, 2))


def test_format_md_shows_exactly_the_code_tables() -> None:
    document = (PACKAGE / "FORMAT.md").read_text()
    sections = re.split(r"^### ", document, flags=re.MULTILINE)[1:]
    documented: dict[str, dict[str, str]] = {}
    for section in sections:
        title, _, body = section.partition("\n")
        rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", body, flags=re.MULTILINE)
        documented[title.strip()] = dict(rows)

    expected = {
        name: {code: str(canonical) for code, canonical in table.items()}
        for name, table in CODE_LISTS.items()
    }
    assert documented == expected


# --- timestamps and dates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-03-04T10:15:00+01:00", datetime(2026, 3, 4, 9, 15, tzinfo=UTC)),
        ("2026-03-04T09:15:00Z", datetime(2026, 3, 4, 9, 15, tzinfo=UTC)),
        ("2026-03-04T04:15:00.250-05:00", datetime(2026, 3, 4, 9, 15, 0, 250_000, tzinfo=UTC)),
        ("2026-01-01T00:30:00+01:00", datetime(2025, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_timestamps_with_offsets_are_normalised_to_utc(sent: str, stored: datetime) -> None:
    updated = ADAPTER.translate(make_item(updatedAt=sent)).provenance.source_updated_at

    assert updated == stored
    assert updated is not None
    assert updated.utcoffset() is not None
    assert updated.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_the_same_instant_at_different_offsets_translates_identically() -> None:
    summer = ADAPTER.translate(make_item(updatedAt="2026-07-01T13:00:00+01:00"))
    utc = ADAPTER.translate(make_item(updatedAt="2026-07-01T12:00:00Z"))

    assert summer == utc


@pytest.mark.parametrize("sent", ["2026-03-04T10:15:00", "2026-03-04", "yesterday", 1772615700])
def test_a_timestamp_without_an_offset_is_rejected(sent: Any) -> None:
    assert paths_of(make_item(updatedAt=sent)) == {"updatedAt"}


def test_a_date_sent_as_local_midnight_keeps_its_local_date() -> None:
    record = ADAPTER.translate(make_item(person={"dateOfBirth": "1991-08-17T00:00:00+01:00"}))

    # In UTC that instant is 1991-08-16T23:00: the local date is what the case system meant.
    assert record.person.date_of_birth == date(1991, 8, 17)


@pytest.mark.parametrize("sent", ["1991-08-17T13:00:00+01:00", "1991-08-17T00:00:00", "17/08/1991"])
def test_a_date_that_is_not_a_plain_date_or_local_midnight_is_rejected(sent: str) -> None:
    assert paths_of(make_item(person={"dateOfBirth": sent})) == {"person.dateOfBirth"}


def test_an_impossible_date_is_rejected() -> None:
    assert paths_of(with_sentence(startDate="2026-02-30")) == {"sentences[0].startDate"}


# --- rejections --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "path"),
    [
        (make_item(riskLevel="Z"), "riskLevel"),
        (make_item(riskLevel=3), "riskLevel"),
        (with_sentence(type="XX"), "sentences[0].type"),
        (with_sentence(lengthUnit="F"), "sentences[0].lengthUnit"),
        (with_sentence(type=None), "sentences[0].type"),
        (with_sentence(id=OMIT), "sentences[0].id"),
        (
            with_sentence(
                requirements=[{"requirementType": "UPW", "quantity": 5, "quantityUnit": "D"}]
            ),
            "sentences[0].requirements[0]",
        ),
        (
            with_sentence(
                requirements=[{"requirementType": "UPW", "quantity": -1, "quantityUnit": "H"}]
            ),
            "sentences[0].requirements[0].quantity",
        ),
        (
            with_sentence(requirements=[{"quantity": 5}]),
            "sentences[0].requirements[0].requirementType",
        ),
        (
            with_sentence(offences=[{"homeOfficeCode": "2800"}]),
            "sentences[0].offences[0].homeOfficeCode",
        ),
        (
            with_sentence(
                offences=[
                    {"homeOfficeCode": "02800", "main": True},
                    {"homeOfficeCode": "04901", "main": True},
                ]
            ),
            "sentences[0].offences",
        ),
        (with_sentence(startDate="2026-02-01", expectedEndDate="2026-01-01"), "sentences[0]"),
        (make_item(person={"gender": "Q"}), "person.gender"),
        (
            make_item(person={"identifiers": {"croNumber": "65656/91A"}}),
            "person.identifiers.croNumber",
        ),
        (
            make_item(person={"identifiers": {"niNumber": "QQ123456C"}}),
            "person.identifiers.niNumber",
        ),
        (
            make_item(person={"addresses": [{"type": "CUR", "postcode": "NOT A POSTCODE"}]}),
            "person.addresses[0].postcode",
        ),
        (
            make_item(person={"addresses": [{"type": "CUR", "addressLines": ["", "x" * 300]}]}),
            "person.addresses[0].addressLines[1]",
        ),
        (make_item(person={"addresses": [{"town": "Leeds"}]}), "person.addresses[0].type"),
        (make_item(person={"middleNames": ["", "y" * 150]}), "person.middleNames[1]"),
        (make_item(person={"firstName": "z" * 150}), "person.firstName"),
        (make_item(person={"contact": {"email": "not-an-email"}}), "person.contact.email"),
        (make_item(person={"aliases": [{"firstName": "Zeb"}]}), "person.aliases[0].lastName"),
        (make_item(mappa={"category": 4, "level": 1}), "mappa.category"),
        (make_item(flags=[{"flagType": "ROSH"}]), "flags[0].flagType"),
        (make_item(manager={"teamCode": "T1"}), "manager.providerCode"),
        (make_item(id=""), "id"),
        (make_item(id=True), "id"),
        (make_item(sentences=[{"id": "1"}, {"id": 1}]), "sentences"),
    ],
)
def test_a_bad_item_is_rejected_on_the_source_field_path(item: dict[str, Any], path: str) -> None:
    assert path in paths_of(item)


def test_every_error_of_an_item_is_reported_at_once() -> None:
    item = make_item(riskLevel="Z", person={"identifiers": {"pncId": "02/73319A"}})
    item["sentences"][0]["type"] = "XX"

    assert paths_of(item) == {"riskLevel", "sentences[0].type"}
    # Once the shape is right, the canonical checks report all they find too.
    item = make_item(tier="E9", person={"identifiers": {"pncId": "02/73319A"}})
    assert paths_of(item) == {"tier", "person.identifiers.pncId"}


def test_a_rejection_keeps_the_external_id_and_never_repeats_the_value_sent() -> None:
    item = make_item(
        id="RJ-77",
        riskLevel=CANARY,
        person={"gender": CANARY, "dateOfBirth": CANARY, "identifiers": {"crn": CANARY}},
    )

    with pytest.raises(RecordRejected) as caught:
        ADAPTER.translate(item)

    assert caught.value.external_id == "RJ-77"
    assert CANARY not in json.dumps(caught.value.errors)


def test_translate_refuses_what_is_not_an_object() -> None:
    assert paths_of(["a", "list"]) == {""}


def test_an_unsentenced_conviction_is_an_event_without_a_sentence() -> None:
    item = make_item(sentences=[{"id": "9", "convictionDate": "2026-03-02", "type": None}])

    record = ADAPTER.translate(item)

    assert record.case is not None
    [event] = record.case.events
    assert (event.event_number, event.sentence, event.conviction_date) == (
        "9",
        None,
        date(2026, 3, 2),
    )


def test_blank_values_count_as_absent() -> None:
    item = make_item(
        person={
            "middleNames": ["", "  "],
            "identifiers": {"croNumber": "", "niNumber": "  "},
            "contact": {"phone": "", "email": ""},
            "addresses": [{"type": "CUR", "addressLines": ["1 Road", ""], "county": ""}],
        }
    )

    person = ADAPTER.translate(item).person

    assert person.forenames == ["Peregrine"]
    assert (person.identifiers.cro, person.identifiers.nino) == (None, None)
    assert person.contact is not None
    assert (person.contact.telephone, person.contact.email) == (None, None)
    assert (person.addresses[0].lines, person.addresses[0].county) == (["1 Road"], None)


def test_an_item_without_case_fields_has_no_case() -> None:
    item = make_item(riskLevel=OMIT, tier=OMIT, sentences=OMIT)

    assert ADAPTER.translate(item).case is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
ITEM_FIELDS = [
    "id",
    "revision",
    "updatedAt",
    "person",
    "riskLevel",
    "mappa",
    "flags",
    "tier",
    "manager",
    "sentences",
]


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(ITEM_FIELDS), value=JSON_VALUES)
def test_any_value_in_any_field_translates_or_is_rejected_with_paths(
    field: str, value: Any
) -> None:
    item = make_item()
    item[field] = value
    before = copy.deepcopy(item)
    outcome: CaseRecord | RecordRejected
    try:
        outcome = ADAPTER.translate(item)
    except RecordRejected as rejected:
        outcome = rejected
    if isinstance(outcome, RecordRejected):
        assert outcome.errors
        assert all(isinstance(error["path"], str) for error in outcome.errors)
    else:
        assert isinstance(outcome, CaseRecord)
    assert item == before


# --- fetch -------------------------------------------------------------------------------------


class ScriptedHttp:
    """A SourceHttp that answers from a script and records what it was asked."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, str]]] = []

    def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        self.calls.append((path, dict(params or {})))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_fetch_asks_for_a_page_after_the_cursor_and_says_where_to_resume() -> None:
    adapter = RestJsonAdapter(RestJsonConfig(page_size=2))
    http = ScriptedHttp(
        {"items": [make_item(id="A"), make_item(id="B")], "nextCursor": "c2"},
        {"items": [make_item(id="C")], "nextCursor": None},
    )

    first = adapter.fetch(None, http)
    last = adapter.fetch(first.next_cursor, http)

    assert http.calls == [("/cases", {"limit": "2"}), ("/cases", {"limit": "2", "cursor": "c2"})]
    assert [r.external_id for r in first.records] == ["A", "B"]
    assert (first.next_cursor, first.has_more) == ("c2", True)
    # Caught up: resume from the same cursor, to see what is appended after it.
    assert [r.external_id for r in last.records] == ["C"]
    assert (last.next_cursor, last.has_more) == ("c2", False)


def test_fetch_on_an_empty_source_resumes_from_the_start() -> None:
    page_ = ADAPTER.fetch(None, ScriptedHttp({"items": [], "nextCursor": None}))

    assert (page_.records, page_.next_cursor, page_.has_more) == ([], None, False)


@pytest.mark.parametrize(
    "answer",
    [
        ["items"],
        {"items": None, "nextCursor": None},
        {"nextCursor": "c2"},
        {"items": [], "nextCursor": 7},
        {"items": [], "nextCursor": ""},
        "<html>",
        None,
    ],
)
def test_a_response_of_the_wrong_shape_is_fatal(answer: Any) -> None:
    with pytest.raises(FatalSourceError):
        ADAPTER.fetch("c1", ScriptedHttp(answer))


def test_a_response_giving_back_the_same_cursor_is_fatal_rather_than_a_loop() -> None:
    with pytest.raises(FatalSourceError):
        ADAPTER.fetch("c1", ScriptedHttp({"items": [make_item()], "nextCursor": "c1"}))


def test_fetch_lets_the_gateways_errors_through() -> None:
    failure = RetriableSourceError("the source timed out", retry_after=30)

    with pytest.raises(RetriableSourceError) as caught:
        ADAPTER.fetch(None, ScriptedHttp(failure))

    assert caught.value is failure


def test_fetched_items_are_refused_alone_when_nested_too_deeply() -> None:
    hostile = {"id": "H", "person": deeply_nested(MAX_RECORD_NESTING + 1)}

    fetched = ADAPTER.fetch(
        None, ScriptedHttp({"items": [hostile, make_item()], "nextCursor": None})
    )

    assert [bool(r.errors) for r in fetched.records] == [True, False]


def test_the_config_refuses_unknown_settings_and_odd_page_sizes() -> None:
    for bad in ({"page_size": 0}, {"page_size": 5000}, {"path": "cases?x=1"}, {"pagesize": 5}):
        with pytest.raises(ValueError):
            RestJsonConfig.model_validate(bad)


# --- writer ------------------------------------------------------------------------------------


def _written(records: list[CaseRecord], page_size: int) -> list[dict[str, Any]]:
    stream = io.BytesIO()
    write_records(iter(records), stream, page_size=page_size)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _as_the_case_system_holds_it(record: dict[str, Any]) -> dict[str, Any]:
    """What the writer documents it cannot carry, taken out of a canonical record."""
    expected = copy.deepcopy(record)
    expected["provenance"]["source"] = None
    for registration in (expected.get("case") or {}).get("registrations", []):
        if registration["type"] == "ROSH":
            registration["description"] = None
    return expected


def test_written_pages_read_back_as_the_same_records() -> None:
    records = [CaseRecord.model_validate(make_case_record()) for _ in range(7)]

    pages = _written(records, page_size=3)
    stream = io.BytesIO(b"\n".join(json.dumps(p).encode() for p in pages))
    back = [ADAPTER.translate(r.data) for r in ADAPTER.parse(stream, PAGES_JSONL)]

    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert [p["nextCursor"] for p in pages] == ["p000002", "p000003", None]
    assert [b.model_dump(mode="json") for b in back] == [
        _as_the_case_system_holds_it(r.model_dump(mode="json")) for r in records
    ]


def test_written_items_use_the_case_systems_codes() -> None:
    record = CaseRecord.model_validate(
        make_case_record(person={"sex": "FEMALE"}, case={"tier": {"value": "a3"}})
    )

    [written] = _written([record], page_size=10)
    [item] = written["items"]

    assert (item["person"]["gender"], item["riskLevel"], item["tier"]) == ("F", "M", "A3")
    sentence = item["sentences"][0]
    assert (sentence["type"], sentence["lengthUnit"]) == ("CO", "M")
    assert [(r["requirementType"], r["quantityUnit"]) for r in sentence["requirements"]] == [
        ("UPW", "H"),
        ("RAR", "D"),
    ]


def test_no_records_write_one_empty_last_page() -> None:
    assert _written([], page_size=5) == [{"items": [], "nextCursor": None}]


def test_the_samples_line_file_is_what_the_writer_writes() -> None:
    records = [
        ADAPTER.translate(raw.data)
        for name in ("cases-page-1.json", "cases-page-2.json")
        for raw in parse_all(ADAPTER, (SAMPLES / name).read_bytes(), "application/json")
    ]
    stream = io.BytesIO()

    write_records(records, stream, page_size=3)

    assert stream.getvalue() == (SAMPLES / "cases-pages.jsonl").read_bytes()
