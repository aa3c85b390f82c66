"""Blocking and identifier keys."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.matching import BLOCKING_KEY_KINDS, MAX_KEY_LENGTH, key_cap, match_keys, view_of
from gateway.matching.keys import COARSE_KEY_RECORDS
from tests.matching.people import make_view


def _kinds(keys: list[str]) -> set[str]:
    return {key.split(":", 1)[0] for key in keys}


def test_identifier_keys() -> None:
    keys = match_keys(make_view())
    for key in (
        "crn:X320741",
        "pnc:2002/0073319Z",
        "cro:065656/91H",
        "noms:A1234BC",
        "nino:AB123456C",
    ):
        assert key in keys


def test_the_named_blocking_keys_exist() -> None:
    keys = match_keys(make_view())
    assert {"dob_out", "sn_dob", "fn_dob", "names_dob", "dmx_sn", "names_out"} <= _kinds(keys)
    assert "dob_out:1984-03-07:ZE2" in keys
    assert "dob_out:1984-03-07:KW15" in keys


def test_keys_are_unique_short_and_deterministic() -> None:
    view = make_view(
        surname="Marchbanks-Ollerenshaw-Fotheringham-Wolstenholme",
        forenames=["Bartholomew-Maximilian"],
    )
    keys = match_keys(view)
    assert len(keys) == len(set(keys))
    assert all(len(key) <= MAX_KEY_LENGTH for key in keys)
    assert keys == match_keys(view)


def test_swapped_forename_and_surname_share_a_key() -> None:
    original = make_view(forenames=["Peregrine"], surname="Quillfeather")
    swapped = make_view(forenames=["Quillfeather"], surname="Peregrine")
    shared = set(match_keys(original)) & set(match_keys(swapped))
    assert any(key.startswith("names_dob:") for key in shared)


def test_transposed_date_of_birth_shares_a_key() -> None:
    original = make_view(date_of_birth="1984-03-07", addresses=[], identifiers={"crn": None})
    transposed = make_view(date_of_birth="1984-07-03", addresses=[], identifiers={"crn": None})
    blocking = {
        key for key in match_keys(original) if not key.startswith(("pnc", "cro", "noms", "nino"))
    }
    shared = blocking & set(match_keys(transposed))
    assert any(key.startswith("dmx_sn:") for key in shared)


def test_married_surname_shares_a_key_with_the_maiden_name() -> None:
    maiden = make_view(surname="Quillfeather", identifiers={}, addresses=[])
    married = make_view(surname="Ollerenshaw", addresses=[])
    married_with_alias = make_view(
        surname="Ollerenshaw", aliases=[{"surname": "Quillfeather"}], addresses=[]
    )
    # Identifier keys aside, the forename + date of birth key survives the change ...
    assert any(k.startswith("fn_dob:") for k in set(match_keys(maiden)) & set(match_keys(married)))
    # ... and an alias surname is keyed like a surname.
    sn_keys = {k for k in match_keys(maiden) if k.startswith("sn_dob:")}
    assert sn_keys <= set(match_keys(married_with_alias))


def test_junk_and_missing_values_make_no_key() -> None:
    junk = make_view(
        forenames=["NOT ENTERED"],
        surname="NOT ENTERED",
        date_of_birth="1900-01-01",
        addresses=[{"status": "MAIN", "postcode": "NF1 1NF", "no_fixed_abode": True}],
        identifiers={"crn": None, "pnc": None, "cro": "000000/00Z", "noms": None, "nino": None},
    )
    assert match_keys(junk) == []


def test_a_placeholder_date_of_birth_keeps_the_name_and_outcode_key() -> None:
    keys = match_keys(make_view(date_of_birth="1970-01-01"))
    assert not any("1970-01-01" in key for key in keys)
    assert "names_out" in _kinds(keys)
    assert not _kinds(keys) & {"dob_out", "sn_dob", "fn_dob", "names_dob", "dmx_sn"}


@settings(max_examples=100, deadline=None)
@given(
    surname=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ -'", min_size=1, max_size=100).filter(
        lambda name: name.strip() != ""
    ),
    forename=st.text(min_size=1, max_size=100).filter(lambda name: name.strip() != ""),
)
def test_keys_are_deterministic_and_bounded(surname: str, forename: str) -> None:
    view = make_view(surname=surname, forenames=[forename])
    keys = match_keys(view)
    assert keys == match_keys(make_view(surname=surname, forenames=[forename]))
    assert all(len(key) <= MAX_KEY_LENGTH and ":" in key for key in keys)


def _abroad(**overrides: object) -> list[str]:
    address = {"status": "MAIN", "lines": ["12 Imaginary Road"], "postal_code": "98101"}
    # No identifiers and no aliases: only the blocking keys can bring two records together.
    view = make_view(addresses=[address], identifiers={}, aliases=[], **overrides)
    return [key for key in match_keys(view) if key.split(":", 1)[0] in BLOCKING_KEY_KINDS]


def test_a_postal_code_from_abroad_files_a_record_where_an_outcode_would() -> None:
    keys = _abroad()

    assert "dob_out:1984-03-07:@98101" in keys
    assert any(key.startswith("names_out:") and key.endswith(":@98101") for key in keys)


def test_records_abroad_with_other_names_or_no_date_of_birth_still_share_a_key() -> None:
    # A new name at the same address and date of birth; the same names with no date of birth.
    renamed = set(_abroad(surname="Notarealname", forenames=["Clementine"]))
    undated = set(_abroad(date_of_birth=None))
    original = set(_abroad())

    assert renamed & original
    assert undated & original
    assert not any(key.endswith(":98101") for key in original)  # never taken for an outcode


def _home(lines: list[str], town: str = "Leeds") -> dict[str, object]:
    return {"addresses": [{"status": "MAIN", "lines": lines, "town": town}]}


def test_a_record_with_its_date_of_birth_and_postcode_both_wrong_finds_its_home() -> None:
    # The house number and street (a typo late in its name too) survive where the date of
    # birth and the names are wrong.
    first = make_view(surname="Quillfeather", **_home(["Flat 2", "14 High Street"]))
    second = make_view(
        surname="Quilfeather",
        forenames=["Peregrin"],
        date_of_birth="1948-03-07",
        **_home(["14 High Stret"], town="Leedz"),
    )
    shared = _kinds(sorted(set(match_keys(first)) & set(match_keys(second))))
    assert "home" in shared
    # A flat number is not a house number: it makes no key.
    assert not any(key.startswith("home:2:") for key in match_keys(first))


def test_a_date_of_birth_and_house_number_share_a_key_when_names_and_street_differ() -> None:
    first = make_view(forenames=["Makenzi"], surname="Vimpany", **_home(["381 Maclaurin Crescent"]))
    second = make_view(
        forenames=["Makendi"], surname="Morrisn", **_home(["381", "Maclaurinc Rescent"])
    )
    assert "dob_home" in _kinds(sorted(set(match_keys(first)) & set(match_keys(second))))


def test_names_and_town_share_a_key_without_a_date_of_birth_or_postcode() -> None:
    first = make_view(date_of_birth=None, addresses=[{"status": "MAIN", "town": "Leeds"}])
    second = make_view(date_of_birth=None, addresses=[{"status": "MAIN", "town": "leeds"}])
    assert "names_town" in _kinds(sorted(set(match_keys(first)) & set(match_keys(second))))


def _lived(postcode: str | None = "ZE2 9XL", town: str | None = "Leeds") -> dict[str, object]:
    return {"addresses": [{"status": "MAIN", "postcode": postcode, "town": town}]}


def _of_kind(kind: str, **overrides: object) -> list[str]:
    return [key for key in match_keys(make_view(**overrides)) if key.startswith(f"{kind}:")]


def test_name_and_postcode_key_is_three_letters_of_each_name_code_and_the_full_postcode() -> None:
    # PEREGRINE is PRKRN and QUILLFEATHER KLF0R; a postcode from abroad is kept whole as @<code>.
    assert _of_kind("name_pc", **_lived()) == ["name_pc:PRK:ZE2 9XL", "name_pc:KLF:ZE2 9XL"]
    abroad = {"addresses": [{"status": "MAIN", "postal_code": "98101"}]}
    assert _of_kind("name_pc", **abroad) == ["name_pc:PRK:@98101", "name_pc:KLF:@98101"]


def test_one_name_at_the_same_postcode_shares_a_key_when_the_rest_differs() -> None:
    # Married (a new surname), no date of birth: the forename at the postcode still meets.
    original = make_view(identifiers={}, **_lived())
    renamed = make_view(surname="Ollerenshaw", date_of_birth=None, identifiers={}, **_lived())
    assert "name_pc:PRK:ZE2 9XL" in set(match_keys(original)) & set(match_keys(renamed))
    # A typo late in the surname keeps its first three letters (MKKR0, MKKTR0).
    typo_a = make_view(forenames=["Lucas"], surname="McCarthy", **_lived())
    typo_b = make_view(forenames=["Luca"], surname="McCadrthy", date_of_birth=None, **_lived())
    assert "name_pc:MKK:ZE2 9XL" in set(match_keys(typo_a)) & set(match_keys(typo_b))


def test_a_missing_or_no_fixed_abode_postcode_or_missing_names_make_no_name_and_postcode_key() -> (
    None
):
    assert _of_kind("name_pc", **_lived(postcode=None)) == []
    assert _of_kind("name_pc", **_lived(postcode="NF1 1NF")) == []
    assert _of_kind("name_pc", forenames=["NOT ENTERED"], surname="Unknown", **_lived()) == []


def test_date_of_birth_and_town_key_uses_the_town_code() -> None:
    assert _of_kind("dob_town", **_lived()) == ["dob_town:1984-03-07:LTS"]
    # Letters split by a typo, or another case, give the same code.
    first = _of_kind("dob_town", **_lived(town="Noble Park"))
    assert (
        first
        == _of_kind("dob_town", **_lived(town="NOBL EE PARK"))
        == ["dob_town:1984-03-07:NBLPRK"]
    )


def test_no_date_of_birth_or_no_town_makes_no_date_of_birth_and_town_key() -> None:
    assert _of_kind("dob_town", date_of_birth="1900-01-01", **_lived()) == []
    assert _of_kind("dob_town", date_of_birth=None, **_lived()) == []
    assert _of_kind("dob_town", **_lived(town=None)) == []
    assert _of_kind("dob_town", **_lived(town="123")) == []  # no letters, no code


def test_surname_initial_and_town_key_covers_alias_surnames() -> None:
    assert _of_kind("sn_fi_town", **_lived()) == ["sn_fi_town:KLF0R:P:LTS"]
    aliased = _of_kind("sn_fi_town", aliases=[{"surname": "Ollerenshaw"}], **_lived())
    assert aliased == ["sn_fi_town:KLF0R:P:LTS", "sn_fi_town:OLRNX:P:LTS"]
    # A misspelt forename with its initial kept, no date of birth and another postcode still meet.
    other = _of_kind(
        "sn_fi_town", forenames=["Peregrin"], date_of_birth=None, **_lived(postcode="LS1 4AP")
    )
    assert other == ["sn_fi_town:KLF0R:P:LTS"]


def test_no_forename_surname_or_town_makes_no_surname_initial_and_town_key() -> None:
    assert _of_kind("sn_fi_town", forenames=[], **_lived()) == []
    assert _of_kind("sn_fi_town", surname="Not Known", **_lived()) == []
    assert _of_kind("sn_fi_town", **_lived(town=None)) == []


def test_names_key_is_the_sorted_name_pair_alone() -> None:
    assert _of_kind("names") == ["names:KLF0R|PRKRN"]
    # Swapped names, another date of birth and no address still share it.
    swapped = _of_kind(
        "names",
        forenames=["Quillfeather"],
        surname="Peregrine",
        date_of_birth="1923-05-20",
        addresses=[],
    )
    assert swapped == ["names:KLF0R|PRKRN"]


def test_a_missing_or_junk_name_makes_no_names_key() -> None:
    assert _of_kind("names", forenames=[]) == []
    assert _of_kind("names", surname="NOT ENTERED") == []
    assert _of_kind("names", forenames=["Unknown"]) == []


def test_a_street_with_no_house_number_makes_no_home_key() -> None:
    view = view_of(
        {
            "forenames": ["Quentin"],
            "surname": "Fabricand",
            "date_of_birth": "1980-02-03",
            "addresses": [{"lines": ["Rose Cottage", "Mill Lane"], "town": "Leeds"}],
        }
    )

    kinds = {key.split(":", 1)[0] for key in match_keys(view)}

    assert view.streets
    assert view.streets[0].number is None
    assert not kinds & {"home", "dob_home"}


def test_coarse_keys_are_capped_lower_than_the_others() -> None:
    assert key_cap("names:FLN|KRN", 500) == COARSE_KEY_RECORDS
    assert key_cap("name_pc:FLN:@2602", 500) == COARSE_KEY_RECORDS
    assert key_cap("sn_dob:KRN:1980-02-03", 500) == 500
    # A setting below the coarse cap holds for every key.
    assert key_cap("names:FLN|KRN", 20) == 20
