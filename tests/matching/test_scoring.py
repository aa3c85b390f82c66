"""Scoring pairs: every comparison level, term frequencies, bands, guards, properties."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.matching import Band, Bands, MatchModel, MatchView, load_model, score
from tests.matching.people import canonical_person, make_view

MODEL = load_model()
NO_IDENTIFIERS: dict[str, Any] = {
    "identifiers": {"crn": None, "pnc": None, "cro": None, "noms": None, "nino": None}
}


def _level(a: MatchView, b: MatchView, field: str) -> str:
    (found,) = [c for c in score(a, b, MODEL).comparisons if c.field == field]
    return found.level


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [
        ("Peregrine", "peregrine", "exact"),
        ("Bill", "William", "nickname"),
        ("Peregrine", "Peregrnie", "jaro_winkler_0.92"),
        ("Zebedee", "Zebadiah", "phonetic"),
        ("Ottoline", "Ottilie", "jaro_winkler_0.80"),
        ("P", "Peregrine", "initial"),
        ("Peregrine", "Barnaby", "different"),
        ("Peregrine", "NOT ENTERED", "missing"),
    ],
)
def test_forename_levels(first: str, second: str, level: str) -> None:
    a, b = make_view(forenames=[first]), make_view(forenames=[second])
    assert _level(a, b, "forename") == level


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [
        ("Quillfeather", "QUILLFEATHER", "exact"),
        ("Quillfeather", "Quillfeathre", "jaro_winkler_0.92"),
        ("Kathryn", "Cathrine", "phonetic"),
        ("Quillfeather", "Quilterson", "jaro_winkler_0.80"),
        ("Quillfeather", "Ollerenshaw", "different"),
        ("Quillfeather", "NOT ENTERED", "missing"),
    ],
)
def test_surname_levels(first: str, second: str, level: str) -> None:
    assert _level(make_view(surname=first), make_view(surname=second), "surname") == level


def test_surname_agrees_with_the_other_sides_alias() -> None:
    maiden = make_view(surname="Quillfeather")
    married = make_view(surname="Ollerenshaw", aliases=[{"surname": "Quillfeather"}])
    assert _level(maiden, married, "surname") == "exact"
    assert _level(married, maiden, "surname") == "exact"


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [
        ("1984-03-07", "1984-03-07", "exact"),
        ("1984-03-07", "1984-07-03", "day_month_transposed"),
        ("1984-03-07", "1984-03-08", "typo"),
        ("1984-03-17", "1984-03-71" if False else "1984-03-17", "exact"),
        ("1984-03-12", "1984-03-21", "typo"),
        ("1984-03-28", "1984-04-09", "within_month"),
        ("1984-03-07", "1984-11-23", "within_year"),
        ("1984-12-30", "1985-06-02", "within_year"),
        ("1984-03-07", "1991-11-23", "different"),
        ("1984-03-07", "1900-01-01", "missing"),
    ],
)
def test_date_of_birth_levels(first: str, second: str, level: str) -> None:
    a, b = make_view(date_of_birth=first), make_view(date_of_birth=second)
    assert _level(a, b, "date_of_birth") == level


def _addresses(*postcodes: str) -> dict[str, Any]:
    return {"addresses": [{"status": "MAIN", "postcode": postcode} for postcode in postcodes]}


def _home(
    lines: list[str],
    *,
    town: str | None = None,
    postcode: str | None = None,
    abroad: str | None = None,
) -> dict[str, Any]:
    address: dict[str, Any] = {"status": "MAIN", "lines": lines, "town": town, "postcode": postcode}
    if abroad is not None:
        address["postal_code"] = abroad
    return {"addresses": [address]}


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [
        (("ZE2 9XL",), ("KW15 1AB", "ZE2 9XL"), "postcode"),
        (("ZE2 9XL",), ("ZE2 7AB",), "area"),
        (("ZE2 9XL",), ("KW15 1AB",), "different"),
        (("ZE2 9XL",), ("NF1 1NF",), "missing"),
    ],
)
def test_address_levels_on_postcodes(
    first: tuple[str, ...], second: tuple[str, ...], level: str
) -> None:
    a, b = make_view(**_addresses(*first)), make_view(**_addresses(*second))
    assert _level(a, b, "address") == level


HIGH_ST = ["Flat 2", "14 High Street"]


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [
        # A home: the house number and a street line agree (a flat line is not the number).
        (
            _home(HIGH_ST, postcode="LS1 4AB"),
            _home(["14 High St"], postcode="LS1 4AB"),
            "street_postcode",
        ),
        (
            _home(HIGH_ST, postcode="LS1 4AB"),
            _home(["14 Hihg Street"], postcode="LS1 4AX"),
            "street_area",
        ),
        (
            _home(["14", "High Street"], town="Leeds"),
            _home(["14 High Street"], town="Leeds"),
            "street_area",
        ),
        (_home(HIGH_ST, town="Leeds"), _home(["14 High Street"], town="York"), "street"),
        # The street alone, or the number alone, is not a home.
        (
            _home(HIGH_ST, postcode="LS1 4AB"),
            _home(["16 High Street"], postcode="LS1 4AB"),
            "postcode",
        ),
        (_home(HIGH_ST, town="Leeds"), _home(["14 Mill Lane"], town="Leeds"), "area"),
        # Postal codes from abroad name a district: an area, like one a character off.
        (
            _home(["7", "Brache Place"], abroad="2602"),
            _home(["9 Fuller Street"], abroad="2602"),
            "area",
        ),
        (
            _home(["7 Brache Place"], abroad="2602"),
            _home(["9 Fuller Street"], abroad="2612"),
            "area",
        ),
        (
            _home(["7 Brache Place"], abroad="2602"),
            _home(["7 Brache Place"], abroad="2602"),
            "street_area",
        ),
        (
            _home(["7 Brache Place"], town="Leeds"),
            _home(["9 Fuller Street"], town="York"),
            "different",
        ),
        # A house number left out is unknown, not different: the street line still agrees.
        (
            _home(["Palana Place"], town="Leeds"),
            _home(["Palana Place"], town="Leeds"),
            "street_area",
        ),
        (
            _home(["Sternberg Crescent"], town="Leeds"),
            _home(["631 Sternberg Crescent"], town="Leeds"),
            "street_area",
        ),
        (_home(["Rose Cottage"], town="Leeds"), _home(["Mill House"], town="Leeds"), "area"),
        # Missing only when no part is held by both.
        (_home(["7 Brache Place"]), _home([], town="York"), "missing"),
    ],
)
def test_address_levels(first: dict[str, Any], second: dict[str, Any], level: str) -> None:
    assert _level(make_view(**first), make_view(**second), "address") == level


def test_a_shared_home_counts_once() -> None:
    home = _home(HIGH_ST, town="Leeds", postcode="LS1 4AB")
    result = score(make_view(**home), make_view(**home), MODEL)
    assert [c.field for c in result.comparisons].count("address") == 1
    assert "postcode" not in {c.field for c in result.comparisons}


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [
        (["Ann", "Marie"], ["Ann", "Marie"], "exact"),
        (["Ann", "M"], ["Ann", "Marie"], "initial"),
        (["Ann", "M"], ["Ann", "M"], "initial"),
        (["Ann", "Marie"], ["Ann", "Louise"], "different"),
        (["Ann"], ["Ann", "Louise"], "missing"),
    ],
)
def test_middle_name_levels(first: list[str], second: list[str], level: str) -> None:
    a, b = make_view(forenames=first), make_view(forenames=second)
    assert _level(a, b, "middle_name") == level


def test_sex_levels() -> None:
    assert _level(make_view(sex="MALE"), make_view(sex="MALE"), "sex") == "exact"
    assert _level(make_view(sex="MALE"), make_view(sex="FEMALE"), "sex") == "different"
    assert _level(make_view(sex="MALE"), make_view(sex="NOT_KNOWN"), "sex") == "missing"


@pytest.mark.parametrize("kind", ["crn", "pnc", "cro", "noms", "nino"])
def test_identifier_levels(kind: str) -> None:
    other = {
        "crn": "Y123456",
        "pnc": "1979/0163001B",
        "cro": "SF05/482703J",
        "noms": "B2345CD",
        "nino": "CE654321A",
    }[kind]
    base = make_view()
    assert _level(base, make_view(), kind) == "exact"
    assert _level(base, make_view(identifiers={kind: other}), kind) == "different"
    assert _level(base, make_view(identifiers={kind: None}), kind) == "missing"


def test_missing_levels_weigh_nothing() -> None:
    result = score(make_view(**NO_IDENTIFIERS), make_view(**NO_IDENTIFIERS), MODEL)
    assert all(c.weight == 0.0 for c in result.comparisons if c.level == "missing")


def _with_term_frequencies(tables: dict[str, dict[str, float]]) -> MatchModel:
    return MatchModel.model_validate({**MODEL.model_dump(), "term_frequencies": tables})


def test_a_rare_surname_agreeing_weighs_more_than_a_common_one() -> None:
    model = _with_term_frequencies({"surname": {"SMITH": 0.03, "QUILLFEATHER": 0.00002}})

    def surname_weight(surname: str) -> float:
        a, b = make_view(surname=surname), make_view(surname=surname)
        (found,) = [c for c in score(a, b, model).comparisons if c.field == "surname"]
        assert found.level == "exact_tf"
        return found.weight

    assert surname_weight("Quillfeather") > surname_weight("Smith")
    # A value outside the table counts as at most as common as the rarest value in it.
    assert surname_weight("Ollerenshaw") >= surname_weight("Quillfeather")
    # Common names weigh less than the untable'd default, rare names more.
    assert surname_weight("Smith") < MODEL.comparisons["surname"].level("exact").weight


def test_term_frequency_adjustment_is_bounded() -> None:
    model = _with_term_frequencies({"forename": {"PEREGRINE": 1e-12}})
    a, b = make_view(), make_view()
    (found,) = [c for c in score(a, b, model).comparisons if c.field == "forename"]
    floor = model.comparisons["forename"].tf_minimum_u
    assert floor is not None
    assert found.weight == pytest.approx(math.log2(0.86 / floor), rel=0.05)


def test_same_person_links_and_strangers_are_new() -> None:
    assert score(make_view(), make_view(), MODEL).band is Band.LINK
    stranger = make_view(
        forenames=["Barnaby"],
        surname="Ollerenshaw",
        date_of_birth="1991-11-23",
        sex="FEMALE",
        **_addresses("KW15 1AB"),
        **NO_IDENTIFIERS,
    )
    assert score(make_view(**NO_IDENTIFIERS), stranger, MODEL).band is Band.NEW


def test_bands_follow_the_thresholds() -> None:
    result = score(make_view(), make_view(), MODEL)
    assert result.match_weight == pytest.approx(
        result.prior_weight + sum(c.weight for c in result.comparisons)
    )
    assert result.probability == pytest.approx(
        2**result.match_weight / (1 + 2**result.match_weight)
    )
    strict = MatchModel.model_validate(
        {**MODEL.model_dump(), "bands": {"link": 1000.0, "possible": -1000.0}}
    )
    assert score(make_view(), make_view(), strict).band is Band.POSSIBLE


def test_twins_are_kept_new_on_positive_evidence() -> None:
    household = {
        "surname": "Quillfeather",
        "date_of_birth": "1984-03-07",
        **_addresses("ZE2 9XL"),
        **NO_IDENTIFIERS,
    }
    first = make_view(forenames=["Peregrine", "Zebedee"], sex="MALE", **household)
    for evidence in (
        {"forenames": ["Barnaby", "Zebedee"], "sex": "FEMALE"},  # another sex
        {"forenames": ["Barnaby", "Ignatius"], "sex": "MALE"},  # another middle name
    ):
        result = score(first, make_view(**evidence, **household), MODEL)
        assert result.band is Band.NEW
        assert "twins" in result.guards
        # The weight says what the decision was: below the review band, odds against.
        assert result.guard_weight < 0
        assert result.match_weight < MODEL.bands.possible
        assert result.probability < 0.5
    # Another first name alone is as often a replaced one: the weights decide.
    alone = score(first, make_view(forenames=["Barnaby", "Zebedee"], **household), MODEL)
    assert "twins" not in alone.guards
    assert alone.guard_weight == 0
    # Not twins when the forenames are the same name in another form.
    nickname = score(
        make_view(forenames=["William"], sex="MALE", **household),
        make_view(forenames=["Bill"], sex="FEMALE", **household),
        MODEL,
    )
    assert "twins" not in nickname.guards
    initial = score(first, make_view(forenames=["P", "Ignatius"], **household), MODEL)
    assert "twins" not in initial.guards


def test_twins_guard_needs_a_shared_address_not_just_another_forename() -> None:
    # Same surname and date of birth, another forename, different addresses: the forename may
    # be a replaced one, so the weight decides, not the guard.
    person = {"surname": "Quillfeather", "date_of_birth": "1984-03-07", **NO_IDENTIFIERS}
    first = make_view(forenames=["Peregrine"], **_addresses("ZE2 9XL"), **person)
    second = make_view(forenames=["Barnaby"], **_addresses("KW15 1AB"), **person)

    assert "twins" not in score(first, second, MODEL).guards


def test_twins_guard_does_not_apply_when_an_identifier_agrees() -> None:
    first = make_view(forenames=["Peregrine"])
    second = make_view(forenames=["Barnaby"])
    assert "twins" not in score(first, second, MODEL).guards


def test_a_conflicting_strong_identifier_caps_the_band_at_possible() -> None:
    result = score(make_view(), make_view(identifiers={"pnc": "1979/0163001B"}), MODEL)
    assert result.band is Band.POSSIBLE
    assert result.guards == ("identifier_conflict:pnc",)
    assert result.identifiers_conflict == ("pnc",)
    assert set(result.identifiers_agree) == {"crn", "cro", "noms", "nino"}


def test_a_conflicting_nino_is_not_a_strong_conflict() -> None:
    result = score(make_view(), make_view(identifiers={"nino": "CE654321A"}), MODEL)
    assert result.identifiers_conflict == ()
    assert result.band is Band.LINK


def test_explanation_is_json_and_holds_no_personal_values() -> None:
    person = canonical_person()
    result = score(make_view(), make_view(), MODEL).as_dict()
    text = json.dumps(result)
    assert {"match_weight", "probability", "band", "prior_weight", "guards", "comparisons"} <= set(
        result
    )
    for value in (
        "PEREGRINE",
        "Peregrine",
        "QUILLFEATHER",
        "1984-03-07",
        "ZE2",
        "X320741",
        "A1234BC",
    ):
        assert value not in text
    assert person["identifiers"]["pnc"] not in text


_forenames = st.sampled_from(
    ["Peregrine", "Perry", "Bill", "William", "Zebedee", "P", "NOT ENTERED"]
)
_surnames = st.sampled_from(
    ["Quillfeather", "Quilfeather", "Ollerenshaw", "Smith-Jones", "MIG_ERROR_Smith"]
)
_dates = st.sampled_from(["1984-03-07", "1984-07-03", "1984-03-08", "1970-01-01", "1991-11-23"])
_postcodes = st.sampled_from(["ZE2 9XL", "ZE2 7AB", "KW15 1AB", "NF1 1NF"])
_pncs = st.sampled_from([None, "2002/0073319Z", "1979/0163001B"])


@st.composite
def _persons(draw: st.DrawFn) -> dict[str, Any]:
    return canonical_person(
        forenames=draw(st.lists(_forenames, min_size=0, max_size=2)),
        surname=draw(_surnames),
        aliases=[{"surname": s} for s in draw(st.lists(_surnames, max_size=2))],
        date_of_birth=draw(_dates),
        sex=draw(st.sampled_from(["MALE", "FEMALE", "NOT_KNOWN"])),
        addresses=[{"status": "MAIN", "postcode": draw(_postcodes)}],
        identifiers={"crn": None, "pnc": draw(_pncs), "cro": None, "noms": None, "nino": None},
    )


@settings(max_examples=200, deadline=None)
@given(a=_persons(), b=_persons())
def test_score_is_symmetric(a: dict[str, Any], b: dict[str, Any]) -> None:
    from gateway.matching import view_of

    x, y = view_of(a), view_of(b)
    forward, backward = score(x, y, MODEL), score(y, x, MODEL)
    assert forward.match_weight == backward.match_weight
    assert forward.band is backward.band
    assert forward.guards == backward.guards


@settings(max_examples=100, deadline=None)
@given(person=_persons())
def test_a_record_links_to_a_cleaned_copy_of_itself(person: dict[str, Any]) -> None:
    from gateway.matching import view_of

    view = view_of(person)
    if not (view.forenames and view.surname) or view.date_of_birth is None:
        return
    copy = view_of({**person, "surname": person["surname"].upper()})
    assert score(view, copy, MODEL).band is Band.LINK


def _plain(**person: Any) -> MatchView:
    return make_view(**NO_IDENTIFIERS, **person)


def test_forename_and_surname_swapped_are_compared_crosswise() -> None:
    right_way = _plain(forenames=["Peregrine"], surname="Quillfeather")
    swapped = _plain(forenames=["Quillfeather"], surname="Peregrine")
    typo_swapped = _plain(forenames=["Quillfaether"], surname="Peregrine")

    pair = score(right_way, swapped, MODEL)
    near = score(typo_swapped, right_way, MODEL)

    assert "names_swapped" in pair.guards
    assert [c.level for c in pair.comparisons[:2]] == ["exact", "exact"]
    assert pair.band is Band.LINK
    assert pair.match_weight == score(swapped, right_way, MODEL).match_weight
    assert [c.level for c in near.comparisons[:2]] == ["jaro_winkler_0.92", "exact"]


def test_swapped_names_with_a_typo_in_each_are_still_a_swap() -> None:
    right_way = _plain(forenames=["Vanessa"], surname="Reid")
    swapped = _plain(forenames=["Rwid"], surname="Vanesda")

    pair = score(right_way, swapped, MODEL)

    assert "names_swapped" in pair.guards
    assert [c.level for c in pair.comparisons[:2]] == ["jaro_winkler_0.92", "jaro_winkler_0.80"]


def test_an_agreeing_identifier_on_another_persons_record_is_a_collision_for_review() -> None:
    # The same PNC on a record whose names and date of birth are someone else's.
    other = make_view(forenames=["Barnaby"], surname="Notarealname", date_of_birth="1961-10-30")
    result = score(make_view(), other, MODEL)
    assert "identifier_collision" in result.guards
    assert result.band is Band.POSSIBLE
    assert not result.links_on_identifier
    # One name or the date of birth agreeing is an identifier doing its job.
    same_birth = make_view(forenames=["Barnaby"], surname="Notarealname")
    assert not {"identifier_collision"} & set(score(make_view(), same_birth, MODEL).guards)
    assert score(make_view(), same_birth, MODEL).links_on_identifier


def test_one_name_agreeing_crosswise_is_not_a_swap() -> None:
    right_way = _plain(forenames=["Peregrine"], surname="Quillfeather")
    half = _plain(forenames=["Quillfeather"], surname="Notarealname")

    pair = score(right_way, half, MODEL)

    assert "names_swapped" not in pair.guards
    assert [c.level for c in pair.comparisons[:2]] == ["different", "different"]


def test_another_first_name_at_the_same_home_with_no_shared_birth_date_is_for_review() -> None:
    # Lenient bands, so the pair would link on weight alone.
    lenient = MODEL.model_copy(update={"bands": Bands(link=-30.0, possible=-60.0)})
    home = {"surname": "Quillfeather", **_home(["14 High Street"], town="Leeds"), **NO_IDENTIFIERS}
    parent = make_view(forenames=["Peregrine"], date_of_birth="1961-05-02", **home)
    child = make_view(forenames=["Barnaby"], date_of_birth="1994-11-20", **home)
    no_birth_date = make_view(forenames=["Barnaby"], **home)

    # Born a year apart on the same day is one digit off, as a sibling often is.
    sibling = make_view(forenames=["Barnaby"], date_of_birth="1962-05-02", **home)
    for other in (child, no_birth_date, sibling):
        result = score(parent, other, lenient)
        assert "household" in result.guards
        assert result.band is Band.POSSIBLE
        assert result.match_weight < lenient.bands.link
        assert result.match_weight == pytest.approx(
            result.prior_weight + sum(c.weight for c in result.comparisons) + result.guard_weight
        )
    # The same date of birth (or day and month swapped) is for the weights and the twins guard.
    same_day = make_view(forenames=["Barnaby"], date_of_birth="1961-05-02", **home)
    assert "household" not in score(parent, same_day, lenient).guards
    # A first name one letter off is a typo, not another person.
    typo = make_view(forenames=["Peregrin"], date_of_birth="1994-11-20", **home)
    assert "household" not in score(parent, typo, lenient).guards
