"""Property tests: canonicalisers over every accepted surface form, and record round-trips."""

import string
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import CaseRecord
from schemas.identifiers import (
    CHECK_LETTERS,
    canonical_crn,
    canonical_cro,
    canonical_nino,
    canonical_noms,
    canonical_pnc,
    cro_check_letter,
    make_cro,
    make_pnc,
)
from schemas.postcodes import canonical_postcode

TODAY = date.today()

upper = st.sampled_from(string.ascii_uppercase)


@st.composite
def scrambled(draw: st.DrawFn, canonical: str) -> str:
    """``canonical`` with letters in random case and whitespace sprinkled in and around it."""
    chars = [c.lower() if draw(st.booleans()) else c for c in canonical]
    out = []
    for char in chars:
        out.append(draw(st.sampled_from(["", "", " ", "\t"])))
        out.append(char)
    out.append(draw(st.sampled_from(["", " "])))
    return "".join(out)


def _two_digit_year_reads_back(year: int) -> bool:
    yy = year % 100
    return (2000 + yy if yy <= TODAY.year % 100 else 1900 + yy) == year


pnc_parts = st.tuples(st.integers(1900, TODAY.year), st.integers(0, 9_999_999))


@st.composite
def pnc_surface_forms(draw: st.DrawFn) -> tuple[str, str]:
    """(a valid PNC ID in some accepted surface form, its canonical form)."""
    year, serial = draw(pnc_parts)
    canonical = make_pnc(year, serial)
    years = [f"{year:04d}"]
    if _two_digit_year_reads_back(year):
        years.append(f"{year % 100:02d}")
    year_text = draw(st.sampled_from(years))
    check = canonical[-1]
    if draw(st.booleans()):
        raw = f"{year_text}/{draw(st.sampled_from([str(serial), f'{serial:07d}']))}{check}"
    else:
        raw = f"{year_text}{serial:07d}{check}"
    return draw(scrambled(raw)), canonical


@st.composite
def cro_surface_forms(draw: st.DrawFn) -> tuple[str, str]:
    """(a valid CRO number, standard or short form, in some accepted surface form, canonical)."""
    yy = f"{draw(st.integers(0, 99)):02d}"
    if draw(st.booleans()):
        serial = draw(st.integers(0, 999_999))
        canonical = make_cro(serial, int(yy))
        raw = f"{draw(st.sampled_from([str(serial), f'{serial:06d}']))}/{yy}{canonical[-1]}"
    else:
        serial_text = draw(st.text(string.digits, min_size=1, max_size=6))
        canonical = f"SF{yy}/{serial_text}{cro_check_letter(serial_text, yy, short_form=True)}"
        raw = canonical
    return draw(scrambled(raw)), canonical


crns = st.builds(lambda letter, n: f"{letter}{n:06d}", upper, st.integers(0, 999_999))
nomses = st.builds(
    lambda a, n, b, c: f"{a}{n:04d}{b}{c}", upper, st.integers(0, 9999), upper, upper
)
ISSUABLE_PREFIXES = sorted(
    prefix
    for a in string.ascii_uppercase
    for b in string.ascii_uppercase
    if a not in "DFIQUV"
    and b not in "DFIOQUV"
    and (prefix := a + b) not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
)
ninos = st.builds(
    lambda prefix, n, suffix: f"{prefix}{n:06d}{suffix}",
    st.sampled_from(ISSUABLE_PREFIXES),
    st.integers(0, 999_999),
    st.sampled_from("ABCD"),
)


def _pnc(raw: str) -> str:
    return canonical_pnc(raw, today=TODAY)


# --- idempotence and surface forms ---------------------------------------------------------------


@given(pnc_surface_forms())
def test_pnc_surface_forms_canonicalise_idempotently(case: tuple[str, str]) -> None:
    raw, canonical = case
    assert _pnc(raw) == canonical
    assert _pnc(_pnc(raw)) == _pnc(raw)


