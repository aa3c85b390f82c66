"""The code words of the export and the canonical codes they map to.

The vendor's system writes codes as display words ("Very High", "Unpaid Work"), with case and
spacing varying between versions and hand edits. A word is looked up by its key: letters and
digits only, case-folded, so "Very High", "VERY  HIGH", "very-high" and "VERY_HIGH" are one word.
The first word listed for a code is the one the writer emits. FORMAT.md carries the same tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Generic, TypeVar

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

__all__ = [
    "ADDRESS_STATUS",
    "CODE_TABLES",
    "FLAG",
    "GENDER",
    "LENGTH_UNIT",
    "REGISTRATION_TYPE",
    "REQUIREMENT_CATEGORY",
    "REQUIREMENT_UNIT",
    "RISK_LEVEL",
    "SENTENCE_TYPE",
    "CodeTable",
    "word_key",
]

CodeT = TypeVar("CodeT")

_NOT_KEY = re.compile(r"[\W_]+")


def word_key(word: str) -> str:
    """The lookup key of a code word: case-folded, spaces, hyphens and underscores removed."""
    return _NOT_KEY.sub("", word).casefold()


class CodeTable(Generic[CodeT]):
    """One code list: the words the export may use for each canonical code."""

    def __init__(self, what: str, words: Mapping[CodeT, tuple[str, ...]]) -> None:
        self.what = what
        self.words = dict(words)
        self._by_key: dict[str, CodeT] = {}
        for code, spellings in words.items():
            for spelling in spellings:
                key = word_key(spelling)
                if self._by_key.setdefault(key, code) != code:  # pragma: no cover - table bug
                    raise ValueError(f"{what}: {spelling!r} maps to two codes")

    def lookup(self, word: str) -> CodeT | None:
        """The code a word stands for, or None if the word is not in the table."""
        return self._by_key.get(word_key(word))

    def word(self, code: CodeT) -> str:
        """The word the writer emits for a code."""
        return self.words[code][0]

    def expected(self) -> str:
        """The written words, for an error message."""
        return ", ".join(spellings[0] for spellings in self.words.values())


GENDER: Final = CodeTable[Sex](
    "gender",
    {
        Sex.MALE: ("Male",),
        Sex.FEMALE: ("Female",),
        Sex.OTHER: ("Other",),
        Sex.NOT_KNOWN: ("Not Known", "Unknown", "Not Specified", "Not Stated"),
    },
)

ADDRESS_STATUS: Final = CodeTable[AddressStatus](
    "address status",
    {
        AddressStatus.MAIN: ("Main", "Main Address", "Current"),
        AddressStatus.PREVIOUS: ("Previous", "Previous Address"),
        AddressStatus.SECONDARY: ("Secondary", "Secondary Address"),
        AddressStatus.POSTAL: ("Postal", "Correspondence"),
        AddressStatus.BAIL: ("Bail", "Bail Address"),
        AddressStatus.OTHER: ("Other",),
    },
)

SENTENCE_TYPE: Final = CodeTable[SentenceType](
    "sentence type",
    {
        SentenceType.COMMUNITY_ORDER: ("Community Order",),
        SentenceType.SUSPENDED_SENTENCE_ORDER: (
            "Suspended Sentence Order",
            "Suspended Sentence",
            "SSO",
        ),
        SentenceType.CUSTODY: ("Custody", "Custodial Sentence"),
        SentenceType.LICENCE: ("Licence", "License", "On Licence"),
        SentenceType.POST_SENTENCE_SUPERVISION: ("Post Sentence Supervision", "PSS"),
    },
)

LENGTH_UNIT: Final = CodeTable[LengthUnit](
    "length unit",
    {
        LengthUnit.DAYS: ("Days", "Day"),
        LengthUnit.WEEKS: ("Weeks", "Week"),
        LengthUnit.MONTHS: ("Months", "Month"),
        LengthUnit.YEARS: ("Years", "Year"),
    },
)

REQUIREMENT_CATEGORY: Final = CodeTable[RequirementCategory](
    "requirement category",
    {
        RequirementCategory.UNPAID_WORK: ("Unpaid Work", "UPW", "Community Payback"),
        RequirementCategory.REHABILITATION_ACTIVITY: (
            "Rehabilitation Activity Requirement",
            "Rehabilitation Activity",
            "RAR",
        ),
        RequirementCategory.ACCREDITED_PROGRAMME: ("Accredited Programme", "Accredited Program"),
        RequirementCategory.CURFEW: ("Curfew",),
        RequirementCategory.DRUG_TREATMENT: (
            "Drug Treatment",
            "Drug Rehabilitation Requirement",
            "DRR",
        ),
        RequirementCategory.ALCOHOL_TREATMENT: ("Alcohol Treatment", "ATR"),
        RequirementCategory.MENTAL_HEALTH_TREATMENT: ("Mental Health Treatment", "MHTR"),
        RequirementCategory.RESIDENCE: ("Residence",),
        RequirementCategory.EXCLUSION: ("Exclusion",),
        RequirementCategory.PROHIBITED_ACTIVITY: ("Prohibited Activity",),
        RequirementCategory.SUPERVISION: ("Supervision",),
        RequirementCategory.OTHER: ("Other",),
    },
)

REQUIREMENT_UNIT: Final = CodeTable[RequirementUnit](
    "requirement unit",
    {
        RequirementUnit.HOURS: ("Hours", "Hour"),
        RequirementUnit.DAYS: ("Days", "Day"),
        RequirementUnit.SESSIONS: ("Sessions", "Session"),
        RequirementUnit.MONTHS: ("Months", "Month"),
    },
)

REGISTRATION_TYPE: Final = CodeTable[RegistrationType](
    "registration type",
    {
        RegistrationType.ROSH: ("RoSH", "Risk of Serious Harm"),
        RegistrationType.MAPPA: ("MAPPA",),
        RegistrationType.CHILD_PROTECTION: ("Child Protection",),
        RegistrationType.DOMESTIC_ABUSE: ("Domestic Abuse",),
        RegistrationType.HATE_CRIME: ("Hate Crime",),
        RegistrationType.SERIOUS_FURTHER_OFFENCE: ("Serious Further Offence", "SFO"),
        RegistrationType.OTHER_FLAG: ("Other", "Other Flag"),
    },
)

RISK_LEVEL: Final = CodeTable[RoshLevel](
    "risk level",
    {
        RoshLevel.LOW: ("Low",),
        RoshLevel.MEDIUM: ("Medium",),
        RoshLevel.HIGH: ("High",),
        RoshLevel.VERY_HIGH: ("Very High",),
    },
)

FLAG: Final = CodeTable[bool](
    "flag",
    {True: ("true", "yes", "y", "1"), False: ("false", "no", "n", "0")},
)

#: Every table of code words, for the documentation test.
CODE_TABLES: Final[tuple[CodeTable[Any], ...]] = (
    GENDER,
    ADDRESS_STATUS,
    SENTENCE_TYPE,
    LENGTH_UNIT,
    REQUIREMENT_CATEGORY,
    REQUIREMENT_UNIT,
    REGISTRATION_TYPE,
    RISK_LEVEL,
)
