"""Scoring a pair of MatchViews: comparison levels per field, match weight in bits, band, guards.

Levels are small integers, indexes into `FIELD_LEVELS` (lower is stronger), so a pair's
comparisons are looked up in the compiled model rather than built; only a term-frequency-adjusted
exact name agreement makes a new (cached) `FieldComparison`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from rapidfuzz.distance import OSA, JaroWinkler

from gateway.matching.model import FIELD_LEVELS, FieldComparison, MatchModel
from gateway.matching.views import IDENTIFIER_KINDS, STRONG_IDENTIFIER_KINDS, MatchView

__all__ = ["FIELD_ORDER", "Band", "FieldComparison", "PairScore", "compare", "score"]

#: The fields of a PairScore's comparisons, in order.
FIELD_ORDER: Final[tuple[str, ...]] = tuple(FIELD_LEVELS)

_jaro_winkler = JaroWinkler.similarity
_osa = OSA.distance

# Level indexes; they must follow the order of FIELD_LEVELS (checked at import below).
FN_EXACT, FN_NICKNAME, FN_JW_HIGH, FN_PHONETIC, FN_JW_LOW, FN_INITIAL, FN_DIFFERENT, FN_MISSING = (
    range(8)
)
SN_EXACT, SN_JW_HIGH, SN_PHONETIC, SN_JW_LOW, SN_DIFFERENT, SN_MISSING = range(6)
DOB_EXACT, DOB_TRANSPOSED, DOB_TYPO, DOB_DIFFERENT, DOB_MISSING = range(5)
PC_FULL, PC_OUTCODE, PC_DIFFERENT, PC_MISSING = range(4)
EXACT, DIFFERENT, MISSING = range(3)

JW_HIGH: Final = 0.92
JW_LOW: Final = 0.80

assert FIELD_LEVELS["forename"][FN_INITIAL] == "initial"  # noqa: S101 (a layout check)
assert FIELD_LEVELS["surname"][SN_JW_LOW] == "jaro_winkler_0.80"  # noqa: S101
assert FIELD_LEVELS["date_of_birth"][DOB_TYPO] == "typo"  # noqa: S101
assert FIELD_LEVELS["postcode"][PC_OUTCODE] == "outcode"  # noqa: S101

# The forename levels that say "another first name", which with the same surname and date of
# birth is the mark of twins rather than of one person recorded twice.
_CLEARLY_DIFFERENT_FORENAMES: Final = frozenset({FN_JW_LOW, FN_DIFFERENT})


class Band(StrEnum):
    """What a match weight means: link automatically, ask a person, or a new person."""

    LINK = "link"
    POSSIBLE = "possible"
    NEW = "new"


@dataclass(frozen=True, slots=True)
class PairScore:
    """The explanation of a pair's match weight; `as_dict` is safe to store (no person's values)."""

    comparisons: tuple[FieldComparison, ...]
    prior_weight: float
    match_weight: float
    probability: float
    band: Band
    guards: tuple[str, ...]
    identifiers_agree: tuple[str, ...]
    identifiers_conflict: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready explanation: weights, levels, band and guards; never names or values."""
        return {
            "match_weight": round(self.match_weight, 4),
            "probability": self.probability,
            "band": self.band.value,
            "prior_weight": round(self.prior_weight, 4),
            "guards": list(self.guards),
            "identifiers_agree": list(self.identifiers_agree),
            "identifiers_conflict": list(self.identifiers_conflict),
            "comparisons": [
                {"field": c.field, "level": c.level, "weight": round(c.weight, 4)}
                for c in self.comparisons
            ],
        }


def _forename(a: MatchView, b: MatchView) -> tuple[int, str | None]:
    names_a, names_b = a.first_forenames, b.first_forenames
    if not names_a or not names_b:
        return FN_MISSING, None
    if len(names_a) > 1 or len(names_b) > 1:
        # The same (smallest) shared value whichever side is first, so the score is symmetric.
        shared = [name for name in names_a if name in names_b]
        if shared:
            return FN_EXACT, min(shared)
    best = FN_DIFFERENT
    # Usually one name each side; aliases add a few, and the strongest pairing wins.
    for i, x in enumerate(names_a):
        for j, y in enumerate(names_b):
            if x == y:
                return FN_EXACT, x
            if best <= FN_NICKNAME:
                continue
            if not a.forename_groups[i].isdisjoint(b.forename_groups[j]):
                best = FN_NICKNAME
                continue
            if len(x) == 1 or len(y) == 1:
                if x[0] == y[0] and best > FN_INITIAL:
                    best = FN_INITIAL
                continue
            similarity = _jaro_winkler(x, y, score_cutoff=JW_LOW)
            if similarity >= JW_HIGH:
                level = FN_JW_HIGH
            elif a.forename_phonetics[i] == b.forename_phonetics[j]:
                level = FN_PHONETIC
            elif similarity:
                level = FN_JW_LOW
            else:
                continue
            best = min(best, level)
    return best, None


