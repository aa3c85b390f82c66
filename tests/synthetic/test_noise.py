"""Each kind of noise shows in the data as the kind of mistake it claims to be."""

from __future__ import annotations

from collections import Counter
from datetime import date
from random import Random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.synthetic import NoiseKind, NoiseRates
from gateway.synthetic.noise import nickname_for, recase_or_respace, typo
from gateway.synthetic.pools import NICKNAMES
from schemas.identifiers import PLACEHOLDER_CRO, canonical_pnc
from schemas.postcodes import NO_FIXED_ABODE_POSTCODES
from tests.synthetic.conftest import Run, canonical_lines, read_noise, run_generator

NOISY = NoiseRates(**dict.fromkeys(NoiseRates.model_fields, 0.12))
CLEAN = NoiseRates(**dict.fromkeys(NoiseRates.model_fields, 0.0))


def one_edit_apart(first: str, second: str) -> bool:
    """A substitution, a deletion or a transposition of neighbours turns first into second."""
    if len(first) == len(second):
        differences = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
        if len(differences) == 1:
            return True
        return (
            len(differences) == 2
            and differences[1] == differences[0] + 1
            and first[differences[0]] == second[differences[1]]
            and first[differences[1]] == second[differences[0]]
        )
    if len(first) == len(second) + 1:
        return any(first[:i] + first[i + 1 :] == second for i in range(len(first)))
    return False


def letters(name: str) -> str:
    return "".join(char for char in name.upper() if char.isalpha())


def _person_by_id(run: Run) -> dict[str, dict[str, Any]]:
    return {
        line["provenance"]["external_id"]: line["person"]
        for line in canonical_lines(run, "crc-canonical")
    }


@pytest.fixture(scope="module")
def noisy_and_clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    common: dict[str, Any] = {"persons": 1500, "seed": 21, "sources": ("crc-canonical",)}
    noisy = run_generator(tmp_path_factory.mktemp("noisy"), noise=NOISY, **common)
    clean = run_generator(tmp_path_factory.mktemp("clean"), noise=CLEAN, **common)
    return noisy, clean


def _main_address(person: dict[str, Any]) -> dict[str, Any]:
    return next(address for address in person["addresses"] if address["status"] == "MAIN")


def _shows(kind: NoiseKind, noisy: dict[str, Any], clean: dict[str, Any]) -> bool:
    """Whether the noisy copy differs from the clean one exactly as `kind` says."""
    first, truth_first = noisy.get("forenames", [""])[0], clean["forenames"][0]
    surname, truth_surname = noisy["surname"], clean["surname"]
    pnc, truth_pnc = noisy["identifiers"].get("pnc"), clean["identifiers"]["pnc"]
    born, truth_born = noisy["date_of_birth"], clean["date_of_birth"]
    match kind:
        case NoiseKind.NAME_TYPO:
            return (first == truth_first and one_edit_apart(truth_surname, surname)) or (
                surname == truth_surname and one_edit_apart(truth_first, first)
            )
        case NoiseKind.NICKNAME:
            return first in NICKNAMES.get(truth_first, ()) or truth_first in NICKNAMES.get(
                first, ()
            )
        case NoiseKind.DOB_TRANSPOSED:
            truth = date.fromisoformat(truth_born)
            return bool(born == truth.replace(day=truth.month, month=truth.day).isoformat())
        case NoiseKind.PNC_MISSING:
            return pnc is None and truth_pnc is not None
        case NoiseKind.PNC_MALFORMED:
            try:
                canonical_pnc(pnc or "")
            except ValueError:
                return bool(pnc[:-1] == truth_pnc[:-1] and pnc != truth_pnc)
            return False
        case NoiseKind.SURNAME_CHANGED:
            aliases = [alias["surname"] for alias in noisy["aliases"]]
            return surname != truth_surname and aliases in ([], [truth_surname])
        case NoiseKind.ADDRESS_MOVED:
            previous = [a for a in noisy["addresses"] if a["status"] == "PREVIOUS"]
            truth_main = _main_address(clean)
            return (
                _main_address(noisy)["lines"] != truth_main["lines"]
                and len(previous) == 1
                and previous[0]["lines"] == truth_main["lines"]
                and previous[0]["postcode"] == truth_main["postcode"]
            )
        case NoiseKind.MIDDLE_NAMES_MISSING:
            return len(clean["forenames"]) > 1 and noisy["forenames"] == clean["forenames"][:1]
        case NoiseKind.CASE_SPACING:
            names = [*noisy["forenames"], surname]
            truth_names = [*clean["forenames"], truth_surname]
            return names != truth_names and list(map(letters, names)) == list(
                map(letters, truth_names)
            )
        case NoiseKind.JUNK_DOB:
            return born in ("1900-01-01", "1970-01-01")
        case NoiseKind.JUNK_CRO:
            return bool(noisy["identifiers"].get("cro") == PLACEHOLDER_CRO)
        case NoiseKind.JUNK_NO_FIXED_ABODE:
            main = _main_address(noisy)
            return main["postcode"] in NO_FIXED_ABODE_POSTCODES and main["no_fixed_abode"] is True
        case NoiseKind.JUNK_NAME:
            return bool(noisy["forenames"] == ["NOT ENTERED"]) or surname.startswith(
                ("DUPLICATE_", "MIG_ERROR_")
            )
    return False


