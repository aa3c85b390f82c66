"""The xml_case_export writer: the inverse of the adapter, streaming a whole export document."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.testing import parse_all
from adapters.xml_case_export import XmlCaseExportAdapter, write_records
from adapters.xml_case_export.format import CONTACT_NAMESPACE, EXPORT_NAMESPACE
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
from schemas.identifiers import make_cro, make_pnc
from tests.builders import make_case_record

XML = "application/xml"
ADAPTER = XmlCaseExportAdapter()
EXPORTED_AT = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)


def written(records: list[CaseRecord]) -> bytes:
    buffer = io.BytesIO()
    write_records(records, buffer, exported_at=EXPORTED_AT)
    return buffer.getvalue()


def round_trip(records: list[CaseRecord]) -> list[CaseRecord]:
    raws = parse_all(ADAPTER, written(records), XML)
    assert all(not raw.errors for raw in raws)
    assert [raw.external_id for raw in raws] == [r.provenance.external_id for r in records]
    return [ADAPTER.translate(raw.data) for raw in raws]


def test_built_records_come_back_unchanged() -> None:
    records = [CaseRecord.model_validate(make_case_record()) for _ in range(20)]
    assert round_trip(records) == records


def test_the_document_is_the_format_with_both_namespaces() -> None:
    payload = written([CaseRecord.model_validate(make_case_record())])
    assert payload.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ElementTree.fromstring(payload)  # noqa: S314 - our own output
    assert root.tag == f"{{{EXPORT_NAMESPACE}}}CaseExport"
    assert root.get("exportedAt") == "2024-03-01T02:00:00Z"
    assert root.find(f".//{{{CONTACT_NAMESPACE}}}Address") is not None
    assert root.findtext(f".//{{{EXPORT_NAMESPACE}}}Type") == "Community Order"


def test_an_empty_export_is_a_root_with_no_cases() -> None:
    payload = written([])
    assert parse_all(ADAPTER, payload, XML) == []


def test_the_writer_streams_records_as_it_reads_them() -> None:
    base = CaseRecord.model_validate(make_case_record())
    writes: list[int] = []

    class Recording(io.BytesIO):
        def write(self, data: Any) -> int:
            writes.append(len(data))
            return super().write(data)

    def records() -> Iterator[CaseRecord]:
        for count in range(2_000):
            if count == 1_500:
                assert writes, "nothing written after 1,500 records"
            yield base

    write_records(records(), Recording())
    assert len(writes) > 5


def test_a_case_with_nothing_in_it_stays_a_case() -> None:
    record = CaseRecord.model_validate(
        make_case_record(
            case={"events": [], "registrations": [], "tier": None, "offender_manager": None}
        )
    )
    (back,) = round_trip([record])
    assert back.case is not None
    assert back == record
    assert b"<Events/>" in written([record])


def test_markup_characters_and_line_breaks_survive() -> None:
    tricky = "A & B <\"quoted\"> 'single'\r\n\ttabbed"
    record = CaseRecord.model_validate(
        make_case_record(
            provenance={"external_id": 'id "with" <markup> &\ttab', "source_version": "v\n2"},
            person={"contact": {"telephone": tricky}},
        )
    )
    (back,) = round_trip([record])
    assert back == record
    assert back.person.contact is not None
    assert back.person.contact.telephone == tricky


def test_characters_xml_cannot_carry_are_written_as_replacement_characters() -> None:
    record = CaseRecord.model_validate(
        make_case_record(person={"contact": {"telephone": "0113\x00496\x1b0000\ufffe"}})
    )
    (back,) = round_trip([record])
    assert back.person.contact is not None
    assert back.person.contact.telephone == "0113\ufffd496\ufffd0000\ufffd"


def test_exported_at_must_carry_an_offset() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        write_records([], io.BytesIO(), exported_at=datetime(2024, 3, 1))


# Hypothesis: any record the format can carry comes back unchanged.

_PLAIN = st.characters(blacklist_categories=("Cs", "Cc", "Cn"))
TEXT = st.text(st.one_of(_PLAIN, st.sampled_from("&<>\"'\t\n\r")), min_size=1, max_size=30).filter(
    str.strip
)
CODE = st.text(st.one_of(_PLAIN, st.sampled_from("&<>\"' ")), min_size=1, max_size=20).filter(
    str.strip
)
# A name word: no whitespace of any kind and no comma (see FORMAT.md, "Round trip").
WORD = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc", "Cn", "Zs", "Zl", "Zp"), blacklist_characters=","
    ),
    min_size=1,
    max_size=12,
).filter(lambda word: word.split() == [word])
DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))
OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=1)), timezone(-timedelta(hours=5, minutes=30))]
)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def dated(draw: st.DrawFn, first: str, later: str) -> dict[str, Any]:
    start = draw(optional(DATES))
    end = draw(optional(st.integers(0, 3_000)))
    values: dict[str, Any] = {first: start}
    if end is not None:
        values[later] = (start or date(1900, 1, 1)) + timedelta(days=end)
    return values


@st.composite
def people(draw: st.DrawFn) -> dict[str, Any]:
    def address() -> dict[str, Any]:
        return {
            "status": draw(st.sampled_from(list(AddressStatus))),
            "lines": draw(st.lists(TEXT, max_size=3)),
            "town": draw(optional(TEXT)),
            "county": draw(optional(TEXT)),
            "postcode": draw(optional(st.sampled_from(["SW1A 1AA", "ls14ap", "NF1 1NF"]))),
            "no_fixed_abode": draw(st.booleans()),
            **dated(draw, "start_date", "end_date"),
        }

    return {
        "surname": " ".join(draw(st.lists(WORD, min_size=1, max_size=3))),
        "forenames": draw(st.lists(WORD, max_size=4)),
        "aliases": [
            {
                "surname": draw(WORD),
                "forenames": draw(st.lists(WORD, max_size=2)),
                "date_of_birth": draw(optional(DATES)),
            }
            for _ in range(draw(st.integers(0, 2)))
        ],
        "date_of_birth": draw(optional(DATES)),
        "sex": draw(optional(st.sampled_from(list(Sex)))),
        "addresses": [address() for _ in range(draw(st.integers(0, 2)))],
        "contact": draw(
            optional(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "telephone": TEXT,
                        "mobile": TEXT,
                        "email": st.sampled_from(["a.b@example.org", "x+y@example.co.uk"]),
                    },
                )
            )
        ),
        "identifiers": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "crn": st.from_regex(r"[A-Z][0-9]{6}", fullmatch=True),
                    "pnc": st.builds(make_pnc, st.integers(1950, 2024), st.integers(0, 9_999_999)),
                    "cro": st.builds(make_cro, st.integers(0, 999_999), st.integers(0, 99)),
                    "noms": st.from_regex(r"[A-Z][0-9]{4}[A-Z]{2}", fullmatch=True),
                    "nino": st.sampled_from(["AB123456C", "CE654321A"]),
                },
            )
        ),
    }


@st.composite
def events(draw: st.DrawFn, number: str) -> dict[str, Any]:
    offences = draw(st.integers(0, 3))
    main = draw(optional(st.integers(0, max(offences - 1, 0))))
    sentence = None
    if draw(st.booleans()):
        start = draw(optional(DATES))
        after = start or date(1900, 1, 1)
        length = draw(optional(st.integers(1, 999)))
        sentence = {
            "type": draw(st.sampled_from(list(SentenceType))),
            "length": length,
            "length_unit": None if length is None else draw(st.sampled_from(list(LengthUnit))),
            "start_date": start,
            "expected_end_date": draw(optional(st.just(after + timedelta(days=365)))),
            "termination_date": draw(optional(st.just(after + timedelta(days=30)))),
        }
    requirements = []
    for _ in range(draw(st.integers(0, 3))):
        category = draw(st.sampled_from(list(RequirementCategory)))
        fixed = {
            RequirementCategory.UNPAID_WORK: RequirementUnit.HOURS,
            RequirementCategory.REHABILITATION_ACTIVITY: RequirementUnit.DAYS,
        }.get(category)
        amount = draw(optional(st.integers(0, 999_999_999)))
        requirements.append(
            {
                "category": category,
                "sub_category": draw(optional(TEXT)),
                "amount": amount,
                "unit": None
                if amount is None
                else fixed or draw(st.sampled_from(list(RequirementUnit))),
                "programme": draw(optional(TEXT)),
                **dated(draw, "start_date", "end_date"),
            }
        )
    return {
        "event_number": number,
        "referral_date": draw(optional(DATES)),
        "conviction_date": draw(optional(DATES)),
        "court": draw(optional(TEXT)),
        "offences": [
            {
                "code": draw(st.from_regex(r"[0-9]{5}", fullmatch=True)),
                "description": draw(optional(TEXT)),
                "offence_date": draw(optional(DATES)),
                "main": index == main,
            }
            for index in range(offences)
        ],
        "sentence": sentence,
        "requirements": requirements,
        "active": draw(st.booleans()),
    }


@st.composite
def registrations(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(list(RegistrationType)))
    registration: dict[str, Any] = {
        "type": kind,
        "description": draw(optional(TEXT)),
        "start_date": draw(optional(DATES)),
        "review_date": draw(optional(DATES)),
        "active": draw(st.booleans()),
        "code": draw(optional(CODE)),
    }
    if kind is RegistrationType.ROSH:
        level = draw(st.sampled_from(list(RoshLevel)))
        registration["rosh_level"] = level
        registration["code"] = draw(optional(st.just(level.delius_code)))
    if kind is RegistrationType.MAPPA:
        registration["mappa_category"] = draw(st.integers(1, 3))
        registration["mappa_level"] = draw(st.integers(1, 3))
    return registration


@st.composite
def case_records(draw: st.DrawFn) -> CaseRecord:
    case = None
    if draw(st.booleans()):
        numbers = draw(st.lists(CODE, max_size=3, unique_by=str.strip))
        case = {
            "events": [draw(events(number)) for number in numbers],
            "registrations": draw(st.lists(registrations(), max_size=3)),
            "tier": draw(
                optional(
                    st.fixed_dictionaries(
                        {"value": st.from_regex(r"[A-Da-d][0-3]", fullmatch=True)},
                        optional={"assessed_on": DATES},
                    )
                )
            ),
            "offender_manager": draw(
                optional(
                    st.fixed_dictionaries(
                        {"provider_code": CODE},
                        optional={"team_code": CODE, "staff_code": CODE, "staff_name": TEXT},
                    )
                )
            ),
        }
    return CaseRecord.model_validate(
        {
            "provenance": {
                "external_id": draw(CODE),
                "source_version": draw(optional(CODE)),
                "source_updated_at": draw(
                    optional(
                        st.datetimes(
                            min_value=datetime(1990, 1, 1),
                            max_value=datetime(2099, 1, 1),
                            timezones=OFFSETS,
                        )
                    )
                ),
            },
            "person": draw(people()),
            "case": case,
        }
    )


@given(records=st.lists(case_records(), min_size=1, max_size=3))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_record_the_format_carries_comes_back_unchanged(records: list[CaseRecord]) -> None:
    assert round_trip(records) == records
