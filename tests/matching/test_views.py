"""Cleaning canonical persons into MatchViews: names, junk values, derived fields."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.matching import view_of
from gateway.matching.views import clean_name
from schemas import CaseRecord
from tests.builders import make_case_record
from tests.matching.people import make_view


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("O'Neil", "ONEIL"),
        ("o\u2019neil", "ONEIL"),
        ("Smith-Jones", "SMITH JONES"),
        ("SMITH - JONES", "SMITH JONES"),
        ("  smith   jones ", "SMITH JONES"),
        ("Zoë", "ZOE"),
        ("Ångström", "ANGSTROM"),
        ("DUPLICATE_Quillfeather", "QUILLFEATHER"),
        ("MIG_ERROR_Quillfeather", "QUILLFEATHER"),
        ("mig_error_DUPLICATE_Quillfeather", "QUILLFEATHER"),
        ("NOT ENTERED", None),
        ("not  entered", None),
        ("Not-Entered", None),
        ("DUPLICATE_", None),
        ("---", None),
    ],
)
def test_clean_name(raw: str, cleaned: str | None) -> None:
    assert clean_name(raw) == cleaned


def test_a_name_in_another_script_is_kept() -> None:
    assert clean_name("Иванов") == "ИВАНОВ"


def test_forenames_are_cleaned_split_and_junk_dropped() -> None:
    view = make_view(forenames=["Mary-Ann", "NOT ENTERED", "jo"])
    assert view.forenames == ("MARY", "ANN", "JO")
    assert view.first_forenames == ("MARY",)


def test_not_entered_forename_leaves_no_forename() -> None:
    view = make_view(forenames=["NOT ENTERED"])
    assert view.forenames == ()
    assert view.first_forenames == ()


def test_junk_surname_prefix_is_stripped() -> None:
    assert make_view(surname="DUPLICATE_Quillfeather").surname == "QUILLFEATHER"
    assert make_view(surname="MIG_ERROR_Quillfeather").surname == "QUILLFEATHER"


def test_not_entered_surname_is_dropped() -> None:
    view = make_view(surname="Not Entered")
    assert view.surname is None
    assert view.surnames == ()


@pytest.mark.parametrize("placeholder", ["1900-01-01", "1970-01-01"])
def test_placeholder_dates_of_birth_are_missing(placeholder: str) -> None:
    view = make_view(date_of_birth=placeholder)
    assert view.date_of_birth is None
    assert view.dob_iso is None


def test_date_of_birth_and_its_transposition() -> None:
    view = make_view(date_of_birth="1984-03-07")
    assert view.date_of_birth == date(1984, 3, 7)
    assert view.dob_iso == "1984-03-07"
    assert view.dob_transposed_iso == "1984-07-03"
    assert make_view(date_of_birth="1984-03-13").dob_transposed_iso is None
    assert make_view(date_of_birth="1984-03-03").dob_transposed_iso is None


def test_placeholder_cro_is_removed() -> None:
    view = make_view(identifiers={"cro": "000000/00Z"})
    assert "cro" not in view.identifiers
    assert view.identifiers["pnc"] == "2002/0073319Z"


@pytest.mark.parametrize("postcode", ["NF1 1NF", "NF1 1FA", "nf11fa"])
def test_no_fixed_abode_postcodes_are_removed(postcode: str) -> None:
    view = make_view(
        addresses=[
            {"status": "MAIN", "postcode": postcode, "no_fixed_abode": True},
            {"status": "PREVIOUS", "postcode": "ZE2 9XL"},
        ]
    )
    assert view.postcodes == ("ZE2 9XL",)


def test_a_no_fixed_abode_address_with_a_real_postcode_is_not_believed() -> None:
    view = make_view(addresses=[{"status": "MAIN", "postcode": "ZE2 9XL", "no_fixed_abode": True}])
    assert view.postcodes == ()


def test_main_postcode_comes_first_and_outcodes_are_derived() -> None:
    view = make_view(
        addresses=[
            {"status": "PREVIOUS", "postcode": "KW15 1AB"},
            {"status": "MAIN", "postcode": "ZE2 9XL"},
            {"status": "POSTAL", "postcode": "ZE2 9XL"},
        ]
    )
    assert view.postcodes == ("ZE2 9XL", "KW15 1AB")
    assert view.outcodes == ("ZE2", "KW15")


def test_aliases_are_cleaned() -> None:
    view = make_view(
        aliases=[
            {"forenames": ["Perry"], "surname": "Marchbanks-Ollerenshaw"},
            {"forenames": ["NOT ENTERED"], "surname": "NOT ENTERED"},
        ]
    )
    assert view.alias_surnames == ("MARCHBANKS OLLERENSHAW",)
    assert view.alias_forenames == ("PERRY",)
    assert view.surnames == ("QUILLFEATHER", "MARCHBANKS OLLERENSHAW")
    assert view.first_forenames == ("PEREGRINE", "PERRY")


def test_nickname_group_holds_the_formal_name() -> None:
    view = make_view(forenames=["Bill"])
    assert {"BILL", "WILLIAM"} <= view.forename_groups[0]


def test_sex_not_known_is_missing() -> None:
    assert make_view(sex="NOT_KNOWN").sex is None
    assert make_view(sex="FEMALE").sex == "FEMALE"


def test_an_empty_person_gives_an_empty_view() -> None:
    view = view_of({})
    assert view.surname is None
    assert view.forenames == ()
    assert view.identifiers == {}
    assert view.postcodes == ()


_names = st.text(min_size=1, max_size=30).filter(lambda name: name.strip() != "")


@settings(max_examples=150, deadline=None)
@given(
    forenames=st.lists(_names, max_size=4),
    surname=_names,
    alias_surnames=st.lists(_names, max_size=2),
    born=st.one_of(st.none(), st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 1, 1))),
    sex=st.one_of(st.none(), st.sampled_from(["MALE", "FEMALE", "OTHER", "NOT_KNOWN"])),
)
def test_view_of_never_raises_on_a_valid_person(
    forenames: list[str],
    surname: str,
    alias_surnames: list[str],
    born: date | None,
    sex: str | None,
) -> None:
    record = make_case_record(
        person={
            "forenames": forenames,
            "surname": surname,
            "aliases": [{"surname": name} for name in alias_surnames],
            "date_of_birth": born.isoformat() if born else None,
            "sex": sex,
        }
    )
    person = CaseRecord.model_validate(record).person.model_dump(mode="json")
    view = view_of(person)
    assert all(name and name == name.strip() for name in view.forenames)
    assert view.date_of_birth is None or view.date_of_birth == born


def test_a_postal_code_from_abroad_is_compared_as_text_without_an_outcode() -> None:
    from gateway.matching import view_of

    view = view_of(
        {
            "surname": "Ashdown",
            "addresses": [{"status": "MAIN", "postcode": None, "postal_code": "75001"}],
        }
    )

    assert "75001" in view.postcode_set
    assert view.outcodes == ()