def _surname(a: MatchView, b: MatchView) -> tuple[int, str | None]:
    names_a, names_b = a.surnames, b.surnames
    if not names_a or not names_b:
        return SN_MISSING, None
    if len(names_a) > 1 or len(names_b) > 1:
        # The same (smallest) shared value whichever side is first, so the score is symmetric.
        shared = [name for name in names_a if name in names_b]
        if shared:
            return SN_EXACT, min(shared)
    best = SN_DIFFERENT
    # The surname against the other side's alias surnames too (a married or former name).
    for i, x in enumerate(names_a):
        for j, y in enumerate(names_b):
            if x == y:
                return SN_EXACT, x
            if best <= SN_JW_HIGH:
                continue
            similarity = _jaro_winkler(x, y, score_cutoff=JW_LOW)
            if similarity >= JW_HIGH:
                level = SN_JW_HIGH
            elif a.surname_phonetics[i] == b.surname_phonetics[j]:
                level = SN_PHONETIC
            elif similarity:
                level = SN_JW_LOW
            else:
                continue
            best = min(best, level)
    return best, None


# Levels at which neither name agrees, as when a source put the surname in the forename field.
_WEAK_FORENAMES: Final = frozenset({FN_JW_LOW, FN_DIFFERENT})
_WEAK_SURNAMES: Final = frozenset({SN_JW_LOW, SN_DIFFERENT})


def _cross(x: str | None, y: str | None) -> int | None:
    """0 when two names are equal, 1 when they are close (high Jaro-Winkler), else None."""
    if not x or not y:
        return None
    if x == y:
        return 0
    return 1 if _jaro_winkler(x, y, score_cutoff=JW_HIGH) else None


def _names(a: MatchView, b: MatchView) -> tuple[int, str | None, int, str | None, bool]:
    """Forename and surname levels (with a shared exact value, for term frequencies), and
    whether they were read crosswise: a pair whose names agree only with forename and surname
    swapped is compared as if the source had put them the right way round."""
    forename, forename_value = _forename(a, b)
    surname, surname_value = _surname(a, b)
    if forename not in _WEAK_FORENAMES or surname not in _WEAK_SURNAMES:
        return forename, forename_value, surname, surname_value, False
    first_a = a.forenames[0] if a.forenames else None
    first_b = b.forenames[0] if b.forenames else None
    forename_cross = _cross(first_a, b.surname)
    surname_cross = _cross(a.surname, first_b)
    if forename_cross is None or surname_cross is None:
        return forename, forename_value, surname, surname_value, False
    return (
        FN_EXACT if forename_cross == 0 else FN_JW_HIGH,
        None,
        SN_EXACT if surname_cross == 0 else SN_JW_HIGH,
        None,
        True,
    )


def _date_of_birth(a: MatchView, b: MatchView) -> int:
    x, y = a.dob_iso, b.dob_iso
    if x is None or y is None:
        return DOB_MISSING
    if x == y:
        return DOB_EXACT
    if a.dob_transposed_iso == y:
        return DOB_TRANSPOSED
    # One character substituted, or two neighbours swapped, in the ISO date ("1980-01-02").
    if _osa(x, y, score_cutoff=1) <= 1:
        return DOB_TYPO
    return DOB_DIFFERENT


def _postcode(a: MatchView, b: MatchView) -> int:
    if not a.postcode_set or not b.postcode_set:
        return PC_MISSING
    if not a.postcode_set.isdisjoint(b.postcode_set):
        return PC_FULL
    if not a.outcode_set.isdisjoint(b.outcode_set):
        return PC_OUTCODE
    return PC_DIFFERENT


def _one_edit_apart(names_a: tuple[str, ...], names_b: tuple[str, ...]) -> bool:
    # A short name with one typo (JOHN/JOHM) falls below the high Jaro-Winkler band; a twin's
    # name is another name, not one letter away.
    return any(_osa(x, y, score_cutoff=1) <= 1 for x in names_a for y in names_b)


