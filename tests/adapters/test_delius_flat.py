"""The delius_flat adapter: conformance, header versions, grouping, code lists, translate errors.

Hostile input and streaming are in test_delius_flat_hostile.py, the writer and the round trip in
test_delius_flat_writer.py. Every value here is synthetic.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from adapters.base import PayloadRejected, RawRecord, RecordRejected
from adapters.delius_flat import DeliusFlatAdapter, DeliusFlatConfig
from adapters.delius_flat import codes as delius_codes
from adapters.delius_flat.columns import VERSIONS, Scope
from adapters.testing import AdapterConformance, Malformed, Sample
from schemas import (
    AddressStatus,
    CaseRecord,
    LengthUnit,
    RegistrationType,
    RequirementCategory,
    RequirementUnit,
    RoshLevel,
    SentenceType,
    Sex,
)

SAMPLES = Path(__file__).parents[2] / "adapters" / "delius_flat" / "samples"
CSV = "text/csv"
V1 = VERSIONS["v1"]
V2 = VERSIONS["v2"]

# One valid v2 row: an offender with one community order event and 120 hours of unpaid work.
BASE_V2: dict[str, str] = {
    "CRN": "X320741",
    "PNC_ID": "2002/0073319Z",
    "FAMILY_NAME": "Fictionworth",
    "FORENAME_1": "Zebedee",
    "BIRTH_DATE": "14/03/1986",
    "GENDER_CODE": "M",
    "ADDRESS_STATUS_CODE": "M",
    "STREET_NAME": "12 Imaginary Road",
    "TOWN_CITY": "Leeds",
    "POSTCODE": "LS1 4AP",
    "NO_FIXED_ABODE": "N",
    "OM_PROVIDER_CODE": "C16",
    "OM_TEAM_CODE": "C16T01",
    "TIER_CODE": "B2",
    "ROSH_REGISTER_CODE": "RMRH",
    "EVENT_NUMBER": "1",
    "EVENT_ACTIVE": "Y",
    "CONVICTION_DATE": "02/05/2023",
    "COURT_NAME": "Fictionville Magistrates' Court",
    "MAIN_OFFENCE_CODE": "02800",
    "DISPOSAL_TYPE_CODE": "CO",
    "SENTENCE_START_DATE": "02/05/2023",
    "SENTENCE_LENGTH": "12",
    "SENTENCE_LENGTH_UNITS": "M",
    "RQMNT_MAIN_CAT_CODE": "W",
    "RQMNT_LENGTH": "7200",
    "RQMNT_LENGTH_UNITS": "MI",
    "RQMNT_START_DATE": "02/05/2023",
    "LAST_UPDATED_DATETIME": "03/06/2024 09:15:42",
}

NO_REQUIREMENT = {
    "RQMNT_MAIN_CAT_CODE": "",
    "RQMNT_LENGTH": "",
    "RQMNT_LENGTH_UNITS": "",
    "RQMNT_START_DATE": "",
}


def v2_row(**cells: str) -> dict[str, str]:
    """BASE_V2 with some cells changed."""
    return {**BASE_V2, **cells}


def csv_payload(
    rows: list[dict[str, str]],
    header: list[str] | None = None,
    *,
    newline: str = "\r\n",
) -> bytes:
    """A file with `header` (default: the v2 header) and `rows` (missing cells blank)."""
    columns = header if header is not None else V2.header
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column.strip().upper(), "") for column in columns])
    return buffer.getvalue().encode()


def adapter_with(**config: Any) -> DeliusFlatAdapter:
    return DeliusFlatAdapter(DeliusFlatConfig(**config))


def records_of(payload: bytes, **config: Any) -> list[RawRecord]:
    return list(adapter_with(**config).parse(io.BytesIO(payload), CSV))


def translated(payload: bytes, **config: Any) -> list[CaseRecord]:
    """Every record of `payload`, translated; fails on any parse error."""
    adapter = adapter_with(**config)
    raws = records_of(payload, **config)
    assert all(not raw.errors for raw in raws), [raw.errors for raw in raws]
    return [adapter.translate(raw.data) for raw in raws]


def one(payload: bytes) -> CaseRecord:
    [record] = translated(payload)
    return record


def rejection(payload: bytes) -> RecordRejected:
    """The rejection of the single record in `payload`."""
    [raw] = records_of(payload)
    assert not raw.errors, raw.errors
    with pytest.raises(RecordRejected) as caught:
        adapter_with().translate(raw.data)
    return caught.value


def paths(rejected: RecordRejected | RawRecord) -> set[str]:
    return {error["path"] for error in rejected.errors}


# -- conformance ---------------------------------------------------------------------------------


class TestDeliusFlatConformance(AdapterConformance):
    adapter = DeliusFlatAdapter(DeliusFlatConfig())
    samples: ClassVar[list[Sample]] = [
        Sample(SAMPLES / "export-v1.csv", CSV, expect_records=4),
        Sample(SAMPLES / "export-v2.csv", CSV, expect_records=6),
    ]
    malformed: ClassVar[list[Malformed]] = [
        Malformed(csv_payload([v2_row(PNC_ID="2002/0073319A")]), CSV, {"rows[0].PNC_ID"}),
        Malformed(csv_payload([v2_row(GENDER_CODE="Q")]), CSV, {"rows[0].GENDER_CODE"}),
        Malformed(csv_payload([v2_row(BIRTH_DATE="1986-03-14")]), CSV, {"rows[0].BIRTH_DATE"}),
        Malformed(
            csv_payload(
                [
                    v2_row(RQMNT_MAIN_CAT_CODE="F", RQMNT_LENGTH="20", RQMNT_LENGTH_UNITS="D"),
                    v2_row(RQMNT_LENGTH="90"),
                ]
            ),
            CSV,
            {"rows[1].RQMNT_LENGTH"},
        ),
        Malformed(csv_payload([v2_row(TIER_CODE="E1")]), CSV, {"rows[0].TIER_CODE"}),
        Malformed(csv_payload([v2_row()])[:-40], CSV, {""}),
        Malformed(
            csv_payload([v2_row(FAMILY_NAME="Fictionworth")]).replace(b"worth", b"w\xf6rth"),
            CSV,
            {"FAMILY_NAME"},
        ),
        Malformed(b"", CSV, payload_rejected=True),
        Malformed(
            b",".join(b"C%d" % n for n in range(10_000)) + b"\r\n", CSV, payload_rejected=True
        ),
        Malformed(
            csv_payload([v2_row()], [c for c in V2.header if c != "FAMILY_NAME"]),
            CSV,
            payload_rejected=True,
        ),
    ]


class TestDeliusFlatCp1252Conformance(AdapterConformance):
    adapter = DeliusFlatAdapter(DeliusFlatConfig(encoding="cp1252"))
    samples: ClassVar[list[Sample]] = [
        Sample(SAMPLES / "export-v1-cp1252.csv", CSV, expect_records=2)
    ]
    malformed: ClassVar[list[Malformed]] = [
        # A UTF-8 file (it has a BOM) sent by a source configured for cp1252.
        Malformed(b"\xef\xbb\xbf" + csv_payload([v2_row()]), CSV, payload_rejected=True),
        # 0x81 is not a cp1252 character.
        Malformed(
            csv_payload([v2_row(FAMILY_NAME="Fiction")]).replace(b"Fiction,", b"Fi\x81,"),
            CSV,
            {"FAMILY_NAME"},
        ),
    ]


def test_the_cp1252_sample_reads_its_accented_names() -> None:
    records = translated((SAMPLES / "export-v1-cp1252.csv").read_bytes(), encoding="cp1252")
    assert records[0].person.forenames == ["Zoë", "Renée"]
    assert records[0].person.surname == "Brontë-Fictionworth"


def test_the_samples_cover_every_code_list() -> None:
    records = [
        *translated((SAMPLES / "export-v1.csv").read_bytes()),
        *translated((SAMPLES / "export-v2.csv").read_bytes()),
    ]
    cases = [r.case for r in records if r.case is not None]
    categories = {q.category for c in cases for e in c.events for q in e.requirements}
    sentence_types = {e.sentence.type for c in cases for e in c.events if e.sentence}
    levels = {g.rosh_level for c in cases for g in c.registrations if g.rosh_level}
    assert categories == set(RequirementCategory)
    assert sentence_types == set(SentenceType)
    assert levels == set(RoshLevel)


# -- header and versions -------------------------------------------------------------------------


class TestHeader:
    def test_v1_is_detected_from_its_header(self) -> None:
        [first, *_] = records_of((SAMPLES / "export-v1.csv").read_bytes())
        assert first.data["export_version"] == "v1"
        assert "OFFENDER_CRN" in first.data["rows"][0]

    def test_v2_is_detected_from_its_header(self) -> None:
        [raw] = records_of(csv_payload([v2_row()]))
        assert raw.data["export_version"] == "v2"
        assert raw.data["rows"][0]["CRN"] == "X320741"

    def test_header_names_are_case_insensitive_and_trimmed(self) -> None:
        header = [f"  {name.lower()} " for name in V2.header]
        record = one(csv_payload([v2_row()], header))
        assert record.person.surname == "Fictionworth"
        assert set(records_of(csv_payload([v2_row()], header))[0].data["rows"][0]) == set(V2.header)

    def test_columns_may_come_in_any_order(self) -> None:
        assert one(csv_payload([v2_row()], sorted(V2.header))) == one(csv_payload([v2_row()]))

    def test_optional_columns_may_be_left_out(self) -> None:
        required = sorted(V2.required)
        record = one(csv_payload([v2_row()], required))
        assert record.person.surname == "Fictionworth"
        assert record.person.addresses == []
        assert record.provenance.source_updated_at is None

    def test_a_utf8_byte_order_mark_is_ignored(self) -> None:
        payload = csv_payload([v2_row()])
        assert records_of(b"\xef\xbb\xbf" + payload) == records_of(payload)

    @pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
    def test_any_line_ending_is_read(self, newline: str) -> None:
        rows = [v2_row(), v2_row(RQMNT_MAIN_CAT_CODE="F", RQMNT_LENGTH="20", RQMNT_LENGTH_UNITS="")]
        [raw] = records_of(csv_payload(rows, newline=newline))
        assert raw.position == "lines 2-3"
        assert len(raw.data["rows"]) == 2

    def test_a_header_with_both_crn_columns_is_refused(self) -> None:
        with pytest.raises(PayloadRejected, match="OFFENDER_CRN"):
            records_of(csv_payload([], ["OFFENDER_CRN", *V2.header]))

    def test_a_header_that_is_not_an_export_header_is_refused(self) -> None:
        with pytest.raises(PayloadRejected, match="not a Delius flat export header"):
            records_of(b"X320741,Fictionworth,Zebedee\r\n")

    def test_an_unknown_column_is_refused_by_name(self) -> None:
        with pytest.raises(PayloadRejected) as caught:
            records_of(csv_payload([v2_row()], [*V2.header, "PNC_NUMBR"]))
        assert "PNC_NUMBR" in caught.value.message
        assert caught.value.errors[0]["path"] == "PNC_NUMBR"

    def test_a_v1_header_with_a_v2_column_is_refused(self) -> None:
        with pytest.raises(PayloadRejected, match="FORENAME_3"):
            records_of(csv_payload([], [*V1.header, "FORENAME_3"]))

    def test_a_repeated_column_is_refused(self) -> None:
        with pytest.raises(PayloadRejected, match="more than once"):
            records_of(csv_payload([], [*V2.header, "crn "]))

    def test_a_blank_column_name_is_refused(self) -> None:
        with pytest.raises(PayloadRejected, match="column 59 has no name"):
            records_of(csv_payload([], [*V2.header, " "]))

    @pytest.mark.parametrize("version", [V1, V2])
    def test_a_missing_required_column_is_refused_with_its_path(self, version: Any) -> None:
        # Without its CRN column a header is not recognised at all (tested above).
        for column in sorted(version.required - {version.column["crn"]}):
            header = [name for name in version.header if name != column]
            with pytest.raises(PayloadRejected) as caught:
                records_of(csv_payload([], header))
            assert caught.value.errors == [
                {"path": column, "message": "required column is missing", "type": "header"}
            ]

    @pytest.mark.parametrize("payload", [b"", b"\xef\xbb\xbf", b"\r\n\r\n", b" , ,\n"])
    def test_an_empty_file_has_no_header_row(self, payload: bytes) -> None:
        with pytest.raises(PayloadRejected, match="no header row"):
            records_of(payload)

    def test_a_header_only_file_has_no_records(self) -> None:
        assert records_of(csv_payload([])) == []

    def test_a_header_with_too_many_columns_is_refused(self) -> None:
        with pytest.raises(PayloadRejected, match="10000 columns; at most 200"):
            records_of(b",".join(b"C%d" % n for n in range(10_000)))

    def test_an_undecodable_header_is_refused(self) -> None:
        with pytest.raises(PayloadRejected, match="not valid utf-8"):
            records_of(csv_payload([]).replace(b"FAMILY_NAME", b"FAMILY_N\xc4ME"))

    def test_a_header_that_is_not_valid_csv_is_refused(self) -> None:
        with pytest.raises(PayloadRejected, match="not valid CSV"):
            records_of(b'"CRN"x,FAMILY_NAME\r\n')

    def test_other_content_types_are_refused(self) -> None:
        with pytest.raises(PayloadRejected, match="text/csv"):
            list(adapter_with().parse(io.BytesIO(csv_payload([v2_row()])), "application/json"))
        raws = adapter_with().parse(io.BytesIO(csv_payload([v2_row()])), "text/csv; charset=utf-8")
        assert len(list(raws)) == 1

    def test_the_delimiter_is_configurable(self) -> None:
        payload = csv_payload([v2_row()]).replace(b",", b"|")
        [record] = translated(payload, delimiter="|")
        assert record.person.surname == "Fictionworth"

    @pytest.mark.parametrize(
        "config",
        [
            {"encoding": "no-such-codec"},
            {"encoding": "base64"},
            {"delimiter": "||"},
            {"delimiter": '"'},
            {"max_columns": 0},
            {"surprise": 1},
        ],
    )
    def test_a_bad_config_is_refused(self, config: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            DeliusFlatConfig(**config)


# -- grouping rows into records ------------------------------------------------------------------


class TestGrouping:
    def test_contiguous_rows_of_an_offender_are_one_record(self) -> None:
        rows = [
            v2_row(),
            v2_row(RQMNT_MAIN_CAT_CODE="F", RQMNT_LENGTH="20", RQMNT_LENGTH_UNITS="D"),
            v2_row(CRN="K482730", PNC_ID="", FAMILY_NAME="Madeupson"),
        ]
        first, second = records_of(csv_payload(rows))
        assert (first.external_id, first.position, len(first.data["rows"])) == (
            "X320741",
            "lines 2-3",
            2,
        )
        assert (second.external_id, second.position, len(second.data["rows"])) == (
            "K482730",
            "line 4",
            1,
        )
        assert first.data["rows"][1]["RQMNT_MAIN_CAT_CODE"] == "F"

    def test_the_crn_groups_whatever_its_spacing_and_case(self) -> None:
        [raw] = records_of(csv_payload([v2_row(CRN=" x320741"), v2_row(CRN="X 320741 ")]))
        assert raw.external_id == "X320741"
        assert one(csv_payload([v2_row(CRN=" x320741")])).provenance.external_id == "X320741"

    def test_rows_group_into_events_with_their_requirements_in_order(self) -> None:
        rows = [
            v2_row(),
            v2_row(
                EVENT_NUMBER="2",
                DISPOSAL_TYPE_CODE="SSO",
                RQMNT_MAIN_CAT_CODE="RM38",
                RQMNT_LENGTH="26",
                RQMNT_LENGTH_UNITS="",
                RQMNT_PROGRAMME="Fictional Pathways",
            ),
            v2_row(RQMNT_MAIN_CAT_CODE="F", RQMNT_LENGTH="20", RQMNT_LENGTH_UNITS="D"),
            v2_row(
                EVENT_NUMBER="2",
                DISPOSAL_TYPE_CODE="SSO",
                RQMNT_MAIN_CAT_CODE="7",
                RQMNT_LENGTH="3",
                RQMNT_LENGTH_UNITS="M",
            ),
        ]
        assert one(csv_payload(rows)).case is not None
        events = one(csv_payload(rows)).case.events  # type: ignore[union-attr]
        assert [e.event_number for e in events] == ["1", "2"]
        assert [q.category for q in events[0].requirements] == [
            RequirementCategory.UNPAID_WORK,
            RequirementCategory.REHABILITATION_ACTIVITY,
        ]
        assert [(q.category, q.amount, q.unit) for q in events[1].requirements] == [
            (RequirementCategory.ACCREDITED_PROGRAMME, 26, RequirementUnit.SESSIONS),
            (RequirementCategory.CURFEW, 3, RequirementUnit.MONTHS),
        ]
        assert events[1].requirements[0].programme == "Fictional Pathways"
        assert events[1].sentence is not None
        assert events[1].sentence.type is SentenceType.SUSPENDED_SENTENCE_ORDER

    def test_an_event_without_requirements_has_one_row(self) -> None:
        rows = [v2_row(), v2_row(EVENT_NUMBER="2", DISPOSAL_TYPE_CODE="SC", **NO_REQUIREMENT)]
        case = one(csv_payload(rows)).case
        assert case is not None
        assert [len(e.requirements) for e in case.events] == [1, 0]

    def test_an_offender_without_events_has_one_row(self) -> None:
        blank = {V2.column[key]: "" for key in V2.keys_in(Scope.EVENT)} | NO_REQUIREMENT
        record = one(csv_payload([v2_row(**blank)]))
        assert record.case is not None
        assert record.case.events == []
        assert record.case.tier is not None

    def test_a_record_with_nothing_of_a_case_has_no_case(self) -> None:
        kept = {"CRN", "FAMILY_NAME", "FORENAME_1", "BIRTH_DATE", "GENDER_CODE"}
        record = one(csv_payload([{k: v for k, v in BASE_V2.items() if k in kept}]))
        assert record.case is None
        assert record.person.addresses == []

    def test_blank_lines_are_skipped_and_lines_still_counted(self) -> None:
        payload = csv_payload([v2_row(), v2_row(CRN="K482730", PNC_ID="")])
        header, first, second = payload.split(b"\r\n")[:3]
        spaced = b"\r\n".join([header, b"", first, b",,,,", b"", second, b""])
        first_raw, second_raw = records_of(spaced)
        assert (first_raw.position, second_raw.position) == ("line 3", "line 6")

    def test_person_columns_must_repeat_on_every_row(self) -> None:
        rows = [
            v2_row(),
            v2_row(
                FAMILY_NAME="Madeupson",
                RQMNT_MAIN_CAT_CODE="F",
                RQMNT_LENGTH="20",
                RQMNT_LENGTH_UNITS="D",
            ),
        ]
        rejected = rejection(csv_payload(rows))
        assert paths(rejected) == {"rows[1].FAMILY_NAME"}
        assert "differs from rows[0]" in rejected.errors[0]["message"]

    def test_event_columns_must_repeat_on_every_row_of_the_event(self) -> None:
        rows = [
            v2_row(),
            v2_row(
                CONVICTION_DATE="03/05/2023",
                RQMNT_MAIN_CAT_CODE="F",
                RQMNT_LENGTH="20",
                RQMNT_LENGTH_UNITS="D",
            ),
        ]
        assert paths(rejection(csv_payload(rows))) == {"rows[1].CONVICTION_DATE"}

    def test_a_row_without_a_requirement_must_be_its_events_only_row(self) -> None:
        rows = [v2_row(), v2_row(**NO_REQUIREMENT)]
        assert paths(rejection(csv_payload(rows))) == {"rows[1].RQMNT_MAIN_CAT_CODE"}

    def test_a_row_without_an_event_must_be_the_offenders_only_row(self) -> None:
        rows = [
            v2_row(),
            v2_row(
                EVENT_NUMBER="",
                DISPOSAL_TYPE_CODE="",
                SENTENCE_LENGTH="",
                SENTENCE_LENGTH_UNITS="",
                SENTENCE_START_DATE="",
                **NO_REQUIREMENT,
            ),
        ]
        assert "rows[1].EVENT_NUMBER" in paths(rejection(csv_payload(rows)))

    def test_event_columns_without_an_event_number_are_an_error(self) -> None:
        assert paths(rejection(csv_payload([v2_row(EVENT_NUMBER="")]))) == {"rows[0].EVENT_NUMBER"}

    def test_an_offender_whose_rows_are_not_contiguous_is_quarantined_the_second_time(self) -> None:
        other = v2_row(CRN="K482730", PNC_ID="")
        first, middle, again = records_of(csv_payload([v2_row(), other, v2_row()]))
        assert not first.errors
        assert not middle.errors
        assert paths(again) == {"CRN"}
        assert again.errors[0]["message"].startswith("line 4: ")
        assert "contiguous" in again.errors[0]["message"]


# -- code lists ----------------------------------------------------------------------------------


def _person(**cells: str) -> Any:
    return one(csv_payload([v2_row(**cells)])).person


def _case(**cells: str) -> Any:
    case = one(csv_payload([v2_row(**cells)])).case
    assert case is not None
    return case


class TestCodes:
    @pytest.mark.parametrize(
        ("code", "sex"), [*delius_codes.SEX.items(), ("f", Sex.FEMALE), (" n ", Sex.NOT_KNOWN)]
    )
    def test_sex(self, code: str, sex: Sex) -> None:
        assert _person(GENDER_CODE=code).sex is sex

    def test_a_blank_sex_is_none(self) -> None:
        assert _person(GENDER_CODE="").sex is None

    @pytest.mark.parametrize(
        ("code", "status"), [*delius_codes.ADDRESS_STATUS.items(), ("pl", AddressStatus.POSTAL)]
    )
    def test_address_status(self, code: str, status: AddressStatus) -> None:
        assert _person(ADDRESS_STATUS_CODE=code).addresses[0].status is status

    @pytest.mark.parametrize(("code", "kind"), list(delius_codes.DISPOSAL_TYPE.items()))
    def test_disposal_type(self, code: str, kind: SentenceType) -> None:
        assert _case(DISPOSAL_TYPE_CODE=code).events[0].sentence.type is kind

    @pytest.mark.parametrize(("code", "unit"), list(delius_codes.SENTENCE_LENGTH_UNITS.items()))
    def test_sentence_length_units(self, code: str, unit: LengthUnit) -> None:
        sentence = _case(SENTENCE_LENGTH_UNITS=code.lower()).events[0].sentence
        assert (sentence.length, sentence.length_unit) == (12, unit)

    @pytest.mark.parametrize(("code", "category"), list(delius_codes.REQUIREMENT_CATEGORY.items()))
    def test_requirement_main_category(self, code: str, category: RequirementCategory) -> None:
        length, units = {"W": ("600", "MI"), "F": ("5", "D")}.get(code, ("5", ""))
        units = units or delius_codes.REQUIREMENT_DEFAULT_UNITS.get(code, "M")
        requirement = (
            _case(RQMNT_MAIN_CAT_CODE=code.lower(), RQMNT_LENGTH=length, RQMNT_LENGTH_UNITS=units)
            .events[0]
            .requirements[0]
        )
        assert requirement.category is category

    @pytest.mark.parametrize(("code", "unit"), list(delius_codes.REQUIREMENT_UNITS.items()))
    def test_requirement_units(self, code: str, unit: RequirementUnit) -> None:
        requirement = (
            _case(RQMNT_MAIN_CAT_CODE="7", RQMNT_LENGTH="9", RQMNT_LENGTH_UNITS=code)
            .events[0]
            .requirements[0]
        )
        assert (requirement.amount, requirement.unit) == (9, unit)

    @pytest.mark.parametrize(
        ("category", "default"), [("F", RequirementUnit.DAYS), ("RM38", RequirementUnit.SESSIONS)]
    )
    def test_blank_units_take_the_categorys_default(
        self, category: str, default: RequirementUnit
    ) -> None:
        requirement = (
            _case(RQMNT_MAIN_CAT_CODE=category, RQMNT_LENGTH="20", RQMNT_LENGTH_UNITS="")
            .events[0]
            .requirements[0]
        )
        assert (requirement.amount, requirement.unit) == (20, default)

    def test_a_requirement_without_a_length_has_no_amount(self) -> None:
        requirement = (
            _case(RQMNT_MAIN_CAT_CODE="3", RQMNT_LENGTH="", RQMNT_LENGTH_UNITS="")
            .events[0]
            .requirements[0]
        )
        assert (requirement.category, requirement.amount, requirement.unit) == (
            RequirementCategory.RESIDENCE,
            None,
            None,
        )

    @pytest.mark.parametrize(
        ("code", "level"),
        [
            ("RLRH", RoshLevel.LOW),
            ("RMRH", RoshLevel.MEDIUM),
            ("RHRH", RoshLevel.HIGH),
            ("rvhr", RoshLevel.VERY_HIGH),
        ],
    )
    def test_rosh_register_codes(self, code: str, level: RoshLevel) -> None:
        [rosh] = _case(ROSH_REGISTER_CODE=code, ROSH_REGISTER_DATE="01/06/2023").registrations
        assert (rosh.type, rosh.rosh_level, rosh.code) == (
            RegistrationType.ROSH,
            level,
            code.upper(),
        )
        assert rosh.start_date == date(2023, 6, 1)

    @pytest.mark.parametrize(
        ("category", "level", "expected"),
        [
            ("M1", "M3", (1, 3)),
            ("M2", "M2", (2, 2)),
            ("3", "1", (3, 1)),
            ("m2", " 2 ", (2, 2)),
        ],
    )
    def test_mappa_category_and_level(
        self, category: str, level: str, expected: tuple[int, int]
    ) -> None:
        registrations = _case(MAPPA_CATEGORY_CODE=category, MAPPA_LEVEL_CODE=level).registrations
        [mappa] = [r for r in registrations if r.type is RegistrationType.MAPPA]
        assert (mappa.mappa_category, mappa.mappa_level) == expected

    @pytest.mark.parametrize(
        ("code", "active"), [("Y", True), ("n", False), ("1", True), ("0", False), ("", True)]
    )
    def test_event_active_flag(self, code: str, active: bool) -> None:
        assert _case(EVENT_ACTIVE=code).events[0].active is active

    @pytest.mark.parametrize(("code", "nfa"), [("Y", True), ("N", False), ("1", True), ("", False)])
    def test_no_fixed_abode_flag(self, code: str, nfa: bool) -> None:
        assert _person(NO_FIXED_ABODE=code, POSTCODE="NF1 1NF").addresses[0].no_fixed_abode is nfa

    def test_tier_is_canonicalised(self) -> None:
        tier = _case(TIER_CODE="b2", TIER_DATE="20/01/2024").tier
        assert (tier.value, tier.assessed_on) == ("B2", date(2024, 1, 20))

    @pytest.mark.parametrize(
        ("column", "value"),
        [
            ("GENDER_CODE", "X"),
            ("ADDRESS_STATUS_CODE", "MAIN"),
            ("DISPOSAL_TYPE_CODE", "ORA"),
            ("SENTENCE_LENGTH_UNITS", "Q"),
            ("RQMNT_MAIN_CAT_CODE", "RM37"),
            ("RQMNT_LENGTH_UNITS", "WK"),
            ("ROSH_REGISTER_CODE", "RXRH"),
            ("MAPPA_CATEGORY_CODE", "M4"),
            ("EVENT_ACTIVE", "T"),
            ("NO_FIXED_ABODE", "maybe"),
        ],
    )
    def test_an_unknown_code_is_an_error_on_its_column(self, column: str, value: str) -> None:
        cells = {column: value}
        if column == "MAPPA_CATEGORY_CODE":
            cells["MAPPA_LEVEL_CODE"] = "M1"
        if column == "RQMNT_LENGTH_UNITS":
            cells["RQMNT_MAIN_CAT_CODE"] = "7"
        rejected = rejection(csv_payload([v2_row(**cells)]))
        assert paths(rejected) == {f"rows[0].{column}"}
        assert all(value not in e["message"] for e in rejected.errors if len(value) > 1)


# -- unpaid work minutes -------------------------------------------------------------------------


class TestUnpaidWorkMinutes:
    @pytest.mark.parametrize(
        ("minutes", "units", "hours"),
        [("7200", "MI", 120), ("4800", "", 80), ("0", "mi", 0), ("18000", "MI", 300)],
    )
    def test_minutes_become_hours(self, minutes: str, units: str, hours: int) -> None:
        [requirement] = _case(RQMNT_LENGTH=minutes, RQMNT_LENGTH_UNITS=units).events[0].requirements
        assert (requirement.category, requirement.amount, requirement.unit) == (
            RequirementCategory.UNPAID_WORK,
            hours,
            RequirementUnit.HOURS,
        )

    @pytest.mark.parametrize("minutes", ["90", "7201", "59"])
    def test_a_length_that_is_not_whole_hours_is_rejected(self, minutes: str) -> None:
        rejected = rejection(csv_payload([v2_row(RQMNT_LENGTH=minutes)]))
        assert rejected.errors == [
            {
                "path": "rows[0].RQMNT_LENGTH",
                "message": "unpaid work length is in minutes and should be a whole number of hours "
                "(a multiple of 60)",
                "type": "whole_hours",
            }
        ]

    def test_unpaid_work_in_other_units_is_rejected(self) -> None:
        rejected = rejection(csv_payload([v2_row(RQMNT_LENGTH="120", RQMNT_LENGTH_UNITS="H")]))
        assert paths(rejected) == {"rows[0].RQMNT_LENGTH_UNITS"}

    def test_minutes_on_another_category_are_rejected(self) -> None:
        cells = {"RQMNT_MAIN_CAT_CODE": "7", "RQMNT_LENGTH": "120", "RQMNT_LENGTH_UNITS": "MI"}
        assert paths(rejection(csv_payload([v2_row(**cells)]))) == {"rows[0].RQMNT_LENGTH_UNITS"}

    def test_a_category_without_default_units_needs_them(self) -> None:
        cells = {"RQMNT_MAIN_CAT_CODE": "7", "RQMNT_LENGTH": "3", "RQMNT_LENGTH_UNITS": ""}
        assert paths(rejection(csv_payload([v2_row(**cells)]))) == {"rows[0].RQMNT_LENGTH_UNITS"}

    def test_units_without_a_length_are_an_error(self) -> None:
        assert paths(rejection(csv_payload([v2_row(RQMNT_LENGTH="")]))) == {"rows[0].RQMNT_LENGTH"}

    @pytest.mark.parametrize("length", ["2 hours", "-60", "1e3", "١٢٠", "9" * 40])
    def test_a_length_that_is_not_digits_is_rejected(self, length: str) -> None:
        rejected = rejection(csv_payload([v2_row(RQMNT_LENGTH=length)]))
        assert rejected.errors[0]["path"] == "rows[0].RQMNT_LENGTH"
        assert rejected.errors[0]["type"] == "int_parsing"


# -- translate -----------------------------------------------------------------------------------


class TestTranslate:
    def test_a_full_v2_row(self) -> None:
        record = one(
            csv_payload(
                [
                    v2_row(
                        FORENAME_2="Barnaby",
                        CRO_ID="65656/91H",
                        NOMS_ID="a1234bc",
                        NI_NUMBER="JT 12 34 56 A",
                        TELEPHONE_NUMBER="01632 960001",
                        EMAIL_ADDRESS="z.fictionworth@example.org",
                        HOUSE_NUMBER="12",
                        STREET_NAME="Imaginary Road",
                        BUILDING_NAME="Flat 2, Nowhere Court",
                        DISTRICT="Fictional Estate",
                        COUNTY="West Yorkshire",
                        ADDRESS_START_DATE="1/7/2022",
                        OM_STAFF_CODE="C16A001",
                        OM_STAFF_NAME="Peregrine Notarealname",
                        MAIN_OFFENCE_DESC="Burglary in a dwelling",
                        OFFENCE_DATE="11/02/2023",
                        REFERRAL_DATE="02/05/2023",
                        EXPECTED_END_DATE="01/05/2024",
                    )
                ]
            )
        )
        assert record.provenance.external_id == "X320741"
        assert record.provenance.source is None
        assert record.provenance.source_updated_at == datetime(2024, 6, 3, 9, 15, 42, tzinfo=UTC)
        person = record.person
        assert person.forenames == ["Zebedee", "Barnaby"]
        assert person.date_of_birth == date(1986, 3, 14)
        assert person.identifiers.model_dump() == {
            "crn": "X320741",
            "pnc": "2002/0073319Z",
            "cro": "065656/91H",
            "noms": "A1234BC",
            "nino": "JT123456A",
        }
        assert person.contact is not None
        assert person.contact.telephone == "01632 960001"
        [address] = person.addresses
        assert address.lines == ["Flat 2, Nowhere Court", "12 Imaginary Road", "Fictional Estate"]
        assert (address.town, address.county, address.postcode) == (
            "Leeds",
            "West Yorkshire",
            "LS1 4AP",
        )
        assert address.start_date == date(2022, 7, 1)
        case = record.case
        assert case is not None
        assert case.offender_manager is not None
        assert case.offender_manager.staff_name == "Peregrine Notarealname"
        [event] = case.events
        [offence] = event.offences
        assert (offence.code, offence.main, offence.offence_date) == (
            "02800",
            True,
            date(2023, 2, 11),
        )
        assert event.sentence is not None
        assert event.sentence.expected_end_date == date(2024, 5, 1)

    @pytest.mark.parametrize(
        ("column", "value"),
        [
            ("PNC_ID", "2002/0073319A"),
            ("CRO_ID", "65656/91Z"),
            ("NOMS_ID", "12345"),
            ("NI_NUMBER", "QQ123456A"),
            ("POSTCODE", "LS1"),
            ("TIER_CODE", "A4"),
            ("MAIN_OFFENCE_CODE", "2800"),
            ("EMAIL_ADDRESS", "not-an-email"),
            ("FAMILY_NAME", ""),
            ("FAMILY_NAME", "F" * 101),
            ("SENTENCE_LENGTH", "0"),
            ("CRN", "Q12345"),
            ("CRN", ""),
            ("EVENT_NUMBER", "E" * 33),
        ],
    )
    def test_canonical_errors_name_the_source_cell(self, column: str, value: str) -> None:
        rejected = rejection(csv_payload([v2_row(**{column: value})]))
        assert paths(rejected) == {f"rows[0].{column}"}
        if len(value) > 2:
            assert not any(value in e["message"] for e in rejected.errors)

    @pytest.mark.parametrize(
        "value", ["1986-03-14", "31/02/1986", "14/3/86", "14.03.1986", "yesterday"]
    )
    def test_a_bad_date_is_an_error_on_its_column(self, value: str) -> None:
        rejected = rejection(csv_payload([v2_row(BIRTH_DATE=value)]))
        assert rejected.errors == [
            {
                "path": "rows[0].BIRTH_DATE",
                "message": "should be a date written dd/mm/yyyy",
                "type": "date_format",
            }
        ]

    def test_a_bad_last_updated_time_is_an_error(self) -> None:
        rejected = rejection(csv_payload([v2_row(LAST_UPDATED_DATETIME="2024-06-03T09:15")]))
        assert paths(rejected) == {"rows[0].LAST_UPDATED_DATETIME"}

    def test_a_sentence_ending_before_it_starts_is_an_error_on_its_row(self) -> None:
        rejected = rejection(csv_payload([v2_row(EXPECTED_END_DATE="01/01/2020")]))
        assert paths(rejected) == {"rows[0]"}
        assert "before start_date" in rejected.errors[0]["message"]

    def test_errors_in_several_rows_are_all_reported(self) -> None:
        rows = [
            v2_row(RQMNT_LENGTH="90"),
            v2_row(RQMNT_MAIN_CAT_CODE="ZZ", RQMNT_LENGTH="20", RQMNT_LENGTH_UNITS="D"),
        ]
        assert paths(rejection(csv_payload(rows))) == {
            "rows[0].RQMNT_LENGTH",
            "rows[1].RQMNT_MAIN_CAT_CODE",
        }

    def test_a_rejection_carries_the_crn(self) -> None:
        assert rejection(csv_payload([v2_row(GENDER_CODE="Q")])).external_id == "X320741"

    @pytest.mark.parametrize(
        ("cells", "path"),
        [
            ({"MAPPA_CATEGORY_CODE": "M1"}, "rows[0].MAPPA_LEVEL_CODE"),
            ({"MAPPA_LEVEL_CODE": "M1"}, "rows[0].MAPPA_CATEGORY_CODE"),
            (
                {"ROSH_REGISTER_CODE": "", "ROSH_REGISTER_DATE": "01/01/2024"},
                "rows[0].ROSH_REGISTER_CODE",
            ),
            ({"TIER_CODE": "", "TIER_DATE": "01/01/2024"}, "rows[0].TIER_CODE"),
            ({"OM_PROVIDER_CODE": ""}, "rows[0].OM_PROVIDER_CODE"),
            (
                {"MAIN_OFFENCE_CODE": "", "MAIN_OFFENCE_DESC": "Burglary"},
                "rows[0].MAIN_OFFENCE_CODE",
            ),
            ({"DISPOSAL_TYPE_CODE": ""}, "rows[0].DISPOSAL_TYPE_CODE"),
            ({"SENTENCE_LENGTH_UNITS": ""}, "rows[0].SENTENCE_LENGTH_UNITS"),
            ({"SENTENCE_LENGTH": ""}, "rows[0].SENTENCE_LENGTH"),
            ({"ADDRESS_STATUS_CODE": ""}, "rows[0].ADDRESS_STATUS_CODE"),
            ({"RQMNT_MAIN_CAT_CODE": ""}, "rows[0].RQMNT_MAIN_CAT_CODE"),
        ],
    )
    def test_a_value_that_needs_another_reports_the_missing_one(
        self, cells: dict[str, str], path: str
    ) -> None:
        assert path in paths(rejection(csv_payload([v2_row(**cells)])))

    def test_a_sentence_is_left_out_when_there_is_no_disposal(self) -> None:
        cells = {
            "DISPOSAL_TYPE_CODE": "",
            "SENTENCE_LENGTH": "",
            "SENTENCE_LENGTH_UNITS": "",
            "SENTENCE_START_DATE": "",
        }
        assert _case(**cells).events[0].sentence is None

    @pytest.mark.parametrize(
        ("data", "path"),
        [
            (None, ""),
            ([], ""),
            ({"export_version": "v3", "rows": [{}]}, "export_version"),
            ({"export_version": ["v2"], "rows": [{}]}, "export_version"),
            ({"export_version": "v2", "rows": []}, "rows"),
            ({"export_version": "v2"}, "rows"),
            ({"export_version": "v2", "rows": ["CRN"]}, "rows[0]"),
            ({"export_version": "v2", "rows": [{"CRN": 7}]}, "rows[0].CRN"),
            ({"export_version": "v2", "rows": [{"SURNAME": "Fictionworth"}]}, "rows[0].SURNAME"),
            ({"export_version": "v2", "rows": [BASE_V2], "extra": 1}, "extra"),
            (
                {
                    "export_version": "v2",
                    "rows": [BASE_V2],
                    "unreadable": [{"position": "line 9", "text": "X320741,Fi\\xf6"}],
                },
                "unreadable[0]",
            ),
        ],
    )
    def test_data_that_is_not_a_record_is_rejected(self, data: Any, path: str) -> None:
        with pytest.raises(RecordRejected) as caught:
            adapter_with().translate(data)
        assert path in paths(caught.value)

    def test_a_quarantined_parse_error_is_rejected_again_on_replay(self) -> None:
        [raw] = records_of(csv_payload([v2_row(), v2_row()])[:-30])
        assert raw.errors
        with pytest.raises(RecordRejected) as caught:
            adapter_with().translate(json.loads(json.dumps(raw.data)))
        assert paths(caught.value) == {"unreadable[0]"}
        assert "line 3" in caught.value.errors[0]["message"]

    def test_a_corrected_payload_translates(self) -> None:
        data = {"export_version": "v2", "rows": [BASE_V2]}
        assert adapter_with().translate(data).person.surname == "Fictionworth"

    def test_a_v1_export_translates_to_the_same_person(self) -> None:
        v1_cells = {
            V1.column[key]: BASE_V2[V2.column[key]]
            for key in V1.order
            if key in V2.column and V2.column[key] in BASE_V2
        }
        v1_cells[V1.column["active"]] = "1"
        from_v1 = one(csv_payload([v1_cells], V1.header))
        from_v2 = one(csv_payload([v2_row(LAST_UPDATED_DATETIME="")]))
        assert from_v1 == from_v2
