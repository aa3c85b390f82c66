"""The case part of a canonical case record: events, sentences, requirements, registers, tier."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Final, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from schemas.base import CanonicalModel, Code, LongText, Name, ShortText
from schemas.codes import (
    LengthUnit,
    RegistrationType,
    RequirementCategory,
    RequirementUnit,
    RoshLevel,
    SentenceType,
)

__all__ = [
    "Case",
    "Event",
    "Offence",
    "OffenderManager",
    "Registration",
    "Requirement",
    "Sentence",
    "Tier",
]

_TIER = re.compile(r"[A-D][0-3]")

# Categories whose amount is only meaningful in one unit.
_FIXED_REQUIREMENT_UNITS: Final = {
    RequirementCategory.UNPAID_WORK: RequirementUnit.HOURS,
    RequirementCategory.REHABILITATION_ACTIVITY: RequirementUnit.DAYS,
}

MappaNumber = Annotated[int, Field(ge=1, le=3)]


class Offence(CanonicalModel):
    """An offence an event is for, coded with its Home Office offence code.

    An event has one main offence and any number of additional offences; at most one offence of an
    event may be marked ``main``.
    """

    code: Annotated[str, StringConstraints(pattern=r"^\d{5}$")] = Field(
        description="Home Office offence code: 3-digit class and 2-digit subclass, e.g. 02800.",
        examples=["02800"],
    )
    description: LongText | None = Field(default=None, description="Offence description.")
    offence_date: date | None = Field(default=None, description="Date the offence was committed.")
    main: bool = Field(default=False, description="True for the event's main offence.")


class Sentence(CanonicalModel):
    """The sentence passed for an event.

    ``length`` and ``length_unit`` come together or not at all. ``expected_end_date`` and
    ``termination_date`` may not be before ``start_date``.
    """

    type: SentenceType = Field(description="Kind of sentence.")
    length: int | None = Field(default=None, gt=0, description="Sentence length, in length_unit.")
    length_unit: LengthUnit | None = Field(default=None, description="Unit of length.")
    start_date: date | None = Field(default=None, description="Date the sentence started.")
    expected_end_date: date | None = Field(
        default=None, description="Date the sentence is expected to end; not before start_date."
    )
    termination_date: date | None = Field(
        default=None, description="Date the sentence actually ended, once it has."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.length is None) != (self.length_unit is None):
            raise ValueError("sentence length and length_unit must be given together")
        if self.start_date is not None:
            if self.expected_end_date is not None and self.expected_end_date < self.start_date:
                raise ValueError("sentence expected_end_date is before start_date")
            if self.termination_date is not None and self.termination_date < self.start_date:
                raise ValueError("sentence termination_date is before start_date")
        return self


class Requirement(CanonicalModel):
    """A requirement attached to a community or suspended sentence order.

    ``amount`` and ``unit`` come together or not at all, and where the category fixes the unit it
    must be that unit: unpaid work is counted in HOURS, a rehabilitation activity requirement
    (RAR) in DAYS. ``end_date`` may not be before ``start_date``.
    """

    category: RequirementCategory = Field(description="Requirement category.")
    sub_category: ShortText | None = Field(
        default=None, description="Sub-category as the source describes it."
    )
    amount: int | None = Field(
        default=None, ge=0, description="Amount ordered (e.g. 120 hours of unpaid work), in unit."
    )
    unit: RequirementUnit | None = Field(default=None, description="Unit of amount.")
    start_date: date | None = Field(default=None, description="Date the requirement started.")
    end_date: date | None = Field(
        default=None, description="Date the requirement ended; not before start_date."
    )
    programme: ShortText | None = Field(
        default=None, description="Accredited programme name, for ACCREDITED_PROGRAMME."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.amount is None) != (self.unit is None):
            raise ValueError("requirement amount and unit must be given together")
        fixed_unit = _FIXED_REQUIREMENT_UNITS.get(self.category)
        if fixed_unit is not None and self.unit is not None and self.unit != fixed_unit:
            raise ValueError(
                f"{self.category.value} requirement unit should be {fixed_unit.value}, "
                f"got {self.unit.value}"
            )
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("requirement end_date is before start_date")
        return self


class Event(CanonicalModel):
    """One event (conviction) on a case, with its offences, sentence and requirements.

    ``event_number`` is the source's id for the event, unique within the case. At most one offence
    may be the main offence.
    """

    event_number: Code = Field(description="The source's event or conviction id.")
    referral_date: date | None = Field(default=None, description="Date the case was referred.")
    conviction_date: date | None = Field(default=None, description="Date of conviction.")
    court: ShortText | None = Field(default=None, description="Sentencing court.")
    offences: list[Offence] = Field(
        default_factory=list, description="Offences, the main one marked main."
    )
    sentence: Sentence | None = Field(default=None, description="Sentence passed, if sentenced.")
    requirements: list[Requirement] = Field(
        default_factory=list, description="Requirements of the order."
    )
    active: bool = Field(default=True, description="False once the event is terminated.")

    @model_validator(mode="after")
    def _one_main_offence(self) -> Self:
        if sum(offence.main for offence in self.offences) > 1:
            raise ValueError("an event has at most one main offence")
        return self


class Registration(CanonicalModel):
    """A register (risk flag) a person is on, such as their RoSH level or MAPPA management.

    ``rosh_level`` is required when ``type`` is ROSH and forbidden otherwise; ``mappa_category``
    and ``mappa_level`` are both required when ``type`` is MAPPA and forbidden otherwise. When a
    ROSH registration also carries a Delius RoSH register code (RLRH, RMRH, RHRH, RVHR) in ``code``,
    the code must agree with ``rosh_level``.
    """

    type: RegistrationType = Field(description="Kind of register.")
    rosh_level: RoshLevel | None = Field(
        default=None, description="Risk of serious harm level; required for ROSH only."
    )
    mappa_category: MappaNumber | None = Field(
        default=None, description="MAPPA category 1-3; required for MAPPA only."
    )
    mappa_level: MappaNumber | None = Field(
        default=None, description="MAPPA management level 1-3; required for MAPPA only."
    )
    code: Code | None = Field(
        default=None, description="The source's or Delius register code, e.g. RMRH."
    )
    description: LongText | None = Field(default=None, description="Register description.")
    start_date: date | None = Field(default=None, description="Date the registration started.")
    review_date: date | None = Field(default=None, description="Date of the next review.")
    active: bool = Field(default=True, description="False once the registration is deregistered.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        is_rosh = self.type is RegistrationType.ROSH
        if is_rosh and self.rosh_level is None:
            raise ValueError("rosh_level is required for a ROSH registration")
        if not is_rosh and self.rosh_level is not None:
            raise ValueError("rosh_level is only allowed on a ROSH registration")
        is_mappa = self.type is RegistrationType.MAPPA
        has_mappa = (self.mappa_category is not None, self.mappa_level is not None)
        if is_mappa and not all(has_mappa):
            raise ValueError("mappa_category and mappa_level are required for a MAPPA registration")
        if not is_mappa and any(has_mappa):
            raise ValueError(
                "mappa_category and mappa_level are only allowed on a MAPPA registration"
            )
        if (
            is_rosh
            and self.rosh_level is not None
            and self.code is not None
            and self.code.upper() in RoshLevel.delius_codes()
            and RoshLevel.from_delius_code(self.code) is not self.rosh_level
        ):
            raise ValueError("register code does not agree with rosh_level")
        return self


class Tier(CanonicalModel):
    """The case's tier: protect level A (highest) to D by change level 3 (highest) to 0.

    ``value`` is canonicalised to upper case (``"b2"`` becomes ``"B2"``); values outside
    A-D x 0-3 such as ``E1`` or ``A4`` are rejected. ``protect_level`` and ``change_level`` are
    derived from it and are not serialised.
    """

    value: str = Field(
        description="Tier as protect level A-D followed by change level 0-3, e.g. B2.",
        examples=["B2"],
    )
    assessed_on: date | None = Field(default=None, description="Date the tier was calculated.")

    @field_validator("value")
    @classmethod
    def _canonical_tier(cls, value: str) -> str:
        tier = value.upper()
        if not _TIER.fullmatch(tier):
            raise ValueError("tier should be a protect level A-D then a change level 0-3, e.g. B2")
        return tier

    @property
    def protect_level(self) -> str:
        """The protect level, A (highest) to D."""
        return self.value[0]

    @property
    def change_level(self) -> int:
        """The change level, 3 (highest) to 0."""
        return int(self.value[1])


class OffenderManager(CanonicalModel):
    """The probation practitioner responsible for the case, and their team and provider."""

    provider_code: Code = Field(
        description="Provider code: an NPS region such as N07 or a CRC code such as C16."
    )
    team_code: Code | None = Field(default=None, description="Team code within the provider.")
    staff_code: Code | None = Field(default=None, description="Staff code of the practitioner.")
    staff_name: Name | None = Field(default=None, description="Name of the practitioner.")


class Case(CanonicalModel):
    """The probation case held for a person: events, registers, tier and offender manager.

    Each event's ``event_number`` must be unique within the case: it is how later records from the
    same source update the same event.
    """

    events: list[Event] = Field(default_factory=list, description="Events (convictions).")
    registrations: list[Registration] = Field(
        default_factory=list, description="Registers (risk flags), current and past."
    )
    tier: Tier | None = Field(default=None, description="Current tier.")
    offender_manager: OffenderManager | None = Field(
        default=None, description="Current offender manager."
    )

    @model_validator(mode="after")
    def _unique_event_numbers(self) -> Self:
        numbers = [event.event_number for event in self.events]
        if len(set(numbers)) != len(numbers):
            raise ValueError("event_number is repeated within the case")
        return self