@given(cro_surface_forms())
def test_cro_surface_forms_canonicalise_idempotently(case: tuple[str, str]) -> None:
    raw, canonical = case
    assert canonical_cro(raw) == canonical
    assert canonical_cro(canonical_cro(raw)) == canonical_cro(raw)


@pytest.mark.parametrize(
    ("canonicalise", "values"),
    [(canonical_crn, crns), (canonical_noms, nomses), (canonical_nino, ninos)],
    ids=["crn", "noms", "nino"],
)
@given(data=st.data())
def test_simple_identifiers_canonicalise_idempotently(
    canonicalise: Callable[[str], str], values: st.SearchStrategy[str], data: st.DataObject
) -> None:
    canonical = data.draw(values)
    raw = data.draw(scrambled(canonical))
    assert canonicalise(raw) == canonical
    assert canonicalise(canonicalise(raw)) == canonicalise(raw)


@given(pnc_parts)
def test_generated_pnc_always_valid(parts: tuple[int, int]) -> None:
    pnc = make_pnc(*parts)
    assert _pnc(pnc) == pnc


@given(st.integers(0, 999_999), st.integers(0, 99))
def test_generated_cro_always_valid(serial: int, yy: int) -> None:
    cro = make_cro(serial, yy)
    assert canonical_cro(cro) == cro


def _other_letters(canonical: str) -> st.SearchStrategy[str]:
    return st.sampled_from([c for c in string.ascii_uppercase if c != canonical[-1]])


@given(data=st.data())
def test_changed_pnc_check_letter_always_fails(data: st.DataObject) -> None:
    pnc = make_pnc(*data.draw(pnc_parts))
    wrong = data.draw(_other_letters(pnc))
    with pytest.raises(ValueError, match="PNC check letter should be"):
        _pnc(pnc[:-1] + wrong)


@given(data=st.data())
def test_changed_cro_check_letter_always_fails(data: st.DataObject) -> None:
    _, cro = data.draw(cro_surface_forms())
    wrong = data.draw(_other_letters(cro))
    with pytest.raises(ValueError, match="CRO check letter should be"):
        canonical_cro(cro[:-1] + wrong)


def test_check_alphabet_has_23_letters() -> None:
    assert len(CHECK_LETTERS) == len(set(CHECK_LETTERS)) == 23


# --- postcodes -----------------------------------------------------------------------------------

INWARD_LETTERS = "".join(c for c in string.ascii_uppercase if c not in "CIKMOV")


@st.composite
def postcodes(draw: st.DrawFn) -> str:
    """A canonical postcode with outward code A9, A99, AA9, AA99, A9A or AA9A."""
    area = draw(st.text(string.ascii_uppercase, min_size=1, max_size=2))
    if draw(st.booleans()):
        district = f"{draw(st.integers(0, 9))}{draw(upper)}"
    else:
        district = str(draw(st.integers(0, 99)))
    inward = f"{draw(st.integers(0, 9))}{draw(st.text(INWARD_LETTERS, min_size=2, max_size=2))}"
    return f"{area}{district} {inward}"


@given(data=st.data())
def test_postcode_canonicalises_idempotently(data: st.DataObject) -> None:
    postcode = data.draw(postcodes())
    raw = data.draw(scrambled(postcode.replace(" ", "")))
    assert canonical_postcode(raw) == postcode
    assert canonical_postcode(canonical_postcode(raw)) == postcode


# --- record round-trip ---------------------------------------------------------------------------

