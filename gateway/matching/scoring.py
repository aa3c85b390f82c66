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
(
    DOB_EXACT,
    DOB_TRANSPOSED,
    DOB_TYPO,
    DOB_WITHIN_MONTH,
    DOB_WITHIN_YEAR,
    DOB_DIFFERENT,
    DOB_MISSING,
) = range(7)
(
    AD_STREET_POSTCODE,
    AD_STREET_AREA,
    AD_STREET,
    AD_POSTCODE,
    AD_AREA,
    AD_DIFFERENT,
    AD_MISSING,
) = range(7)
EXACT, DIFFERENT, MISSING = range(3)
MN_EXACT, MN_INITIAL, MN_DIFFERENT, MN_MISSING = range(4)

#: How far below the review band the twins guard puts a pair's match weight, in bits.
TWINS_MARGIN: Final = 1.0
#: How far below the link band the household guard puts a pair's match weight, in bits.
HOUSEHOLD_MARGIN: Final = 0.5
JW_HIGH: Final = 0.92
JW_LOW: Final = 0.80
#: Street names agree at this Jaro-Winkler similarity (a typo, "St" for "Street" at the end).
STREET_JW: Final = 0.88
#: Postal codes this long or longer that differ by one character are in one area.
NEAR_POSTCODE_LENGTH: Final = 4
_DAYS_IN_MONTH: Final = 31
_DAYS_IN_YEAR: Final = 366

