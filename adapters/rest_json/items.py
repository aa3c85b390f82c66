"""The case system's item shape, as pydantic models: camelCase names, its own codes.

Validating an item against these models is the first step of `translate`: an error here names
the field as the case system spells it (`person.gender`, `sentences[0].type`). Codes are mapped
onto canonical codes as they are read; timestamps with a UTC offset are normalised to UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

from adapters.rest_json.codes import (
    ADDRESS_TYPES,
    FLAG_TYPES,
    GENDERS,
    LENGTH_UNITS,
    QUANTITY_UNITS,
    REQUIREMENT_TYPES,
    RISK_LEVELS,
    SENTENCE_TYPES,
)
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

CodeT = TypeVar("CodeT")

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _blank_to_none(value: Any) -> Any:
    """The case system sends "" for a value it does not hold; that is an absent value."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _identifier_text(value: Any) -> Any:
    """Ids are strings, but some deployments send integers; read 42 as "42" (never a bool)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _day(value: Any) -> date | None:
    """A calendar date: YYYY-MM-DD, or a timestamp at local midnight with its offset.

    The case system serialises some dates as midnight in UK local time (`...T00:00:00+01:00`).
    Converting those to UTC would move them to the day before, so the local date is kept; any
    other time of day is ambiguous and refused.
    """
    value = _blank_to_none(value)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("should be a date as text, YYYY-MM-DD")
    text = value.strip()
    if _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError("is not a calendar date") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("should be a date, YYYY-MM-DD") from None
    if moment.tzinfo is None or moment.timetz().replace(tzinfo=None) != time(0, 0):
        raise ValueError(
            "should be a date, YYYY-MM-DD, or local midnight with a UTC offset "
            "(e.g. 1984-06-02T00:00:00+01:00)"
        )
    return moment.date()


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 timestamp with a UTC offset, normalised to UTC."""
    value = _blank_to_none(value)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("should be an ISO 8601 timestamp as text")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            "should be an ISO 8601 timestamp with a UTC offset, e.g. 2026-03-04T10:15:00+01:00"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("should carry a UTC offset, e.g. 2026-03-04T10:15:00+01:00")
    return moment.astimezone(UTC)


def _code(
    table: Mapping[str, CodeT], what: str, *, required: bool = False
) -> Callable[[Any], CodeT | None]:
    expected = ", ".join(table)

    def read(value: Any) -> CodeT | None:
        value = _blank_to_none(value)
        if value is None:
            if required:
                raise ValueError(f"a {what} code is required; expected one of {expected}")
            return None
        if not isinstance(value, str):
            raise ValueError(f"should be a {what} code as text; expected one of {expected}")
        try:
            return table[value.strip().upper()]
        except KeyError:
            # The value itself is not repeated: messages end up in quarantine and logs.
            raise ValueError(f"unknown {what} code; expected one of {expected}") from None

    return read


def _list_or_empty(value: Any) -> Any:
    return [] if value is None else value


Text = Annotated[str | None, BeforeValidator(_blank_to_none)]
Id = Annotated[str, BeforeValidator(_identifier_text)]
OptionalId = Annotated[
    str | None, BeforeValidator(_identifier_text), BeforeValidator(_blank_to_none)
]
Day = Annotated[date | None, BeforeValidator(_day)]
Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
Names = Annotated[list[str | None], BeforeValidator(_list_or_empty)]
Flag = Annotated[bool, BeforeValidator(lambda value: False if value is None else value)]
Active = Annotated[bool, BeforeValidator(lambda value: True if value is None else value)]


class SourceModel(BaseModel):
    """Base of the case system's shapes: camelCase names, unknown fields refused."""

    # Unknown fields are refused: a field the vendor adds would otherwise be dropped unseen.
    # Such a record is quarantined, and replayed once the adapter maps the new field.
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)


class IdentifiersItem(SourceModel):
    crn: Text = None
    pnc_id: Text = None
    cro_number: Text = None
    noms_number: Text = None
    ni_number: Text = None


class ContactItem(SourceModel):
    phone: Text = None
    mobile: Text = None
    email: Text = None


class AliasItem(SourceModel):
    first_name: Text = None
    middle_names: Names = []
    last_name: str
    date_of_birth: Day = None


