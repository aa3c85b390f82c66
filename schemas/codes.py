"""Code lists of the canonical case schema.

These are the central case system's codes. A source's own codes are mapped onto them by its adapter;
the schema never accepts a source-specific value in one of these fields.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "AddressStatus",
    "LengthUnit",
    "RegistrationType",
    "RequirementCategory",
    "RequirementUnit",
    "RoshLevel",
    "SentenceType",
    "Sex",
]


class Sex(StrEnum):
    """Sex as recorded by the case system."""

    MALE = "MALE"
    FEMALE = "FEMALE"
    OTHER = "OTHER"
    NOT_KNOWN = "NOT_KNOWN"


class AddressStatus(StrEnum):
    """Status of an address in a person's address history (MAIN is where they live now)."""

    MAIN = "MAIN"
    PREVIOUS = "PREVIOUS"
    SECONDARY = "SECONDARY"
    POSTAL = "POSTAL"
    BAIL = "BAIL"
    OTHER = "OTHER"


class SentenceType(StrEnum):
    """Kind of sentence (or post-release period) an event is supervised under."""

    COMMUNITY_ORDER = "COMMUNITY_ORDER"
    SUSPENDED_SENTENCE_ORDER = "SUSPENDED_SENTENCE_ORDER"
    CUSTODY = "CUSTODY"
    LICENCE = "LICENCE"
    POST_SENTENCE_SUPERVISION = "POST_SENTENCE_SUPERVISION"


class LengthUnit(StrEnum):
    """Unit of a sentence length."""

    DAYS = "DAYS"
    WEEKS = "WEEKS"
    MONTHS = "MONTHS"
    YEARS = "YEARS"


class RequirementCategory(StrEnum):
    """Category of a requirement attached to a community or suspended sentence order."""

    UNPAID_WORK = "UNPAID_WORK"
    REHABILITATION_ACTIVITY = "REHABILITATION_ACTIVITY"
    ACCREDITED_PROGRAMME = "ACCREDITED_PROGRAMME"
    CURFEW = "CURFEW"
    DRUG_TREATMENT = "DRUG_TREATMENT"
    ALCOHOL_TREATMENT = "ALCOHOL_TREATMENT"
    MENTAL_HEALTH_TREATMENT = "MENTAL_HEALTH_TREATMENT"
    RESIDENCE = "RESIDENCE"
    EXCLUSION = "EXCLUSION"
    PROHIBITED_ACTIVITY = "PROHIBITED_ACTIVITY"
    SUPERVISION = "SUPERVISION"
    OTHER = "OTHER"


class RequirementUnit(StrEnum):
    """Unit of a requirement's amount (unpaid work is in HOURS, a RAR in DAYS)."""

    HOURS = "HOURS"
    DAYS = "DAYS"
    SESSIONS = "SESSIONS"
    MONTHS = "MONTHS"


class RegistrationType(StrEnum):
    """Kind of register (risk flag) a person is on."""

    ROSH = "ROSH"
    MAPPA = "MAPPA"
    CHILD_PROTECTION = "CHILD_PROTECTION"
    DOMESTIC_ABUSE = "DOMESTIC_ABUSE"
    HATE_CRIME = "HATE_CRIME"
    SERIOUS_FURTHER_OFFENCE = "SERIOUS_FURTHER_OFFENCE"
    OTHER_FLAG = "OTHER_FLAG"


# Keyed by member value so the enum's methods can use it without a forward reference.
_ROSH_TO_DELIUS: Final = {"LOW": "RLRH", "MEDIUM": "RMRH", "HIGH": "RHRH", "VERY_HIGH": "RVHR"}
_DELIUS_TO_ROSH: Final = {code: level for level, code in _ROSH_TO_DELIUS.items()}


class RoshLevel(StrEnum):
    """Risk of serious harm level; Delius holds it as register codes RLRH, RMRH, RHRH, RVHR."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    VERY_HIGH = "VERY_HIGH"

    @property
    def delius_code(self) -> str:
        """The Delius register code for this level, e.g. ``RMRH`` for MEDIUM."""
        return _ROSH_TO_DELIUS[self.value]

    @classmethod
    def from_delius_code(cls, code: str) -> RoshLevel:
        """Return the level for a Delius RoSH register code (case and spaces ignored)."""
        try:
            return cls(_DELIUS_TO_ROSH[code.strip().upper()])
        except KeyError:
            raise ValueError(
                "unknown Delius RoSH register code; expected one of RLRH, RMRH, RHRH, RVHR"
            ) from None

    @classmethod
    def delius_codes(cls) -> frozenset[str]:
        """All Delius RoSH register codes."""
        return frozenset(_DELIUS_TO_ROSH)