names = st.text(st.characters(categories=["L"]), min_size=1, max_size=30)
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2035, 12, 31))
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=1)), timezone(-timedelta(hours=5, minutes=30))]
)
aware_datetimes = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2035, 1, 1), timezones=offsets
)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def registrations(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["ROSH", "MAPPA", "CHILD_PROTECTION", "OTHER_FLAG"]))
    registration: dict[str, Any] = {"type": kind, "start_date": draw(optional(dates))}
    if kind == "ROSH":
        registration["rosh_level"] = draw(st.sampled_from(["LOW", "MEDIUM", "HIGH", "VERY_HIGH"]))
    if kind == "MAPPA":
        registration["mappa_category"] = draw(st.integers(1, 3))
        registration["mappa_level"] = draw(st.integers(1, 3))
    return registration


@st.composite
def sentences(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(dates)
    sentence: dict[str, Any] = {
        "type": draw(st.sampled_from(["COMMUNITY_ORDER", "CUSTODY", "LICENCE"])),
        "start_date": start.isoformat(),
        "expected_end_date": (start + timedelta(days=draw(st.integers(0, 3000)))).isoformat(),
    }
    if draw(st.booleans()):
        sentence["length"] = draw(st.integers(1, 120))
        sentence["length_unit"] = draw(st.sampled_from(["DAYS", "WEEKS", "MONTHS", "YEARS"]))
    return sentence


@st.composite
def case_records(draw: st.DrawFn) -> dict[str, Any]:
    """A valid case record dict with identifiers, postcodes and tier in raw surface forms."""
    pnc_raw, _ = draw(pnc_surface_forms())
    cro_raw, _ = draw(cro_surface_forms())
    record: dict[str, Any] = {
        "provenance": {
            "source": draw(optional(st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True))),
            "external_id": draw(
                st.text(string.ascii_letters + string.digits, min_size=1, max_size=128)
            ),
            "source_updated_at": draw(optional(aware_datetimes)),
            "received_at": draw(optional(aware_datetimes)),
        },
        "person": {
            "forenames": draw(st.lists(names, max_size=3)),
            "surname": draw(names),
            "date_of_birth": draw(optional(dates)),
            "sex": draw(optional(st.sampled_from(["MALE", "FEMALE", "OTHER", "NOT_KNOWN"]))),
            "aliases": draw(
                st.lists(
                    st.fixed_dictionaries(
                        {"surname": names}, optional={"forenames": st.lists(names, max_size=2)}
                    ),
                    max_size=2,
                )
            ),
            "addresses": [
                {"status": "MAIN", "postcode": draw(scrambled(draw(postcodes())))},
            ],
            "identifiers": {
                "crn": draw(optional(crns.flatmap(scrambled))),
                "pnc": draw(optional(st.just(pnc_raw))),
                "cro": draw(optional(st.just(cro_raw))),
                "noms": draw(optional(nomses.flatmap(scrambled))),
                "nino": draw(optional(ninos.flatmap(scrambled))),
            },
        },
    }
    if draw(st.booleans()):
        tier = draw(st.sampled_from("ABCD")) + draw(st.sampled_from("0123"))
        record["case"] = {
            "events": [
                {
                    "event_number": str(number),
                    "sentence": draw(optional(sentences())),
                    "requirements": [{"category": "UNPAID_WORK", "amount": 40, "unit": "HOURS"}],
                }
                for number in draw(st.sets(st.integers(1, 99), max_size=3))
            ],
            "registrations": draw(st.lists(registrations(), max_size=3)),
            "tier": {"value": draw(st.sampled_from([tier, tier.lower()]))},
        }
    jsonable: dict[str, Any] = _jsonable(record)
    return jsonable


def _jsonable(value: Any) -> Any:
    """Dates and datetimes as ISO strings, as a source would POST them."""
    if isinstance(value, dict):
        return {key: _jsonable(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_jsonable(child) for child in value]
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    return value


@given(case_records())
def test_case_record_round_trips_through_json(data: dict[str, Any]) -> None:
    record = CaseRecord.model_validate(data)
    dumped = record.model_dump(mode="json")
    again = CaseRecord.model_validate(dumped)
    assert again == record
    assert again.model_dump(mode="json") == dumped
