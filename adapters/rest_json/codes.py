"""The case system's own code lists, and the canonical code each one maps onto.

FORMAT.md shows the same tables; a test keeps the two in step. Codes are matched after trimming
and upper-casing, so `" m "` reads as `M`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from schemas import (
    AddressStatus,
    LengthUnit,
    RegistrationType,
    RequirementCategory,
    RequirementUnit,
    RoshLevel,
    SentenceType,
    Sex,
)

GENDERS: Final[Mapping[str, Sex]] = {
    "M": Sex.MALE,
    "F": Sex.FEMALE,
    "O": Sex.OTHER,
    "U": Sex.NOT_KNOWN,
}

RISK_LEVELS: Final[Mapping[str, RoshLevel]] = {
    "L": RoshLevel.LOW,
    "M": RoshLevel.MEDIUM,
    "H": RoshLevel.HIGH,
    "V": RoshLevel.VERY_HIGH,
}

ADDRESS_TYPES: Final[Mapping[str, AddressStatus]] = {
    "CUR": AddressStatus.MAIN,
    "PRV": AddressStatus.PREVIOUS,
    "SEC": AddressStatus.SECONDARY,
    "PST": AddressStatus.POSTAL,
    "BAIL": AddressStatus.BAIL,
    "OTH": AddressStatus.OTHER,
}

SENTENCE_TYPES: Final[Mapping[str, SentenceType]] = {
    "CO": SentenceType.COMMUNITY_ORDER,
    "SSO": SentenceType.SUSPENDED_SENTENCE_ORDER,
    "CUS": SentenceType.CUSTODY,
    "LIC": SentenceType.LICENCE,
    "PSS": SentenceType.POST_SENTENCE_SUPERVISION,
}

LENGTH_UNITS: Final[Mapping[str, LengthUnit]] = {
    "D": LengthUnit.DAYS,
    "W": LengthUnit.WEEKS,
    "M": LengthUnit.MONTHS,
    "Y": LengthUnit.YEARS,
}

REQUIREMENT_TYPES: Final[Mapping[str, RequirementCategory]] = {
    "UPW": RequirementCategory.UNPAID_WORK,
    "RAR": RequirementCategory.REHABILITATION_ACTIVITY,
    "AP": RequirementCategory.ACCREDITED_PROGRAMME,
    "CUR": RequirementCategory.CURFEW,
    "DRR": RequirementCategory.DRUG_TREATMENT,
    "ATR": RequirementCategory.ALCOHOL_TREATMENT,
    "MHTR": RequirementCategory.MENTAL_HEALTH_TREATMENT,
    "RES": RequirementCategory.RESIDENCE,
    "EXC": RequirementCategory.EXCLUSION,
    "PAR": RequirementCategory.PROHIBITED_ACTIVITY,
    "SUP": RequirementCategory.SUPERVISION,
    "OTH": RequirementCategory.OTHER,
}

QUANTITY_UNITS: Final[Mapping[str, RequirementUnit]] = {
    "H": RequirementUnit.HOURS,
    "D": RequirementUnit.DAYS,
    "S": RequirementUnit.SESSIONS,
    "M": RequirementUnit.MONTHS,
}

# RoSH and MAPPA have fields of their own on a case (`riskLevel`, `mappa`); `flags` holds the rest.
FLAG_TYPES: Final[Mapping[str, RegistrationType]] = {
    "CP": RegistrationType.CHILD_PROTECTION,
    "DA": RegistrationType.DOMESTIC_ABUSE,
    "HC": RegistrationType.HATE_CRIME,
    "SFO": RegistrationType.SERIOUS_FURTHER_OFFENCE,
    "OTH": RegistrationType.OTHER_FLAG,
}

# Every table by the name FORMAT.md gives it.
CODE_LISTS: Final[Mapping[str, Mapping[str, object]]] = {
    "gender": GENDERS,
    "riskLevel": RISK_LEVELS,
    "address type": ADDRESS_TYPES,
    "sentence type": SENTENCE_TYPES,
    "lengthUnit": LENGTH_UNITS,
    "requirementType": REQUIREMENT_TYPES,
    "quantityUnit": QUANTITY_UNITS,
    "flagType": FLAG_TYPES,
}


def reverse(table: Mapping[str, object]) -> dict[object, str]:
    """Canonical code to the case system's code (each table maps one-to-one)."""
    return {canonical: code for code, canonical in table.items()}
