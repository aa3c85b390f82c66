"""The delius_flat writer, and the round trip translate(parse(write_records([record]))).

`carried` states, as code, what the format carries (FORMAT.md, "What the format cannot carry"):
a record round-trips to exactly `carried(record)`.
"""

from __future__ import annotations

import csv
import io
import string
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.delius_flat import DeliusFlatAdapter, DeliusFlatConfig
from adapters.delius_flat.columns import VERSIONS
from adapters.delius_flat.writer import write_records
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
from tests.builders import PLACES, make_case_record

CSV = "text/csv"
ADAPTER = DeliusFlatAdapter(DeliusFlatConfig())


def written(records: list[CaseRecord], version: str = "v2") -> bytes:
    stream = io.BytesIO()
    write_records(records, stream, export_version=version)
    return stream.getvalue()


def round_trip(records: list[CaseRecord], version: str) -> list[CaseRecord]:
    raws = list(ADAPTER.parse(io.BytesIO(written(records, version)), CSV))
    assert all(not raw.errors for raw in raws), [raw.errors for raw in raws]
    return [ADAPTER.translate(raw.data) for raw in raws]


def _fit(values: list[str], slots: int, joiner: str) -> list[str]:
    return (
        [*values[: slots - 1], joiner.join(values[slots - 1 :])] if len(values) > slots else values
    )


def carried(record: CaseRecord, version: str) -> dict[str, Any]:
    """The record as the export carries it, dumped to JSON."""
    v1 = version == "v1"
    data = record.model_dump(mode="json")
    person = data["person"]
    crn = person["identifiers"]["crn"] or data["provenance"]["external_id"]
    updated = record.provenance.source_updated_at
    data["provenance"] = {
        "source": None,
        "external_id": crn,
        "source_version": None,
        "source_updated_at": None
        if v1 or updated is None
        else updated.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "received_at": None,
    }
    person["identifiers"]["crn"] = crn
    person["aliases"] = []
    person["forenames"] = _fit(person["forenames"], 2 if v1 else 3, " ")
    addresses = person["addresses"]
    main = [a for a in addresses if a["status"] == "MAIN"]
    address = (main or addresses or [None])[0]
    if address is not None:
        address["lines"] = _fit(address["lines"], 3, ", ")
        address["end_date"] = None
        if v1:
            address["start_date"] = None
    person["addresses"] = [address] if address else []
    contact = person["contact"]
    if v1 or contact is None or not any(contact.values()):
        person["contact"] = None
    case = data["case"]
    if case is None:
        return data
    registrations = []
    for kind in ("ROSH", "MAPPA"):
        first = next((r for r in case["registrations"] if r["type"] == kind and r["active"]), None)
        if first is not None:
            if kind == "ROSH":
                first["code"] = RoshLevel(first["rosh_level"]).delius_code
            else:
                first["code"] = first["review_date"] = None
            first["description"] = None
            if v1:
                first["start_date"] = first["review_date"] = None
            registrations.append(first)
    case["registrations"] = registrations
    if case["tier"] is not None and v1:
        case["tier"]["assessed_on"] = None
    for event in case["events"]:
        offences = event["offences"]
        offence = next((o for o in offences if o["main"]), offences[0] if offences else None)
        if offence is not None:
            offence["main"] = True
            if v1:
                offence["offence_date"] = None
        event["offences"] = [offence] if offence else []
        if v1:
            event["referral_date"] = None
            for requirement in event["requirements"]:
                requirement["programme"] = None
    if not (case["events"] or registrations or case["tier"] or case["offender_manager"]):
        data["case"] = None
    return data


# -- strategies ----------------------------------------------------------------------------------

TODAY = date.today()
# Text with the characters CSV has to quote: delimiters, quotes, line breaks.
text = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Z")) | st.sampled_from(list(",\"'\n\r\t ")),
    min_size=1,
    max_size=12,
).filter(lambda value: value.strip() != "")
codes = st.text(string.ascii_uppercase + string.digits, min_size=1, max_size=8)
dates = st.dates(date(1900, 1, 1), date(2100, 12, 31))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def date_range(draw: st.DrawFn) -> tuple[date | None, date | None]:
    start = draw(st.none() | dates)
    if start is None:
        return None, draw(st.none() | dates)
    return start, draw(
        st.none() | st.builds(lambda d: start + timedelta(days=d), st.integers(0, 999))
    )