assert FIELD_LEVELS["forename"][FN_INITIAL] == "initial"  # noqa: S101 (a layout check)
assert FIELD_LEVELS["surname"][SN_JW_LOW] == "jaro_winkler_0.80"  # noqa: S101
assert FIELD_LEVELS["date_of_birth"][DOB_TYPO] == "typo"  # noqa: S101
assert FIELD_LEVELS["middle_name"][MN_DIFFERENT] == "different"  # noqa: S101
assert FIELD_LEVELS["date_of_birth"][DOB_WITHIN_YEAR] == "within_year"  # noqa: S101
assert FIELD_LEVELS["address"][AD_AREA] == "area"  # noqa: S101

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
    guard_weight: float
    """What a guard took off (0 or negative): match_weight = prior + comparisons + this."""
    match_weight: float
    probability: float
    band: Band
    guards: tuple[str, ...]
    identifiers_agree: tuple[str, ...]
    identifiers_conflict: tuple[str, ...]

    @property
    def links_on_identifier(self) -> bool:
        """A strong identifier agrees and no guard says otherwise (conflicts are the caller's
        to weigh against the whole person)."""
        return (
            any(kind in STRONG_IDENTIFIER_KINDS for kind in self.identifiers_agree)
            and "twins" not in self.guards
            and "identifier_collision" not in self.guards
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready explanation: weights, levels, band and guards; never names or values."""
        return {
            "match_weight": round(self.match_weight, 4),
            "probability": self.probability,
            "band": self.band.value,
            "prior_weight": round(self.prior_weight, 4),
            "guard_weight": round(self.guard_weight, 4),
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


def _cross(x: str | None, y: str | None) -> float:
    """How alike two names are: 1.0 when equal, else Jaro-Winkler (0.0 below the low band)."""
    if not x or not y:
        return 0.0
    if x == y:
        return 1.0
    return _jaro_winkler(x, y, score_cutoff=JW_LOW)


def _cross_level(similarity: float, exact: int, high: int, low: int, different: int) -> int:
    if similarity == 1.0:
        return exact
    return high if similarity >= JW_HIGH else low if similarity >= JW_LOW else different


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
    # Both names close crosswise, and one of them closely: a swap, typos and all. (One name
    # alone agreeing crosswise is as often a forename that is someone else's surname.)
    if min(forename_cross, surname_cross) < JW_LOW or max(forename_cross, surname_cross) < JW_HIGH:
        return forename, forename_value, surname, surname_value, False
    return (
        _cross_level(forename_cross, FN_EXACT, FN_JW_HIGH, FN_JW_LOW, FN_DIFFERENT),
        None,
        _cross_level(surname_cross, SN_EXACT, SN_JW_HIGH, SN_JW_LOW, SN_DIFFERENT),
        None,
        True,
    )


def _middle_name(a: MatchView, b: MatchView) -> int:
    """Middle names: a whole one shared, only initials agreeing (or an initial against a name
    it starts), or none alike; missing unless both have one."""
    x, y = a.middle_names, b.middle_names
    if not x or not y:
        return MN_MISSING
    if any(len(name) > 1 and name in y for name in x):
        return MN_EXACT
    if not {name[0] for name in x}.isdisjoint(name[0] for name in y):
        return MN_INITIAL
    return MN_DIFFERENT


def _date_of_birth(a: MatchView, b: MatchView) -> int:
    x, y = a.dob_iso, b.dob_iso
    born_a, born_b = a.date_of_birth, b.date_of_birth
    if x is None or y is None or born_a is None or born_b is None:
        return DOB_MISSING
    if x == y:
        return DOB_EXACT
    if a.dob_transposed_iso == y:
        return DOB_TRANSPOSED
    # One character substituted, or two neighbours swapped, in the ISO date ("1980-01-02").
    if _osa(x, y, score_cutoff=1) <= 1:
        return DOB_TYPO
    days = abs((born_a - born_b).days)
    if days <= _DAYS_IN_MONTH:
        return DOB_WITHIN_MONTH
    if days <= _DAYS_IN_YEAR:
        return DOB_WITHIN_YEAR
    return DOB_DIFFERENT


def _same_street(a: MatchView, b: MatchView) -> bool:
    """One address each with a street line that agrees, and the same house number unless one of
    them has none (a house number left out is unknown, not different)."""
    for x in a.streets:
        for y in b.streets:
            if x.number is not None and y.number is not None and x.number != y.number:
                continue
            for name in x.names:
                for other in y.names:
                    if name == other or _jaro_winkler(name, other, score_cutoff=STREET_JW):
                        return True
    return False


def _near_postcode(a: MatchView, b: MatchView) -> bool:
    """Postal codes one character apart: a typo, or a neighbouring district."""
    return any(
        len(x) >= NEAR_POSTCODE_LENGTH and len(x) == len(y) and _osa(x, y, score_cutoff=1) <= 1
        for x in a.postcode_set
        for y in b.postcode_set
    )


def _address(a: MatchView, b: MatchView) -> int:
    """One comparison for where the two live, so a shared home counts once.

    A home is an agreeing street line with the same house number (or none on one side), and a
    full UK postcode (a few dozen homes); an area is a UK outcode, a postal code from abroad (most
    name a district), a postal code one character off, or the same town. Missing only when no
    part is held by both.
    """
    streets = bool(a.streets) and bool(b.streets)
    codes = bool(a.postcode_set) and bool(b.postcode_set)
    towns = bool(a.towns) and bool(b.towns)
    if not (streets or codes or towns):
        return AD_MISSING
    street = streets and _same_street(a, b)
    full = codes and not a.uk_postcodes.isdisjoint(b.uk_postcodes)
    area = (
        codes
        and (
            full
            or not a.outcode_set.isdisjoint(b.outcode_set)
            or not a.foreign_postcodes.isdisjoint(b.foreign_postcodes)
            or _near_postcode(a, b)
        )
    ) or (towns and not a.towns.isdisjoint(b.towns))
    if street:
        return AD_STREET_POSTCODE if full else AD_STREET_AREA if area else AD_STREET
    if full:
        return AD_POSTCODE
    return AD_AREA if area else AD_DIFFERENT


def _one_edit_apart(names_a: tuple[str, ...], names_b: tuple[str, ...]) -> bool:
    # A short name with one typo (JOHN/JOHM) falls below the high Jaro-Winkler band; a twin's
    # name is another name, not one letter away.
    return any(_osa(x, y, score_cutoff=1) <= 1 for x in names_a for y in names_b)


def compare(a: MatchView, b: MatchView) -> tuple[int, ...]:
    """Each field's level index (into FIELD_LEVELS), in FIELD_ORDER; training reads these."""
    forename, _, surname, _, _ = _names(a, b)
    sex = MISSING if a.sex is None or b.sex is None else EXACT if a.sex == b.sex else DIFFERENT
    ids_a, ids_b = a.identifiers, b.identifiers
    levels = [forename, surname, _middle_name(a, b), _date_of_birth(a, b), _address(a, b), sex]
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


def _band(weight: float, model: MatchModel) -> Band:
    bands = model.bands
    if weight >= bands.link:
        return Band.LINK
    return Band.POSSIBLE if weight >= bands.possible else Band.NEW


def _names_and_birth_disagree(forename: int, surname: int, dob: int, *, swapped: bool) -> bool:
    """Neither name nor the date of birth is close: another person's record, whatever the
    identifiers say."""
    return (
        not swapped
        and forename in _WEAK_FORENAMES
        and surname in _WEAK_SURNAMES
        and dob in (DOB_DIFFERENT, DOB_WITHIN_YEAR)
    )


def _twins(
    a: MatchView, b: MatchView, *, forename: int, middle: int, dob: int, address: int
) -> bool:
    """Two people born together: the same surname and date of birth, no sign of living apart,
    other first names, and positive evidence they are two (different sexes, or different middle
    names). Another first name alone is as often a replaced or mistyped one, and is left to the
    weights."""
    if not (
        dob == DOB_EXACT
        and address != AD_DIFFERENT
        and a.surname is not None
        and a.surname == b.surname
        and forename in _CLEARLY_DIFFERENT_FORENAMES
        and not _one_edit_apart(a.first_forenames, b.first_forenames)
    ):
        return False
    sexes_differ = a.sex is not None and b.sex is not None and a.sex != b.sex
    return sexes_differ or middle == MN_DIFFERENT


_SHARED_HOME: Final = frozenset({AD_STREET_POSTCODE, AD_STREET_AREA, AD_STREET})
_SAME_BIRTH: Final = frozenset({DOB_EXACT, DOB_TRANSPOSED})


def _household(a: MatchView, b: MatchView, *, forename: int, dob: int, address: int) -> bool:
    """Two people of one household: the same surname at the same home, other first names, and
    no date of birth that says they are one (missing, a digit off as a sibling's born a year or a
    decade apart is, or clearly apart). A family's shared name
    and home are one fact about the household, not two pieces of evidence about a person."""
    return (
        address in _SHARED_HOME
        and dob not in _SAME_BIRTH
        and a.surname is not None
        and a.surname == b.surname
        and forename in _CLEARLY_DIFFERENT_FORENAMES
        and not _one_edit_apart(a.first_forenames, b.first_forenames)
    )


def score(a: MatchView, b: MatchView, model: MatchModel) -> PairScore:
    """Score a pair: compare every field, add the weights to the prior, band it, apply the guards.

    Guards: a conflicting strong identifier (CRN, PNC, CRO, NOMS) caps the band at POSSIBLE, so
    automation never links two people the national systems say are different; an agreeing strong
    identifier on a record whose names and date of birth all disagree is an
    ``identifier_collision`` (band POSSIBLE); the twins guard (see `_twins`) makes the band NEW
    and takes the match weight below the review band (``guard_weight``), so the weight and
    probability say what was decided. ``guards`` lists every guard whose condition held, and
    ``names_swapped`` when forename and surname agreed only crosswise.
    """
    compiled = model.compiled
    table = compiled.comparisons
    forename, forename_value, surname, surname_value, swapped = _names(a, b)
    middle = _middle_name(a, b)
    dob = _date_of_birth(a, b)
    address = _address(a, b)
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
        table["middle_name"][middle],
        table["date_of_birth"][dob],
        table["address"][address],
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
    band = _band(weight, model)
    guards: list[str] = ["names_swapped"] if swapped else []
    guard_weight = 0.0
    if conflict:
        guards.extend(f"identifier_conflict:{kind}" for kind in conflict)
        if band is Band.LINK:
            band = Band.POSSIBLE
    strong = any(kind in STRONG_IDENTIFIER_KINDS for kind in agree)
    if strong and _names_and_birth_disagree(forename, surname, dob, swapped=swapped):
        # A reused or mistyped identifier on someone else's record: a person decides.
        guards.append("identifier_collision")
        band = Band.POSSIBLE
    elif not agree and _twins(a, b, forename=forename, middle=middle, dob=dob, address=address):
        # Told apart on positive evidence: the match weight is taken below the review band,
        # so the explanation's weight and probability say what the decision was.
        guards.append("twins")
        guard_weight = min(0.0, bands.possible - TWINS_MARGIN - weight)
        weight += guard_weight
        band = Band.NEW
    elif (
        not agree
        and band is Band.LINK
        and _household(a, b, forename=forename, dob=dob, address=address)
    ):
        # Perhaps one person under another first name, perhaps a relative: a person decides.
        guards.append("household")
        guard_weight = min(0.0, bands.link - HOUSEHOLD_MARGIN - weight)
        weight += guard_weight
        band = Band.POSSIBLE
    return PairScore(
        comparisons=tuple(comparisons),
        prior_weight=compiled.prior_weight,
        guard_weight=guard_weight,
        match_weight=weight,
        probability=_probability(weight),
        band=band,
        guards=tuple(guards),
        identifiers_agree=tuple(agree),
        identifiers_conflict=tuple(conflict),
    )
