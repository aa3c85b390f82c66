"""The columns of the two export versions: their names, order, scope and which are required.

Each column carries one logical field (`Field.key`). A field belongs to the person (repeated on
every row of an offender), to an event (repeated on every row of that event) or to a
requirement (one per row). v2 renamed, reordered and added columns; a field a version lacks has
no column there (`None`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["FIELDS", "VERSIONS", "ExportVersion", "Field", "Scope", "detect_version"]


class Scope(StrEnum):
    """Which part of the record a column belongs to."""

    PERSON = "person"
    EVENT = "event"
    REQUIREMENT = "requirement"


@dataclass(frozen=True)
class Field:
    """One logical field and the column that holds it in each export version."""

    key: str
    scope: Scope
    v1: str | None
    v2: str | None
    required: bool = False


P, E, R = Scope.PERSON, Scope.EVENT, Scope.REQUIREMENT

#: Every field, in the logical order the writer builds rows in.
FIELDS: Final[tuple[Field, ...]] = (
    Field("crn", P, "OFFENDER_CRN", "CRN", required=True),
    Field("surname", P, "SURNAME", "FAMILY_NAME", required=True),
    Field("forename1", P, "FIRST_NAME", "FORENAME_1", required=True),
    Field("forename2", P, "SECOND_NAME", "FORENAME_2"),
    Field("forename3", P, None, "FORENAME_3"),
    Field("date_of_birth", P, "DATE_OF_BIRTH", "BIRTH_DATE", required=True),
    Field("sex", P, "SEX", "GENDER_CODE", required=True),
    Field("pnc", P, "PNC_NUMBER", "PNC_ID"),
    Field("cro", P, "CRO_NUMBER", "CRO_ID"),
    Field("noms", P, "NOMS_NUMBER", "NOMS_ID"),
    Field("nino", P, "NI_NUMBER", "NI_NUMBER"),
    Field("telephone", P, None, "TELEPHONE_NUMBER"),
    Field("mobile", P, None, "MOBILE_NUMBER"),
    Field("email", P, None, "EMAIL_ADDRESS"),
    Field("address_status", P, "ADDRESS_STATUS", "ADDRESS_STATUS_CODE"),
    Field("address_number", P, "ADDRESS_NUMBER", "HOUSE_NUMBER"),
    Field("building_name", P, "BUILDING_NAME", "BUILDING_NAME"),
    Field("street_name", P, "STREET_NAME", "STREET_NAME"),
    Field("district", P, "DISTRICT", "DISTRICT"),
    Field("town", P, "TOWN_CITY", "TOWN_CITY"),
    Field("county", P, "COUNTY", "COUNTY"),
    Field("postcode", P, "POSTCODE", "POSTCODE"),
    Field("no_fixed_abode", P, "NO_FIXED_ABODE", "NO_FIXED_ABODE"),
    Field("address_start", P, None, "ADDRESS_START_DATE"),
    Field("tier", P, "TIER", "TIER_CODE"),
    Field("tier_date", P, None, "TIER_DATE"),
    Field("rosh_code", P, "ROSH_CODE", "ROSH_REGISTER_CODE"),
    Field("rosh_start", P, None, "ROSH_REGISTER_DATE"),
    Field("rosh_review", P, None, "ROSH_NEXT_REVIEW_DATE"),
    Field("mappa_category", P, "MAPPA_CATEGORY", "MAPPA_CATEGORY_CODE"),
    Field("mappa_level", P, "MAPPA_LEVEL", "MAPPA_LEVEL_CODE"),
    Field("mappa_start", P, None, "MAPPA_REGISTER_DATE"),
    Field("provider", P, "PROVIDER_CODE", "OM_PROVIDER_CODE"),
    Field("team", P, "TEAM_CODE", "OM_TEAM_CODE"),
    Field("staff_code", P, "STAFF_CODE", "OM_STAFF_CODE"),
    Field("staff_name", P, "STAFF_NAME", "OM_STAFF_NAME"),
    Field("last_updated", P, None, "LAST_UPDATED_DATETIME"),
    Field("event_number", E, "EVENT_NUMBER", "EVENT_NUMBER", required=True),
    Field("active", E, "ACTIVE_FLAG", "EVENT_ACTIVE"),
    Field("referral_date", E, None, "REFERRAL_DATE"),
    Field("conviction_date", E, "CONVICTION_DATE", "CONVICTION_DATE"),
    Field("court", E, "COURT", "COURT_NAME"),
    Field("offence_code", E, "MAIN_OFFENCE_CODE", "MAIN_OFFENCE_CODE"),
    Field("offence_desc", E, "MAIN_OFFENCE", "MAIN_OFFENCE_DESC"),
    Field("offence_date", E, None, "OFFENCE_DATE"),
    Field("disposal", E, "DISPOSAL_TYPE", "DISPOSAL_TYPE_CODE", required=True),
    Field("sentence_length", E, "SENTENCE_LENGTH", "SENTENCE_LENGTH"),
    Field("sentence_units", E, "SENTENCE_LENGTH_UNITS", "SENTENCE_LENGTH_UNITS"),
    Field("sentence_start", E, "SENTENCE_DATE", "SENTENCE_START_DATE"),
    Field("expected_end", E, "EXPECTED_END_DATE", "EXPECTED_END_DATE"),
    Field("termination", E, "TERMINATION_DATE", "TERMINATION_DATE"),
    Field("rqmnt_category", R, "RQMNT_MAIN_CAT", "RQMNT_MAIN_CAT_CODE", required=True),
    Field("rqmnt_sub", R, "RQMNT_SUB_CAT", "RQMNT_SUB_CAT_DESC"),
    Field("rqmnt_length", R, "RQMNT_LENGTH", "RQMNT_LENGTH", required=True),
    Field("rqmnt_units", R, "RQMNT_UNITS", "RQMNT_LENGTH_UNITS", required=True),
    Field("rqmnt_programme", R, None, "RQMNT_PROGRAMME"),
    Field("rqmnt_start", R, "RQMNT_START_DATE", "RQMNT_START_DATE"),
    Field("rqmnt_end", R, "RQMNT_TERMINATION_DATE", "RQMNT_TERMINATION_DATE"),
)

# The order each export writes its columns in, by field key.
_V1_ORDER: Final = [
    "crn",
    "surname",
    "forename1",
    "forename2",
    "date_of_birth",
    "sex",
    "pnc",
    "cro",
    "noms",
    "nino",
    "address_status",
    "address_number",
    "building_name",
    "street_name",
    "district",
    "town",
    "county",
    "postcode",
    "no_fixed_abode",
    "tier",
    "rosh_code",
    "mappa_category",
    "mappa_level",
    "provider",
    "team",
    "staff_code",
    "staff_name",
    "event_number",
    "conviction_date",
    "court",
    "offence_code",
    "offence_desc",
    "disposal",
    "sentence_length",
    "sentence_units",
    "sentence_start",
    "expected_end",
    "termination",
    "active",
    "rqmnt_category",
    "rqmnt_sub",
    "rqmnt_length",
    "rqmnt_units",
    "rqmnt_start",
    "rqmnt_end",
]
_V2_ORDER: Final = [
    "crn",
    "pnc",
    "cro",
    "noms",
    "nino",
    "surname",
    "forename1",
    "forename2",
    "forename3",
    "date_of_birth",
    "sex",
    "telephone",
    "mobile",
    "email",
    "address_status",
    "address_number",
    "building_name",
    "street_name",
    "district",
    "town",
    "county",
    "postcode",
    "no_fixed_abode",
    "address_start",
    "provider",
    "team",
    "staff_code",
    "staff_name",
    "tier",
    "tier_date",
    "rosh_code",
    "rosh_start",
    "rosh_review",
    "mappa_category",
    "mappa_level",
    "mappa_start",
    "event_number",
    "active",
    "referral_date",
    "conviction_date",
    "court",
    "offence_code",
    "offence_desc",
    "offence_date",
    "disposal",
    "sentence_start",
    "sentence_length",
    "sentence_units",
    "expected_end",
    "termination",
    "rqmnt_category",
    "rqmnt_sub",
    "rqmnt_length",
    "rqmnt_units",
    "rqmnt_programme",
    "rqmnt_start",
    "rqmnt_end",
    "last_updated",
]


@dataclass(frozen=True)
class ExportVersion:
    """One export version's layout."""

    name: str
    #: Field keys in the order the export writes them (the header the writer produces).
    order: tuple[str, ...]
    #: Column name of each field the version has.
    column: dict[str, str]
    #: Field key of each column name.
    key: dict[str, str]
    #: Columns a header must have.
    required: frozenset[str]

    @property
    def header(self) -> list[str]:
        return [self.column[key] for key in self.order]

    def keys_in(self, scope: Scope) -> tuple[str, ...]:
        """The keys of this version's fields in one scope, in logical order."""
        return tuple(f.key for f in FIELDS if f.scope is scope and f.key in self.column)


def _version(name: str, order: list[str]) -> ExportVersion:
    column = {f.key: name_ for f in FIELDS if (name_ := f.v1 if name == "v1" else f.v2) is not None}
    if sorted(order) != sorted(column):  # a layout bug in this module, found at import
        raise RuntimeError(f"export {name} column order does not list exactly its fields")
    return ExportVersion(
        name=name,
        order=tuple(order),
        column=column,
        key={col: key for key, col in column.items()},
        required=frozenset(column[f.key] for f in FIELDS if f.required),
    )


VERSIONS: Final[dict[str, ExportVersion]] = {
    "v1": _version("v1", _V1_ORDER),
    "v2": _version("v2", _V2_ORDER),
}


def detect_version(columns: list[str]) -> ExportVersion | None:
    """The version whose CRN column the (normalised) header has, if exactly one."""
    names = set(columns)
    found = [version for version in VERSIONS.values() if version.column["crn"] in names]
    return found[0] if len(found) == 1 else None