@st.composite
def requirements(draw: st.DrawFn) -> dict[str, Any]:
    category = draw(st.sampled_from(RequirementCategory))
    units = {
        RequirementCategory.UNPAID_WORK: [RequirementUnit.HOURS],
        RequirementCategory.REHABILITATION_ACTIVITY: [RequirementUnit.DAYS],
    }.get(category, list(RequirementUnit))
    start, end = draw(date_range())
    requirement: dict[str, Any] = {
        "category": category,
        "sub_category": draw(maybe(text)),
        "programme": draw(maybe(text)),
        "start_date": start,
        "end_date": end,
    }
    if draw(st.booleans()):
        requirement["amount"] = draw(st.integers(0, 100_000))
        requirement["unit"] = draw(st.sampled_from(units))
    return requirement


@st.composite
def events(draw: st.DrawFn, number: str) -> dict[str, Any]:
    offences: list[dict[str, Any]] = draw(
        st.lists(
            st.builds(
                dict,
                code=st.from_regex(r"[0-9]{5}", fullmatch=True),
                description=maybe(text),
                offence_date=maybe(dates),
            ),
            max_size=3,
        )
    )
    main = draw(st.none() | st.integers(0, 2))
    for index, offence in enumerate(offences):
        offence["main"] = index == main
    sentence = None
    if draw(st.booleans()):
        start, end = draw(date_range())
        _, terminated = draw(date_range())
        sentence = {
            "type": draw(st.sampled_from(SentenceType)),
            "start_date": start,
            "expected_end_date": end,
            "termination_date": terminated
            if start is None or terminated is None or terminated >= start
            else None,
        }
        if draw(st.booleans()):
            sentence["length"] = draw(st.integers(1, 999))
            sentence["length_unit"] = draw(st.sampled_from(LengthUnit))
    return {
        "event_number": number,
        "referral_date": draw(maybe(dates)),
        "conviction_date": draw(maybe(dates)),
        "court": draw(maybe(text)),
        "offences": offences,
        "sentence": sentence,
        "requirements": draw(st.lists(requirements(), max_size=4)),
        "active": draw(st.booleans()),
    }


@st.composite
def registrations(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(RegistrationType))
    registration: dict[str, Any] = {
        "type": kind,
        "start_date": draw(maybe(dates)),
        "review_date": draw(maybe(dates)),
        "description": draw(maybe(text)),
        "active": draw(st.booleans()),
    }
    if kind is RegistrationType.ROSH:
        level = draw(st.sampled_from(RoshLevel))
        registration["rosh_level"] = level
        registration["code"] = draw(st.sampled_from([None, level.delius_code, "ROSH-LOCAL"]))
    elif kind is RegistrationType.MAPPA:
        registration["mappa_category"] = draw(st.integers(1, 3))
        registration["mappa_level"] = draw(st.integers(1, 3))
    return registration