def test_every_kind_of_noise_appears_and_is_what_it_says(
    noisy_and_clean: tuple[Run, Run],
) -> None:
    noisy_run, clean_run = noisy_and_clean
    noisy, clean = _person_by_id(noisy_run), _person_by_id(clean_run)
    assert noisy.keys() == clean.keys()
    assert read_noise(clean_run.out) == {}
    checked: Counter[NoiseKind] = Counter()
    for (_, external_id), kinds in read_noise(noisy_run.out).items():
        if len(kinds) != 1:
            continue  # several kinds on one record mask each other; single ones are plenty
        kind = NoiseKind(kinds[0])
        assert _shows(kind, noisy[external_id], clean[external_id]), (kind, external_id)
        checked[kind] += 1

    assert set(checked) == set(NoiseKind), set(NoiseKind) - set(checked)


def test_records_without_noise_are_the_truth(noisy_and_clean: tuple[Run, Run]) -> None:
    noisy_run, clean_run = noisy_and_clean
    noisy, clean = _person_by_id(noisy_run), _person_by_id(clean_run)
    flagged = {external_id for _, external_id in read_noise(noisy_run.out)}
    fields = ("forenames", "surname", "date_of_birth", "addresses", "aliases")
    untouched = [external_id for external_id in noisy if external_id not in flagged]

    assert untouched
    for external_id in untouched:
        for field in fields:
            assert noisy[external_id][field] == clean[external_id][field], field
        assert noisy[external_id]["identifiers"]["pnc"] == clean[external_id]["identifiers"]["pnc"]


@given(
    st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-' ", min_size=1, max_size=30
    ),
    st.integers(0, 2**32),
)
def test_a_typo_is_one_edit_away(name: str, seed: int) -> None:
    spoilt = typo(name, Random(seed))
    if spoilt is not None:
        assert spoilt != name
        assert one_edit_apart(name, spoilt)
        assert spoilt[:1] == name[:1] or not name[:1].isalpha()


def test_nicknames_go_both_ways() -> None:
    rng = Random(1)
    assert nickname_for("William", rng) in ("Bill", "Will", "Billy")
    assert nickname_for("Liz", rng) == "Elizabeth"
    assert nickname_for("Zebedee", rng) is None


def test_recasing_keeps_the_letters() -> None:
    rng = Random(2)
    for _ in range(50):
        forenames, surname = recase_or_respace(["Mary", "Ann"], "Smith-Jones", rng)
        assert list(map(letters, [*forenames, surname])) == ["MARY", "ANN", "SMITHJONES"]
        assert [*forenames, surname] != ["Mary", "Ann", "Smith-Jones"]