class AddressItem(SourceModel):
    type: Annotated[
        AddressStatus, BeforeValidator(_code(ADDRESS_TYPES, "address type", required=True))
    ]
    address_lines: Names = []
    town: Text = None
    county: Text = None
    postcode: Text = None
    start_date: Day = None
    end_date: Day = None
    no_fixed_abode: Flag = False


class PersonItem(SourceModel):
    first_name: Text = None
    middle_names: Names = []
    last_name: str
    date_of_birth: Day = None
    gender: Annotated[Sex | None, BeforeValidator(_code(GENDERS, "gender"))] = None
    aliases: Annotated[list[AliasItem], BeforeValidator(_list_or_empty)] = []
    addresses: Annotated[list[AddressItem], BeforeValidator(_list_or_empty)] = []
    contact: ContactItem | None = None
    identifiers: IdentifiersItem | None = None


class OffenceItem(SourceModel):
    home_office_code: str
    description: Text = None
    committed_on: Day = None
    main: Flag = False


class RequirementItem(SourceModel):
    requirement_type: Annotated[
        RequirementCategory,
        BeforeValidator(_code(REQUIREMENT_TYPES, "requirement type", required=True)),
    ]
    sub_type: Text = None
    quantity: int | None = None
    quantity_unit: Annotated[
        RequirementUnit | None, BeforeValidator(_code(QUANTITY_UNITS, "quantity unit"))
    ] = None
    start_date: Day = None
    end_date: Day = None
    programme_name: Text = None


class SentenceItem(SourceModel):
    id: Id
    type: Annotated[
        SentenceType | None, BeforeValidator(_code(SENTENCE_TYPES, "sentence type"))
    ] = None
    length: int | None = None
    length_unit: Annotated[
        LengthUnit | None, BeforeValidator(_code(LENGTH_UNITS, "length unit"))
    ] = None
    start_date: Day = None
    expected_end_date: Day = None
    terminated_on: Day = None
    referral_date: Day = None
    conviction_date: Day = None
    court: Text = None
    active: Active = True
    offences: Annotated[list[OffenceItem], BeforeValidator(_list_or_empty)] = []
    requirements: Annotated[list[RequirementItem], BeforeValidator(_list_or_empty)] = []

    @property
    def sentenced(self) -> bool:
        """Whether anything of the sentence itself is given (not only the conviction)."""
        return any(
            value is not None
            for value in (
                self.type,
                self.length,
                self.length_unit,
                self.start_date,
                self.expected_end_date,
                self.terminated_on,
            )
        )


class MappaItem(SourceModel):
    category: int
    level: int
    start_date: Day = None
    review_date: Day = None


class FlagItem(SourceModel):
    flag_type: Annotated[
        RegistrationType, BeforeValidator(_code(FLAG_TYPES, "flag type", required=True))
    ]
    code: Text = None
    description: Text = None
    start_date: Day = None
    review_date: Day = None
    active: Active = True


class ManagerItem(SourceModel):
    provider_code: str
    team_code: Text = None
    staff_code: Text = None
    staff_name: Text = None


class CaseItem(SourceModel):
    """One item of a `/cases` page: a person and their case, as the case system holds them."""

    id: Id
    revision: OptionalId = None
    # Read (and so checked) but not mapped: the canonical schema keeps no creation time.
    created_at: Timestamp = None
    updated_at: Timestamp = None
    person: PersonItem
    risk_level: Annotated[RoshLevel | None, BeforeValidator(_code(RISK_LEVELS, "risk level"))] = (
        None
    )
    risk_assessed_on: Day = None
    risk_review_due: Day = None
    mappa: MappaItem | None = None
    flags: Annotated[list[FlagItem], BeforeValidator(_list_or_empty)] = []
    tier: Text = None
    tier_assessed_on: Day = None
    manager: ManagerItem | None = None
    sentences: Annotated[list[SentenceItem], BeforeValidator(_list_or_empty)] = []

    @property
    def has_case(self) -> bool:
        return bool(
            self.sentences
            or self.flags
            or self.risk_level is not None
            or self.mappa is not None
            or self.tier is not None
            or self.manager is not None
        )
