"""The Delius code lists the flat export uses, and the canonical codes each maps onto.

Codes are matched case-insensitively after trimming. Each table is also read backwards by the
writer, so every canonical value has exactly one code it is written as (the first listed).
RoSH register codes are not here: `schemas.RoshLevel` owns that mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeVar

from schemas import (
    AddressStatus,
    LengthUnit,
    RequirementCategory,
    RequirementUnit,
    SentenceType,
    Sex,
)

__all__ = [
    "ADDRESS_STATUS",
    "DISPOSAL_TYPE",
    "FLAG",
    "MAPPA_CATEGORY",
    "MAPPA_LEVEL",
    "MINUTES",
    "REQUIREMENT_CATEGORY",
    "REQUIREMENT_DEFAULT_UNITS",
    "REQUIREMENT_UNITS",
    "SENTENCE_LENGTH_UNITS",
    "SEX",
    "expected",
    "reverse",
]

V = TypeVar("V")

#: Gender (sex) codes.
SEX: Final[dict[str, Sex]] = {
    "M": Sex.MALE,
    "F": Sex.FEMALE,
    "N": Sex.NOT_KNOWN,  # "not known / not specified"
    "O": Sex.OTHER,
}

#: Address status codes.
ADDRESS_STATUS: Final[dict[str, AddressStatus]] = {
    "M": AddressStatus.MAIN,
    "P": AddressStatus.PREVIOUS,
    "S": AddressStatus.SECONDARY,
    "PL": AddressStatus.POSTAL,
    "B": AddressStatus.BAIL,  # bail or approved premises
    "O": AddressStatus.OTHER,
}

#: Disposal (sentence) type codes.
DISPOSAL_TYPE: Final[dict[str, SentenceType]] = {
    "CO": SentenceType.COMMUNITY_ORDER,
    "SSO": SentenceType.SUSPENDED_SENTENCE_ORDER,
    "SC": SentenceType.CUSTODY,  # "sentenced in custody"
    "LIC": SentenceType.LICENCE,
    "PSS": SentenceType.POST_SENTENCE_SUPERVISION,
}

#: Units of SENTENCE_LENGTH.
SENTENCE_LENGTH_UNITS: Final[dict[str, LengthUnit]] = {
    "D": LengthUnit.DAYS,
    "W": LengthUnit.WEEKS,
    "M": LengthUnit.MONTHS,
    "Y": LengthUnit.YEARS,
}

#: Requirement main-category codes.
REQUIREMENT_CATEGORY: Final[dict[str, RequirementCategory]] = {
    "W": RequirementCategory.UNPAID_WORK,
    "F": RequirementCategory.REHABILITATION_ACTIVITY,
    "RM38": RequirementCategory.ACCREDITED_PROGRAMME,
    "7": RequirementCategory.CURFEW,
    "J": RequirementCategory.DRUG_TREATMENT,
    "X": RequirementCategory.ALCOHOL_TREATMENT,
    "H": RequirementCategory.MENTAL_HEALTH_TREATMENT,
    "3": RequirementCategory.RESIDENCE,
    "6": RequirementCategory.EXCLUSION,
    "2": RequirementCategory.PROHIBITED_ACTIVITY,
    "S": RequirementCategory.SUPERVISION,
    "RM99": RequirementCategory.OTHER,
}

#: The units code meaning "minutes": only unpaid work is counted in minutes in the export.
MINUTES: Final = "MI"

#: Units of RQMNT_LENGTH; minutes (MI) become HOURS, so they are not in this table.
REQUIREMENT_UNITS: Final[dict[str, RequirementUnit]] = {
    "H": RequirementUnit.HOURS,
    "D": RequirementUnit.DAYS,
    "S": RequirementUnit.SESSIONS,
    "M": RequirementUnit.MONTHS,
}

#: The unit a length is in when RQMNT_LENGTH_UNITS is blank, by main-category code.
REQUIREMENT_DEFAULT_UNITS: Final[dict[str, str]] = {"W": MINUTES, "F": "D", "RM38": "S"}

#: MAPPA category and level codes: Delius register codes M1-M3, or the bare number.
MAPPA_CATEGORY: Final[dict[str, int]] = {"M1": 1, "M2": 2, "M3": 3, "1": 1, "2": 2, "3": 3}
MAPPA_LEVEL: Final[dict[str, int]] = dict(MAPPA_CATEGORY)

#: Yes/no flags: v2 writes Y/N, v1 writes 1/0; both are read in either version.
FLAG: Final[dict[str, bool]] = {"Y": True, "N": False, "1": True, "0": False}


def reverse(table: dict[str, V]) -> dict[V, str]:
    """The table read backwards: each value's first code."""
    backwards: dict[V, str] = {}
    for code, value in table.items():
        backwards.setdefault(value, code)
    return backwards


def expected(table: Mapping[str, object]) -> str:
    """The codes of a table, for an error message."""
    return ", ".join(table)