@st.composite
def case_records(draw: st.DrawFn) -> CaseRecord:
    crn = draw(st.from_regex(r"[A-Z][0-9]{6}", fullmatch=True))
    has_crn = draw(st.booleans())
    start, end = draw(date_range())
    postcode, town = draw(st.sampled_from([*PLACES, ("NF1 1NF", "Nowhere")]))
    addresses: list[dict[str, Any]] = draw(
        st.lists(
            st.builds(
                dict,
                status=st.sampled_from(AddressStatus),
                lines=st.lists(text, max_size=5),
                town=maybe(st.just(town)),
                county=maybe(text),
                postcode=maybe(st.just(postcode)),
                start_date=st.just(start),
                end_date=st.just(end),
                no_fixed_abode=st.booleans(),
            ),
            max_size=3,
        )
    )
    numbers = draw(st.lists(codes, max_size=3, unique=True))
    case = None
    if draw(st.booleans()):
        case = {
            "events": [draw(events(number)) for number in numbers],
            "registrations": draw(st.lists(registrations(), max_size=4)),
            "tier": draw(
                maybe(
                    st.builds(
                        dict,
                        value=st.from_regex(r"[A-Da-d][0-3]", fullmatch=True),
                        assessed_on=maybe(dates),
                    )
                )
            ),
            "offender_manager": draw(
                maybe(
                    st.builds(
                        dict,
                        provider_code=codes,
                        team_code=maybe(codes),
                        staff_code=maybe(codes),
                        staff_name=maybe(text),
                    )
                )
            ),
        }
    offset = draw(
        st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))])
    )
    return CaseRecord.model_validate(
        {
            "provenance": {
                "external_id": draw(st.sampled_from(["ext-1", crn])) if has_crn else crn,
                "source_version": draw(maybe(codes)),
                "source_updated_at": draw(
                    maybe(
                        st.datetimes(
                            datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(offset)
                        )
                    )
                ),
            },
            "person": {
                "forenames": draw(st.lists(text, max_size=4)),
                "surname": draw(text),
                "aliases": draw(st.lists(st.builds(dict, surname=text), max_size=1)),
                "date_of_birth": draw(maybe(dates)),
                "sex": draw(maybe(st.sampled_from(Sex))),
                "addresses": addresses,
                "contact": draw(
                    maybe(
                        st.builds(
                            dict,
                            telephone=maybe(text),
                            mobile=maybe(text),
                            email=maybe(st.just("someone@example.org")),
                        )
                    )
                ),
                "identifiers": {
                    "crn": crn if has_crn else None,
                    "pnc": draw(
                        maybe(
                            st.builds(
                                make_pnc, st.integers(1900, TODAY.year), st.integers(0, 9_999_999)
                            )
                        )
                    ),
                    "cro": draw(
                        maybe(st.builds(make_cro, st.integers(0, 999_999), st.integers(0, 99)))
                    ),
                    "noms": draw(maybe(st.from_regex(r"[A-Z][0-9]{4}[A-Z]{2}", fullmatch=True))),
                    "nino": draw(maybe(st.sampled_from(["JT123456A", "AB654321D"]))),
                },
            },
            "case": case,
        }
    )


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=case_records())
def test_a_record_round_trips_to_what_the_format_carries(version: str, record: CaseRecord) -> None:
    [back] = round_trip([record], version)
    assert back.model_dump(mode="json") == carried(record, version)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_built_records_round_trip_in_one_file(version: str) -> None:
    records = [CaseRecord.model_validate(make_case_record()) for _ in range(25)]
    back = round_trip(records, version)
    assert [r.model_dump(mode="json") for r in back] == [carried(r, version) for r in records]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_header_is_the_versions_header(version: str) -> None:
    payload = written([CaseRecord.model_validate(make_case_record())], version)
    header = payload.split(b"\r\n")[0]
    assert header.decode().split(",") == VERSIONS[version].header
    assert payload.endswith(b"\r\n")
    assert not payload.startswith(b"\xef\xbb\xbf")


def test_unpaid_work_is_written_in_minutes() -> None:
    record = CaseRecord.model_validate(make_case_record())
    [first, *_] = csv.DictReader(io.StringIO(written([record]).decode()))
    assert (first["RQMNT_MAIN_CAT_CODE"], first["RQMNT_LENGTH"], first["RQMNT_LENGTH_UNITS"]) == (
        "W",
        "7200",
        "MI",
    )


def test_one_row_per_requirement_and_one_for_a_record_without_a_case() -> None:
    with_case = CaseRecord.model_validate(make_case_record())
    without = CaseRecord.model_validate(make_case_record(case=None))
    rows = list(csv.reader(io.StringIO(written([with_case, without]).decode())))
    assert len(rows) == 1 + 2 + 1


def test_the_stream_is_left_open_and_the_records_are_not_materialised() -> None:
    record = CaseRecord.model_validate(make_case_record())
    produced = 0

    def generate() -> Any:
        nonlocal produced
        for _ in range(2_000):
            produced += 1
            yield record

    stream = io.BytesIO()
    write_records(generate(), stream)
    assert not stream.closed
    assert produced == 2_000
    assert stream.getvalue().count(b"\r\n") == 1 + 2 * 2_000


def test_an_unknown_export_version_is_refused() -> None:
    with pytest.raises(ValueError, match="v1 or v2"):
        write_records([], io.BytesIO(), export_version="v3")


def test_a_cp1252_export_reads_back_with_a_cp1252_source() -> None:
    record = CaseRecord.model_validate(make_case_record(person={"surname": "Brontë"}))
    stream = io.BytesIO()
    write_records([record], stream, export_version="v1", encoding="cp1252")
    adapter = DeliusFlatAdapter(DeliusFlatConfig(encoding="cp1252"))
    [raw] = adapter.parse(io.BytesIO(stream.getvalue()), CSV)
    assert adapter.translate(raw.data).person.surname == "Brontë"