def compare(a: MatchView, b: MatchView) -> tuple[int, ...]:
    """Each field's level index (into FIELD_LEVELS), in FIELD_ORDER; training reads these."""
    forename, _, surname, _, _ = _names(a, b)
    sex = MISSING if a.sex is None or b.sex is None else EXACT if a.sex == b.sex else DIFFERENT
    ids_a, ids_b = a.identifiers, b.identifiers
    levels = [forename, surname, _date_of_birth(a, b), _postcode(a, b), sex]
    for kind in IDENTIFIER_KINDS:
        x, y = ids_a.get(kind), ids_b.get(kind)
        levels.append(MISSING if x is None or y is None else EXACT if x == y else DIFFERENT)
    return tuple(levels)


def _probability(weight: float) -> float:
    # Written both ways so a large weight of either sign never overflows 2**w.
    if weight >= 0:
        return 1.0 / (1.0 + math.pow(2.0, -weight))
    odds = math.pow(2.0, weight)
    return odds / (1.0 + odds)


def score(a: MatchView, b: MatchView, model: MatchModel) -> PairScore:
    """Score a pair: compare every field, add the weights to the prior, band it, apply the guards.

    Guards: a conflicting strong identifier (CRN, PNC, CRO, NOMS) caps the band at POSSIBLE, so
    automation never links two people the national systems say are different; the twins guard
    (same surname, date of birth and address, clearly different forenames, no identifier
    agreeing) makes the band NEW whatever the weight. ``guards`` lists every guard whose
    condition held, and ``names_swapped`` when forename and surname agreed only crosswise.
    """
    compiled = model.compiled
    table = compiled.comparisons
    forename, forename_value, surname, surname_value, swapped = _names(a, b)
    dob = _date_of_birth(a, b)
    postcode = _postcode(a, b)
    forename_cmp = (
        compiled.exact_tf("forename", forename_value)
        if forename_value is not None and "forename" in compiled.tf_tables
        else table["forename"][forename]
    )
    surname_cmp = (
        compiled.exact_tf("surname", surname_value)
        if surname_value is not None and "surname" in compiled.tf_tables
        else table["surname"][surname]
    )
    sex = MISSING if a.sex is None or b.sex is None else EXACT if a.sex == b.sex else DIFFERENT
    comparisons = [
        forename_cmp,
        surname_cmp,
        table["date_of_birth"][dob],
        table["postcode"][postcode],
        table["sex"][sex],
    ]
    agree: list[str] = []
    conflict: list[str] = []
    ids_a, ids_b = a.identifiers, b.identifiers
    for kind in IDENTIFIER_KINDS:
        x, y = ids_a.get(kind), ids_b.get(kind)
        if x is None or y is None:
            level = MISSING
        elif x == y:
            level = EXACT
            agree.append(kind)
        else:
            level = DIFFERENT
            if kind in STRONG_IDENTIFIER_KINDS:
                conflict.append(kind)
        comparisons.append(table[kind][level])

    weight = compiled.prior_weight + sum(c.weight for c in comparisons)
    bands = model.bands
    band = (
        Band.LINK
        if weight >= bands.link
        else Band.POSSIBLE
        if weight >= bands.possible
        else Band.NEW
    )
    guards: list[str] = ["names_swapped"] if swapped else []
    if conflict:
        guards.extend(f"identifier_conflict:{kind}" for kind in conflict)
        if band is Band.LINK:
            band = Band.POSSIBLE
    # Twins only on positive evidence: the same surname, date of birth and address with other
    # forenames. A differing forename alone is as often a replaced or mistyped one.
    if (
        not agree
        and dob == DOB_EXACT
        and postcode == PC_FULL
        and a.surname is not None
        and a.surname == b.surname
        and forename in _CLEARLY_DIFFERENT_FORENAMES
        and not _one_edit_apart(a.first_forenames, b.first_forenames)
    ):
        guards.append("twins")
        band = Band.NEW
    return PairScore(
        comparisons=tuple(comparisons),
        prior_weight=compiled.prior_weight,
        match_weight=weight,
        probability=_probability(weight),
        band=band,
        guards=tuple(guards),
        identifiers_agree=tuple(agree),
        identifiers_conflict=tuple(conflict),
    )
