"""The mapping adapter: the worked examples pass the conformance suite; each transform works.

The builders here (a mapping file from YAML text, one record) serve the other test_mapping_*
modules too.
"""

from __future__ import annotations

import io
import json
import textwrap
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import pytest

from adapters.base import RawRecord, RecordRejected, Unparsed
from adapters.mapping import MappingAdapter, MappingConfig
from adapters.testing import AdapterConformance, Malformed, Sample
from schemas import CaseRecord, RequirementCategory, RoshLevel, Sex

EXAMPLES = Path(__file__).resolve().parents[2] / "adapters" / "mapping" / "examples"

JSON_HEAD = """\
name: test
version: "1"
format: json
json: {records: "$[*]"}
external_id: id
fields:
  person.surname: surname
"""


def write_mapping(tmp_path: Path, text: str, name: str = "mapping.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def mapping_adapter(tmp_path: Path, text: str, name: str = "mapping.yaml") -> MappingAdapter:
    return MappingAdapter(MappingConfig(file=write_mapping(tmp_path, text, name)))


def json_adapter(tmp_path: Path, fields: str = "") -> MappingAdapter:
    """A JSON mapping (records at `$[*]`, id in `id`, surname in `surname`) plus `fields`."""
    extra = textwrap.indent(textwrap.dedent(fields), "  ")
    return mapping_adapter(tmp_path, JSON_HEAD + extra)


def parse(adapter: MappingAdapter, payload: bytes, content_type: str = "") -> list[RawRecord]:
    return list(adapter.parse(io.BytesIO(payload), content_type or adapter.content_types[0]))


def translate(adapter: MappingAdapter, **data: Any) -> CaseRecord:
    return adapter.translate({"id": "R-1", "surname": "EXAMPLE", **data})


def rejection(adapter: MappingAdapter, **data: Any) -> list[tuple[str, str]]:
    """The (path, type) of each error when the record is rejected; fails if it is not."""
    try:
        translate(adapter, **data)
    except RecordRejected as rejected:
        return [(error["path"], error["type"]) for error in rejected.errors]
    raise AssertionError("the record was accepted")


MERLIN = MappingAdapter(MappingConfig(file=EXAMPLES / "merlin.yaml"))
KESTREL = MappingAdapter(MappingConfig(file=EXAMPLES / "kestrel.yaml"))
HERON = MappingAdapter(MappingConfig(file=EXAMPLES / "heron.yaml"))

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<CaseExchange xmlns="urn:example:heron:case-exchange:2"><Cases><Case id="X">&lol3;</Case>
</Cases></CaseExchange>"""


class TestMerlinMappingConformance(AdapterConformance):
    adapter = MERLIN
    samples: ClassVar[list[Sample]] = [
        Sample(EXAMPLES / "merlin-sample.json", "application/json", expect_records=10),
        Sample(EXAMPLES / "merlin-sample.json", "application/vnd.merlin.export+json", 10),
    ]
    malformed: ClassVar[list[Malformed]] = [
        Malformed(
            b'{"data": {"cases": [{"caseRef": "M-1",', "application/json", payload_rejected=True
        ),
        Malformed(b"not json at all", "application/json", payload_rejected=True),
        Malformed(
            (EXAMPLES / "merlin-rejects.json").read_bytes(),
            "application/json",
            paths={
                "case.registrations.0.rosh_level <- risk",
                "person.date_of_birth <- dob",
                "person.identifiers.pnc <- pncId",
                "provenance.external_id <- caseRef",
                "case.events.0.requirements.0.amount <- orders.0.requirements.0.minutes",
            },
        ),
    ]


def _kestrel_rejects() -> bytes:
    header, *rows = (EXAMPLES / "kestrel-sample.csv").read_bytes().split(b"\r\n")
    bad_date = rows[3].replace(b"02/11/1990", b"1990-11-02")  # KT-5002: neither DOB format
    extra_value = rows[7] + b";extra"  # KT-5005: one value more than the header
    return b"\r\n".join([header, bad_date, extra_value, b""])


class TestKestrelMappingConformance(AdapterConformance):
    adapter = KESTREL
    samples: ClassVar[list[Sample]] = [
        Sample(EXAMPLES / "kestrel-sample.csv", "text/csv", expect_records=5)
    ]
    malformed: ClassVar[list[Malformed]] = [
        Malformed(b"CASE_ID;SURNAME\r\nK-1;X\r\n", "text/csv", payload_rejected=True),
        Malformed(
            _kestrel_rejects(), "text/csv", paths={"person.date_of_birth <- rows.0.DOB", "rows"}
        ),
    ]


class TestHeronMappingConformance(AdapterConformance):
    adapter = HERON
    samples: ClassVar[list[Sample]] = [
        Sample(EXAMPLES / "heron-sample.xml", "application/xml", expect_records=4)
    ]
    malformed: ClassVar[list[Malformed]] = [
        Malformed(BILLION_LAUGHS, "application/xml", payload_rejected=True),
        Malformed(b"<CaseExchange><Case", "application/xml", payload_rejected=True),
        Malformed(
            b'<CaseExchange xmlns="urn:example:heron:case-exchange:2" '
            b'xmlns:p="urn:example:heron:person:1">'
            b'<Case id="H-1"><p:Person><p:Name><p:Family>EXAMPLE</p:Family></p:Name></p:Person>'
            b'<Risk level="9"/></Case>'
            b'<Case id="H-2"><Risk level="1"/></Case></CaseExchange>',
            "application/xml",
            paths={
                "case.registrations.0.rosh_level <- Risk.@level",
                "person.surname <- p:Person.p:Name.p:Family",
            },
        ),
    ]


# -- the examples ----------------------------------------------------------------------------


def test_the_version_names_the_engine_and_the_mapping_file() -> None:
    assert MERLIN.version == "1+merlin-3"
    assert KESTREL.version == "1+kestrel-1"
    assert HERON.version == "1+heron-2"
    # The registry validates the class: it keeps the engine's version and no content types.
    assert MappingAdapter.version == "1"
    assert MappingAdapter.content_types == ()
    assert MappingAdapter.name == "mapping"
    assert len(MERLIN.version) <= 32  # the width of the quarantine's adapter_version column


def test_content_types_come_from_the_mapping_or_the_format(tmp_path: Path) -> None:
    assert MERLIN.content_types == ("application/json", "application/vnd.merlin.export+json")
    assert KESTREL.content_types == ("text/csv",)
    assert HERON.content_types == ("application/xml", "text/xml")
    lines = mapping_adapter(
        tmp_path,
        """\
        name: t
        version: "1"
        format: json
        json: {lines: true}
        external_id: id
        fields: {person.surname: s}
        """,
    )
    assert lines.content_types == ("application/x-ndjson",)


def test_a_merlin_case_translates_field_by_field() -> None:
    [first, *_] = parse(MERLIN, (EXAMPLES / "merlin-sample.json").read_bytes())
    record = MERLIN.translate(first.data)

    assert first.position == "$.data.cases[0]"
    assert record.provenance.external_id == "MRL-100101"
    assert record.provenance.source_version == "3"
    assert (record.person.surname, record.person.forenames) == ("BRAMBLEWORTH", ["Tobias", "James"])
    assert record.person.date_of_birth == date(1985, 4, 3)
    assert record.person.identifiers.pnc == "1985/0123450C"
    assert [address.status for address in record.person.addresses] == ["MAIN", "PREVIOUS"]
    assert record.person.addresses[0].lines == ["7 Example Street"]
    assert record.case is not None
    assert [event.event_number for event in record.case.events] == ["1", "2"]
    event = record.case.events[0]
    assert event.court == "Sheffield Magistrates' Court"
    assert [(r.category, r.amount, r.unit) for r in event.requirements] == [
        (RequirementCategory.UNPAID_WORK, 120, "HOURS"),
        (RequirementCategory.REHABILITATION_ACTIVITY, 20, "DAYS"),
    ]
    assert record.case.events[1].active is False
    assert [r.type for r in record.case.registrations] == ["ROSH", "DOMESTIC_ABUSE"]
    assert record.case.registrations[0].rosh_level is RoshLevel.MEDIUM
    assert record.case.tier is not None
    assert record.case.tier.value == "B2"


def test_merlin_skips_removed_flags_and_maps_unknown_flags_to_other() -> None:
    records = [MERLIN.translate(raw.data) for raw in parse(MERLIN, _merlin_bytes())]
    oakenshaw, thistledown = records[4], records[8]
    assert oakenshaw.case is not None
    assert thistledown.case is not None
    assert "CHILD_PROTECTION" not in [r.type for r in oakenshaw.case.registrations]
    assert [r.type for r in thistledown.case.registrations] == ["ROSH", "OTHER_FLAG"]
    assert records[4].person.addresses[0].no_fixed_abode is True


def test_kestrel_folds_a_cases_rows_into_events_and_requirements() -> None:
    raws = parse(KESTREL, (EXAMPLES / "kestrel-sample.csv").read_bytes())
    record = KESTREL.translate(raws[0].data)

    assert raws[0].position == "lines 2-4"
    assert len(raws[0].data["rows"]) == 3
    assert record.case is not None
    assert [event.event_number for event in record.case.events] == ["O-1", "O-2"]
    assert [len(event.requirements) for event in record.case.events] == [2, 1]
    assert record.person.forenames == ["Miles", "Edward"]
    # Windows-1252 bytes decoded as declared.
    assert KESTREL.translate(raws[1].data).person.forenames == ["Zoë"]
    # A row with no requirement code adds no requirement.
    third = KESTREL.translate(raws[2].data)
    assert third.case is not None
    assert third.case.events[0].requirements == []


def test_heron_reads_namespaces_attributes_and_repeated_elements() -> None:
    raws = parse(HERON, (EXAMPLES / "heron-sample.xml").read_bytes())
    first, second = (HERON.translate(raw.data) for raw in raws[:2])

    assert [raw.position for raw in raws] == ["Case[0]", "Case[1]", "Case[2]", "Case[3]"]
    assert raws[0].data["xml"].startswith("<")
    assert first.person.forenames == ["Agatha", "Jane"]
    assert second.person.forenames == ["Tom"]  # one <p:Given> is a list of one
    assert second.person.surname == "BRACKENRIDGE"
    assert first.person.sex is Sex.FEMALE
    assert second.case is not None
    assert [event.event_number for event in second.case.events] == ["HX-O-2", "HX-O-3"]


def test_translation_is_deterministic_and_does_not_touch_its_input() -> None:
    raw = parse(MERLIN, _merlin_bytes())[0]
    before = json.dumps(raw.data, sort_keys=True)
    results = {MERLIN.translate(raw.data).model_dump_json() for _ in range(3)}
    assert len(results) == 1
    assert json.dumps(raw.data, sort_keys=True) == before


def _merlin_bytes() -> bytes:
    return (EXAMPLES / "merlin-sample.json").read_bytes()


# -- transforms --------------------------------------------------------------------------------


def test_strip_upper_and_map(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path, "person.sex: {from: g, strip: true, upper: true, map: {M: MALE}}"
    )
    assert translate(adapter, g=" m ").person.sex is Sex.MALE
    plain = json_adapter(tmp_path, "person.sex: {from: g, map: {M: MALE}}")
    assert rejection(plain, g=" m ") == [("person.sex <- g", "unknown_code")]


def test_lower(tmp_path: Path) -> None:
    adapter = json_adapter(tmp_path, "person.contact.email: {from: e, lower: true}")
    contact = translate(adapter, e="A.Person@Example.ORG").person.contact
    assert contact is not None
    assert contact.email == "a.person@example.org"


def test_an_unknown_code_rejects_the_record_naming_both_fields(tmp_path: Path) -> None:
    adapter = json_adapter(tmp_path, "person.sex: {from: g, map: {M: MALE, F: FEMALE}}")
    with pytest.raises(RecordRejected) as raised:
        translate(adapter, g="Q")
    [error] = raised.value.errors
    assert error["path"] == "person.sex <- g"
    assert "M, F" in error["message"]
    assert "Q" not in error["message"].split("(")[0]
    assert raised.value.external_id == "R-1"


def test_a_wildcard_code_is_the_default_and_null_means_no_value(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path,
        """\
        person.sex: {from: g, map: {M: MALE, "*": NOT_KNOWN}}
        person.identifiers.crn: {from: c, map: {NONE: ~, "*": X320741}}
        """,
    )
    assert translate(adapter, g="Z").person.sex is Sex.NOT_KNOWN
    assert translate(adapter, g="M", c="NONE").person.identifiers.crn is None
    assert translate(adapter, g="M", c="ANY").person.identifiers.crn == "X320741"


@pytest.mark.parametrize(
    ("layout", "name", "surname", "forenames"),
    [
        ("SURNAME, FORENAMES", "SMITHERS-TEST, John Paul", "SMITHERS-TEST", ["John", "Paul"]),
        ("SURNAME, FORENAMES", "SOLO,", "SOLO", []),
        ("FORENAMES SURNAME", "Mary Anne Exampleton", "Exampleton", ["Mary", "Anne"]),
        ("FORENAMES SURNAME", "Exampleton", "Exampleton", []),
        ("SURNAME FORENAMES", "EXAMPLETON Mary Anne", "EXAMPLETON", ["Mary", "Anne"]),
    ],
)
def test_split_name_layouts(
    tmp_path: Path, layout: str, name: str, surname: str, forenames: list[str]
) -> None:
    adapter = mapping_adapter(
        tmp_path,
        f"""\
        name: t
        version: "1"
        format: json
        json: {{records: "$[*]"}}
        external_id: id
        fields:
          person.surname: {{from: n, split_name: {{pattern: "{layout}", take: surname}}}}
          person.forenames: {{from: n, split_name: {{pattern: "{layout}", take: forenames}}}}
        """,
    )
    record = adapter.translate({"id": "1", "n": name})
    assert (record.person.surname, record.person.forenames) == (surname, forenames)


def test_split_name_by_regex_and_a_name_that_does_not_fit(tmp_path: Path) -> None:
    adapter = mapping_adapter(
        tmp_path,
        """\
        name: t
        version: "1"
        format: json
        json: {records: "$[*]"}
        external_id: id
        fields:
          person.surname: {from: n, split_name: {regex: '(?P<surname>[A-Z-]+)/(?P<forenames>.*)', take: surname}}
          person.forenames: {from: n, split_name: {regex: '(?P<surname>[A-Z-]+)/(?P<forenames>.*)', take: forenames}}
        """,  # noqa: E501
    )
    record = adapter.translate({"id": "1", "n": "DOE-EXAMPLE/Jane Q"})
    assert (record.person.surname, record.person.forenames) == ("DOE-EXAMPLE", ["Jane", "Q"])
    with pytest.raises(RecordRejected) as raised:
        adapter.translate({"id": "1", "n": "no slash here"})
    assert {error["path"] for error in raised.value.errors} == {
        "person.surname <- n",
        "person.forenames <- n",
    }
    assert {error["type"] for error in raised.value.errors} == {"name_format"}


def test_split_on_a_separator_or_whitespace(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path,
        """\
        person.forenames: {from: f, split: " "}
        person.addresses[].status: {const: MAIN}
        person.addresses[].lines: {from: a, split: "|"}
        """,
    )
    record = translate(adapter, f="  Ann   Marie ", a="Flat 1| 2 Example Road |")
    assert record.person.forenames == ["Ann", "Marie"]
    assert record.person.addresses[0].lines == ["Flat 1", "2 Example Road"]


def test_dates_try_each_format_and_reject_a_bad_one(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path, 'person.date_of_birth: {from: d, date: {format: ["%d/%m/%Y", "%Y%m%d"]}}'
    )
    assert translate(adapter, d="03/04/1985").person.date_of_birth == date(1985, 4, 3)
    assert translate(adapter, d="19850403").person.date_of_birth == date(1985, 4, 3)
    assert translate(adapter, d=19850403).person.date_of_birth == date(1985, 4, 3)
    with pytest.raises(RecordRejected) as raised:
        translate(adapter, d="31/02/1985")
    [error] = raised.value.errors
    assert (error["path"], error["type"]) == ("person.date_of_birth <- d", "date_format")
    assert "1985" not in error["message"]  # a date of birth is never echoed
    # The document goes along with the value left in place, for the gateway to drop and report.
    document = raised.value.document
    assert document is not None
    unparsed = document["person"]["date_of_birth"]
    assert isinstance(unparsed, Unparsed)
    assert (unparsed.value, unparsed.error_type) == ("31/02/1985", "date_format")


def test_minutes_to_hours(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path,
        """\
        case.events[].event_number: {const: "1"}
        case.events[].requirements[].category: {const: UNPAID_WORK}
        case.events[].requirements[].unit: {const: HOURS}
        case.events[].requirements[].amount: {from: m, minutes_to_hours: true}
        """,
    )

    def hours(minutes: object) -> int | None:
        record = translate(adapter, m=minutes)
        assert record.case is not None
        return record.case.events[0].requirements[0].amount

    assert hours(7200) == 120
    assert hours("7200") == 120
    assert hours(7200.0) == 120
    path = "case.events.0.requirements.0.amount <- m"
    assert rejection(adapter, m=90) == [(path, "minutes_not_whole_hours")]
    assert rejection(adapter, m="two hours") == [(path, "minutes_type")]
    assert rejection(adapter, m=True) == [(path, "minutes_type")]


def test_a_default_fills_a_missing_or_blank_value(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path, "person.sex: {from: g, map: {M: MALE, F: FEMALE}, default: NOT_KNOWN}"
    )
    assert translate(adapter).person.sex is Sex.NOT_KNOWN
    assert translate(adapter, g="  ").person.sex is Sex.NOT_KNOWN
    assert translate(adapter, g="F").person.sex is Sex.FEMALE


def test_alternatives_give_the_first_value_found(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path,
        """\
        person.sex:
          - {from: gender, map: {M: MALE, F: FEMALE}}
          - {from: sexCode, map: {"1": MALE, "2": FEMALE}}
          - {const: NOT_KNOWN}
        """,
    )
    assert translate(adapter, gender="F", sexCode="1").person.sex is Sex.FEMALE
    assert translate(adapter, sexCode=1).person.sex is Sex.MALE
    assert translate(adapter).person.sex is Sex.NOT_KNOWN


def test_json_numbers_become_text_for_text_fields(tmp_path: Path) -> None:
    adapter = json_adapter(tmp_path, "case.events[].event_number: n")
    record = translate(adapter, n=7)
    assert record.case is not None
    assert record.case.events[0].event_number == "7"


def test_a_constant_alone_does_not_make_an_object(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path,
        """\
        case.offender_manager.provider_code: {const: C21}
        case.offender_manager.staff_code: officer
        """,
    )
    assert translate(adapter).case is None
    with_officer = translate(adapter, officer="C21T01S01").case
    assert with_officer is not None
    assert with_officer.offender_manager is not None
    assert with_officer.offender_manager.provider_code == "C21"


def test_an_object_where_a_value_belongs_is_a_field_error(tmp_path: Path) -> None:
    adapter = json_adapter(tmp_path, "person.identifiers.crn: {from: crn, strip: true}")
    assert rejection(adapter, crn={"value": "X1"}) == [
        ("person.identifiers.crn <- crn", "value_type")
    ]
    # A path through a value: the source is not shaped as the mapping expects.
    deep = json_adapter(tmp_path, "person.identifiers.crn: a.b")
    assert rejection(deep, a="flat") == [("person.identifiers.crn <- a", "source_shape")]


def test_canonical_validation_errors_name_the_source_field(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path,
        """\
        person.identifiers.pnc: pnc
        person.addresses[]:
          each: addresses[*]
          fields:
            status: {const: MAIN}
            postcode: pc
            start_date: from
            end_date: to
        """,
    )
    errors = rejection(
        adapter,
        pnc="02/73319Q",
        addresses=[
            {"pc": "SW1A 1AA"},
            {"pc": "not a postcode"},
            {"from": "2020-01-02", "to": "2019-01-01"},
        ],
    )
    assert errors == [
        ("person.addresses.1.postcode <- addresses.1.pc", "value_error"),
        ("person.addresses.2 <- addresses.2", "value_error"),
        ("person.identifiers.pnc <- pnc", "value_error"),
    ]


def test_a_missing_required_field_names_where_it_was_looked_for(tmp_path: Path) -> None:
    adapter = json_adapter(tmp_path)
    assert rejection(adapter, surname=None) == [("person.surname <- surname", "missing")]
    with pytest.raises(RecordRejected) as raised:
        adapter.translate({"surname": "EXAMPLE"})
    assert [error["path"] for error in raised.value.errors] == ["provenance.external_id <- id"]
    assert raised.value.external_id is None


def test_a_record_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    adapter = json_adapter(tmp_path)
    with pytest.raises(RecordRejected):
        adapter.translate(["not", "an", "object"])


# -- when -----------------------------------------------------------------------------------


def test_when_conditions_choose_fields_and_items(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path,
        """\
        person.sex:
          - {const: MALE, when: {field: g, equals: "1"}}
          - {const: FEMALE, when: {field: g, in: ["2", "02"]}}
          - {const: OTHER, when: [{field: g, not_in: ["1", "2", "02"]}, {field: g, present: true}]}
        person.identifiers.crn: {from: crn, when: {field: status, not_equals: MERGED}}
        case.events[]:
          each: orders[*]
          when: {field: deleted, present: false}
          fields:
            event_number: no
        """,
    )
    assert translate(adapter, g=1).person.sex is Sex.MALE
    assert translate(adapter, g="02").person.sex is Sex.FEMALE
    assert translate(adapter, g="9").person.sex is Sex.OTHER
    assert translate(adapter).person.sex is None
    assert translate(adapter, crn="X123456").person.identifiers.crn == "X123456"
    assert translate(adapter, crn="X123456", status="MERGED").person.identifiers.crn is None
    record = translate(adapter, orders=[{"no": "1"}, {"no": "2", "deleted": "Y"}, {"no": "3"}])
    assert record.case is not None
    assert [event.event_number for event in record.case.events] == ["1", "3"]


def test_root_paths_reach_the_record_from_inside_an_item(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path,
        """\
        case.events[]:
          each: orders[*]
          fields:
            event_number: no
            court: $.defaultCourt
        """,
    )
    record = translate(adapter, defaultCourt="Example Crown Court", orders=[{"no": "1"}])
    assert record.case is not None
    assert record.case.events[0].court == "Example Crown Court"


def test_each_flattens_nested_lists_and_keeps_their_paths(tmp_path: Path) -> None:
    adapter = json_adapter(
        tmp_path,
        """\
        case.events[].event_number: {const: "1"}
        case.events[].offences[]:
          each: charges[*].offences[*]
          fields: {code: code}
        """,
    )
    errors = rejection(
        adapter, charges=[{"offences": [{"code": "02800"}]}, {"offences": [{"code": "bad"}]}]
    )
    assert errors == [
        ("case.events.0.offences.1.code <- charges.1.offences.0.code", "string_pattern_mismatch")
    ]
    record = translate(adapter, charges=[{"offences": {"code": "02800"}}, {"offences": None}])
    assert record.case is not None
    assert [offence.code for offence in record.case.events[0].offences] == ["02800"]
