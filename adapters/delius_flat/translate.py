"""Translating one offender's rows into a canonical case record.

Errors name the source cell: `rows[<i>].<COLUMN>`, where `i` indexes `data["rows"]` (from 0) and
COLUMN is the column as that export version names it; `rows[<i>]` for a problem with a whole row.
A canonical validation error (a bad PNC check letter, a tier out of range) is reported on the
cell its value came from, found through `_Translation.origins`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from adapters.base import FieldError, RecordRejected
from adapters.delius_flat import codes
from adapters.delius_flat.columns import VERSIONS, ExportVersion, Scope
from adapters.delius_flat.reader import crn_key
from schemas import CaseRecord, RequirementCategory, RequirementUnit, RoshLevel
from schemas.identifiers import canonical_crn

__all__ = ["translate_record"]

V = TypeVar("V")
Loc = tuple[str | int, ...]

# ASCII digits only: str.isdigit and \d also accept other scripts' digits.
_DATE: Final = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_DATETIME: Final = re.compile(
    r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?"
)
_NUMBER: Final = re.compile(r"[0-9]{1,9}")
_MINUTES_PER_HOUR: Final = 60

_FORENAME_KEYS: Final = ("forename1", "forename2", "forename3")
_ADDRESS_KEYS: Final = (
    "address_status",
    "address_number",
    "building_name",
    "street_name",
    "district",
    "town",
    "county",
    "postcode",
    "address_start",
)
_SENTENCE_KEYS: Final = (
    "sentence_length",
    "sentence_units",
    "sentence_start",
    "expected_end",
    "termination",
)


def translate_record(data: Any) -> CaseRecord:
    """The canonical record for one raw record's data; RecordRejected naming source cells."""
    version, rows = _checked_shape(data)
    return _Translation(version, rows).record()


def _checked_shape(data: Any) -> tuple[ExportVersion, list[dict[str, str]]]:
    """The export version and rows of a raw record, or RecordRejected if it is not one."""

    def rejected(path: str, message: str, type_: str) -> RecordRejected:
        return RecordRejected([FieldError(path=path, message=message, type=type_)])

    if not isinstance(data, dict):
        raise rejected("", "a Delius flat record is an object with export_version and rows", "type")
    errors: list[FieldError] = []
    unreadable = data.get("unreadable")
    if unreadable is not None:
        entries = unreadable if isinstance(unreadable, list) else [unreadable]
        for index, entry in enumerate(entries):
            where = entry.get("position") if isinstance(entry, dict) else None
            errors.append(
                FieldError(
                    path=f"unreadable[{index}]",
                    message=(
                        f"{where if isinstance(where, str) else 'a row'} could not be read; "
                        "correct it into rows, or remove it, before replaying"
                    ),
                    type="unreadable_row",
                )
            )
    for key in sorted(set(data) - {"export_version", "rows", "unreadable"}, key=str):
        errors.append(FieldError(path=str(key), message="unknown field", type="extra_forbidden"))
    name = data.get("export_version")
    version = VERSIONS.get(name) if isinstance(name, str) else None
    if version is None:
        errors.append(
            FieldError(path="export_version", message="should be v1 or v2", type="version")
        )
    rows = data.get("rows")
    if not isinstance(rows, list) or not rows:
        errors.append(FieldError(path="rows", message="should be a non-empty list", type="rows"))
    if errors or version is None or not isinstance(rows, list):
        raise RecordRejected(errors)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.append(
                FieldError(path=f"rows[{index}]", message="should be an object", type="dict_type")
            )
            continue
        for column, value in row.items():
            if column not in version.key:
                errors.append(
                    FieldError(
                        path=f"rows[{index}].{column}",
                        message=f"not a column of export {version.name}",
                        type="extra_forbidden",
                    )
                )
            elif not isinstance(value, str):
                errors.append(
                    FieldError(
                        path=f"rows[{index}].{column}",
                        message="should be text",
                        type="string_type",
                    )
                )
    if errors:
        raise RecordRejected(errors)
    return version, rows


class _Translation:
    """One record's translation: collects errors and remembers where each value came from."""

    def __init__(self, version: ExportVersion, rows: list[dict[str, str]]) -> None:
        self.version = version
        self.rows = rows
        self.errors: list[FieldError] = []
        # Canonical location (as pydantic reports it) -> the source cell or row it came from.
        self.origins: dict[Loc, str] = {(): "rows[0]"}

    # -- reading cells -------------------------------------------------------------------

    def value(self, row: int, key: str) -> str:
        column = self.version.column.get(key)
        if column is None:
            return ""
        return self.rows[row].get(column, "").strip()

    def path(self, row: int, key: str) -> str:
        return f"rows[{row}].{self.version.column[key]}"

    def fail(self, row: int, key: str | None, message: str, type_: str) -> None:
        path = self.path(row, key) if key else f"rows[{row}]"
        self.errors.append(FieldError(path=path, message=message, type=type_))

    def put(self, target: dict[str, Any], loc: Loc, row: int, key: str, value: Any) -> None:
        """Set `target[loc[-1]] = value` (unless None) and remember the cell it came from."""
        if value is None or value == "":
            return
        target[str(loc[-1])] = value
        self.origins[loc] = self.path(row, key)

    def text(self, target: dict[str, Any], loc: Loc, row: int, key: str) -> None:
        self.put(target, loc, row, key, self.value(row, key))

    def date(self, row: int, key: str) -> date | None:
        raw = self.value(row, key)
        if not raw:
            return None
        match = _DATE.fullmatch(raw)
        if match is not None:
            day, month, year = (int(part) for part in match.groups())
            try:
                return date(year, month, day)
            except ValueError:
                pass
        self.fail(row, key, "should be a date written dd/mm/yyyy", "date_format")
        return None

    def number(self, row: int, key: str) -> int | None:
        raw = self.value(row, key)
        if not raw:
            return None
        if _NUMBER.fullmatch(raw):
            return int(raw)
        self.fail(row, key, "should be a whole number (digits only)", "int_parsing")
        return None

    def code(self, row: int, key: str, table: Mapping[str, V]) -> V | None:
        raw = self.value(row, key).upper()
        if not raw:
            return None
        if raw in table:
            return table[raw]
        self.fail(row, key, f"unknown code; expected one of {codes.expected(table)}", "code")
        return None

    def flag(self, row: int, key: str, *, default: bool) -> bool:
        value = self.code(row, key, codes.FLAG)
        return default if value is None else value

    def needs(self, row: int, key: str, *others: str) -> None:
        """Report `key` as missing when it is blank but any of `others` is filled."""
        if not self.value(row, key) and any(self.value(row, other) for other in others):
            columns = ", ".join(self.version.column[o] for o in others if o in self.version.column)
            self.fail(row, key, f"required when {columns} is filled", "missing")

    # -- the record ------------------------------------------------------------------------

    def record(self) -> CaseRecord:
        self._check_repeated(range(1, len(self.rows)), 0, Scope.PERSON, "offender")
        raw_crn = self.value(0, "crn")
        external_id = crn_key(raw_crn)
        crn: str | None = None
        try:
            crn = canonical_crn(raw_crn)
        except ValueError as error:
            self.fail(0, "crn", str(error), "crn_format")
        provenance: dict[str, Any] = {"external_id": crn or external_id or "?"}
        self.origins[("provenance",)] = self.path(0, "crn")
        self.put(
            provenance,
            ("provenance", "source_updated_at"),
            0,
            "last_updated",
            self._timestamp(0, "last_updated"),
        )
        record = {"provenance": provenance, "person": self._person(crn), "case": self._case()}
        rejected_id = external_id if 0 < len(external_id) <= 128 else None
        if self.errors:
            raise RecordRejected(self.errors, external_id=rejected_id)
        try:
            return CaseRecord.model_validate(record)
        except ValidationError as error:
            raise RecordRejected(
                self._mapped(error), external_id=rejected_id, document=record
            ) from None

    def _mapped(self, error: ValidationError) -> list[FieldError]:
        mapped: list[FieldError] = []
        for item in error.errors(include_url=False, include_input=False):
            loc: Loc = tuple(item["loc"])
            while loc not in self.origins:
                loc = loc[:-1]
            mapped.append(
                FieldError(path=self.origins[loc], message=item["msg"], type=item["type"])
            )
        return mapped

    def _check_repeated(self, rows: range | list[int], first: int, scope: Scope, what: str) -> None:
        """Report cells of `scope` that differ from the `first` row's."""
        keys = self.version.keys_in(scope)
        for row in rows:
            for key in keys:
                if self.value(row, key) != self.value(first, key):
                    self.fail(
                        row,
                        key,
                        f"differs from rows[{first}]: the {scope.value} columns of an {what} "
                        "must be the same on each of its rows",
                        "inconsistent_rows",
                    )

    def _timestamp(self, row: int, key: str) -> datetime | None:
        raw = self.value(row, key)
        if not raw:
            return None
        match = _DATETIME.fullmatch(raw)
        if match is not None:
            day, month, year, hour, minute = (int(part) for part in match.groups()[:5])
            second = int(match.group(6) or 0)
            try:
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except ValueError:
                pass
        self.fail(row, key, "should be a UTC time written dd/mm/yyyy hh:mm:ss", "datetime_format")
        return None

    # -- the person --------------------------------------------------------------------------

    def _person(self, crn: str | None) -> dict[str, Any]:
        person: dict[str, Any] = {}
        at: Loc = ("person",)
        self.origins[at] = "rows[0]"
        forenames: list[str] = []
        for key in _FORENAME_KEYS:
            if name := self.value(0, key):
                self.origins[(*at, "forenames", len(forenames))] = self.path(0, key)
                forenames.append(name)
        person["forenames"] = forenames
        self.origins[(*at, "surname")] = self.path(0, "surname")
        person["surname"] = self.value(0, "surname")
        self.put(person, (*at, "date_of_birth"), 0, "date_of_birth", self.date(0, "date_of_birth"))
        self.put(person, (*at, "sex"), 0, "sex", self.code(0, "sex", codes.SEX))
        identifiers: dict[str, Any] = {}
        self.origins[(*at, "identifiers")] = "rows[0]"
        self.put(identifiers, (*at, "identifiers", "crn"), 0, "crn", crn)
        for key in ("pnc", "cro", "noms", "nino"):
            self.text(identifiers, (*at, "identifiers", key), 0, key)
        person["identifiers"] = identifiers
        address = self._address()
        if address is not None:
            person["addresses"] = [address]
        contact: dict[str, Any] = {}
        for key in ("telephone", "mobile", "email"):
            self.text(contact, (*at, "contact", key), 0, key)
        if contact:
            person["contact"] = contact
        return person

    def _address(self) -> dict[str, Any] | None:
        no_fixed_abode = self.flag(0, "no_fixed_abode", default=False)
        if not no_fixed_abode and not any(self.value(0, key) for key in _ADDRESS_KEYS):
            return None
        at: Loc = ("person", "addresses", 0)
        self.origins[at] = self.path(0, "address_status")
        address: dict[str, Any] = {"no_fixed_abode": no_fixed_abode}
        if not self.value(0, "address_status"):
            self.fail(0, "address_status", "required when an address is given", "missing")
        self.put(
            address,
            (*at, "status"),
            0,
            "address_status",
            self.code(0, "address_status", codes.ADDRESS_STATUS),
        )
        street = f"{self.value(0, 'address_number')} {self.value(0, 'street_name')}".strip()
        street_key = "street_name" if self.value(0, "street_name") else "address_number"
        lines: list[str] = []
        for key, line in (
            ("building_name", self.value(0, "building_name")),
            (street_key, street),
            ("district", self.value(0, "district")),
        ):
            if line:
                self.origins[(*at, "lines", len(lines))] = self.path(0, key)
                lines.append(line)
        address["lines"] = lines
        self.text(address, (*at, "town"), 0, "town")
        self.text(address, (*at, "county"), 0, "county")
        self.text(address, (*at, "postcode"), 0, "postcode")
        self.put(address, (*at, "start_date"), 0, "address_start", self.date(0, "address_start"))
        return address

    # -- the case ----------------------------------------------------------------------------

    def _case(self) -> dict[str, Any] | None:
        at: Loc = ("case",)
        self.origins[at] = "rows[0]"
        case: dict[str, Any] = {}
        events = self._events()
        if events:
            case["events"] = events
        registrations = self._registrations()
        if registrations:
            case["registrations"] = registrations
        self.needs(0, "tier", "tier_date")
        if self.value(0, "tier"):
            tier: dict[str, Any] = {}
            self.origins[(*at, "tier")] = self.path(0, "tier")
            self.text(tier, (*at, "tier", "value"), 0, "tier")
            self.put(tier, (*at, "tier", "assessed_on"), 0, "tier_date", self.date(0, "tier_date"))
            case["tier"] = tier
        self.needs(0, "provider", "team", "staff_code", "staff_name")
        if self.value(0, "provider"):
            manager: dict[str, Any] = {}
            self.origins[(*at, "offender_manager")] = self.path(0, "provider")
            for field_name, key in (
                ("provider_code", "provider"),
                ("team_code", "team"),
                ("staff_code", "staff_code"),
                ("staff_name", "staff_name"),
            ):
                self.text(manager, (*at, "offender_manager", field_name), 0, key)
            case["offender_manager"] = manager
        return case or None

    def _registrations(self) -> list[dict[str, Any]]:
        registrations: list[dict[str, Any]] = []
        self.needs(0, "rosh_code", "rosh_start", "rosh_review")
        rosh_code = self.value(0, "rosh_code").upper()
        if rosh_code:
            try:
                level = RoshLevel.from_delius_code(rosh_code)
            except ValueError as error:
                self.fail(0, "rosh_code", str(error), "code")
            else:
                at: Loc = ("case", "registrations", len(registrations))
                self.origins[at] = self.path(0, "rosh_code")
                rosh: dict[str, Any] = {"type": "ROSH", "rosh_level": level, "code": rosh_code}
                self.put(rosh, (*at, "start_date"), 0, "rosh_start", self.date(0, "rosh_start"))
                self.put(rosh, (*at, "review_date"), 0, "rosh_review", self.date(0, "rosh_review"))
                registrations.append(rosh)
        self.needs(0, "mappa_category", "mappa_level", "mappa_start")
        self.needs(0, "mappa_level", "mappa_category")
        category = self.code(0, "mappa_category", codes.MAPPA_CATEGORY)
        level_number = self.code(0, "mappa_level", codes.MAPPA_LEVEL)
        if category is not None and level_number is not None:
            at = ("case", "registrations", len(registrations))
            self.origins[at] = self.path(0, "mappa_category")
            mappa: dict[str, Any] = {
                "type": "MAPPA",
                "mappa_category": category,
                "mappa_level": level_number,
            }
            self.put(mappa, (*at, "start_date"), 0, "mappa_start", self.date(0, "mappa_start"))
            registrations.append(mappa)
        return registrations

    def _events(self) -> list[dict[str, Any]]:
        by_number: dict[str, list[int]] = {}
        for row in range(len(self.rows)):
            by_number.setdefault(self.value(row, "event_number"), []).append(row)
        eventless = by_number.pop("", [])
        event_keys = self.version.keys_in(Scope.EVENT)
        requirement_keys = self.version.keys_in(Scope.REQUIREMENT)
        for row in eventless:
            if len(self.rows) > 1:
                self.fail(
                    row,
                    "event_number",
                    "blank, but the offender has other rows: each row of an offender with "
                    "events belongs to one event",
                    "missing",
                )
            elif any(self.value(row, key) for key in (*event_keys, *requirement_keys)):
                self.fail(
                    row,
                    "event_number",
                    "required when event or requirement columns are filled",
                    "missing",
                )
        return [
            self._event(index, number, rows)
            for index, (number, rows) in enumerate(by_number.items())
        ]

    def _event(self, index: int, number: str, rows: list[int]) -> dict[str, Any]:
        first = rows[0]
        self._check_repeated(rows[1:], first, Scope.EVENT, "event")
        at: Loc = ("case", "events", index)
        self.origins[at] = f"rows[{first}]"
        event: dict[str, Any] = {"event_number": number}
        self.origins[(*at, "event_number")] = self.path(first, "event_number")
        event["active"] = self.flag(first, "active", default=True)
        self.put(
            event, (*at, "referral_date"), first, "referral_date", self.date(first, "referral_date")
        )
        self.put(
            event,
            (*at, "conviction_date"),
            first,
            "conviction_date",
            self.date(first, "conviction_date"),
        )
        self.text(event, (*at, "court"), first, "court")
        self.needs(first, "offence_code", "offence_desc", "offence_date")
        if self.value(first, "offence_code"):
            offence: dict[str, Any] = {"main": True}
            where: Loc = (*at, "offences", 0)
            self.origins[where] = self.path(first, "offence_code")
            self.text(offence, (*where, "code"), first, "offence_code")
            self.text(offence, (*where, "description"), first, "offence_desc")
            self.put(
                offence,
                (*where, "offence_date"),
                first,
                "offence_date",
                self.date(first, "offence_date"),
            )
            event["offences"] = [offence]
        self.needs(first, "disposal", *_SENTENCE_KEYS)
        if self.value(first, "disposal"):
            event["sentence"] = self._sentence(first, (*at, "sentence"))
        requirements: list[dict[str, Any]] = []
        keys = self.version.keys_in(Scope.REQUIREMENT)
        for row in rows:
            if any(self.value(row, key) for key in keys):
                requirement = self._requirement(row, (*at, "requirements", len(requirements)))
                requirements.append(requirement)
            elif len(rows) > 1:
                self.fail(
                    row,
                    "rqmnt_category",
                    "blank, but the event has other rows: each row of an event with "
                    "requirements holds one requirement",
                    "missing",
                )
        event["requirements"] = requirements
        return event

    def _sentence(self, row: int, at: Loc) -> dict[str, Any]:
        self.origins[at] = f"rows[{row}]"
        sentence: dict[str, Any] = {}
        self.put(
            sentence,
            (*at, "type"),
            row,
            "disposal",
            self.code(row, "disposal", codes.DISPOSAL_TYPE),
        )
        self.needs(row, "sentence_units", "sentence_length")
        self.needs(row, "sentence_length", "sentence_units")
        self.put(
            sentence, (*at, "length"), row, "sentence_length", self.number(row, "sentence_length")
        )
        self.put(
            sentence,
            (*at, "length_unit"),
            row,
            "sentence_units",
            self.code(row, "sentence_units", codes.SENTENCE_LENGTH_UNITS),
        )
        self.put(
            sentence, (*at, "start_date"), row, "sentence_start", self.date(row, "sentence_start")
        )
        self.put(
            sentence,
            (*at, "expected_end_date"),
            row,
            "expected_end",
            self.date(row, "expected_end"),
        )
        self.put(
            sentence, (*at, "termination_date"), row, "termination", self.date(row, "termination")
        )
        return sentence

    def _requirement(self, row: int, at: Loc) -> dict[str, Any]:
        self.origins[at] = f"rows[{row}]"
        requirement: dict[str, Any] = {}
        if not self.value(row, "rqmnt_category"):
            self.fail(
                row,
                "rqmnt_category",
                "required when other requirement columns are filled",
                "missing",
            )
        category = self.code(row, "rqmnt_category", codes.REQUIREMENT_CATEGORY)
        self.put(requirement, (*at, "category"), row, "rqmnt_category", category)
        self.text(requirement, (*at, "sub_category"), row, "rqmnt_sub")
        self.text(requirement, (*at, "programme"), row, "rqmnt_programme")
        self.put(
            requirement, (*at, "start_date"), row, "rqmnt_start", self.date(row, "rqmnt_start")
        )
        self.put(requirement, (*at, "end_date"), row, "rqmnt_end", self.date(row, "rqmnt_end"))
        self.needs(row, "rqmnt_length", "rqmnt_units")
        length = self.number(row, "rqmnt_length")
        if length is None or category is None:
            return requirement
        amount_unit = self._amount(row, category, length)
        if amount_unit is not None:
            amount, unit = amount_unit
            self.put(requirement, (*at, "amount"), row, "rqmnt_length", amount)
            self.put(requirement, (*at, "unit"), row, "rqmnt_units", unit)
        return requirement

    def _amount(
        self, row: int, category: RequirementCategory, length: int
    ) -> tuple[int, RequirementUnit] | None:
        """The canonical amount and unit of a requirement's length, minutes becoming hours."""
        category_code = self.value(row, "rqmnt_category").upper()
        units = self.value(row, "rqmnt_units").upper()
        units = units or codes.REQUIREMENT_DEFAULT_UNITS.get(category_code, "")
        unpaid_work = category is RequirementCategory.UNPAID_WORK
        if not units:
            self.fail(
                row,
                "rqmnt_units",
                f"required for this requirement category when RQMNT_LENGTH is given; "
                f"expected one of {codes.expected(codes.REQUIREMENT_UNITS)}",
                "missing",
            )
        elif unpaid_work and units != codes.MINUTES:
            self.fail(
                row,
                "rqmnt_units",
                f"unpaid work length is given in minutes: should be {codes.MINUTES} or blank",
                "unit_mismatch",
            )
        elif units == codes.MINUTES:
            if not unpaid_work:
                self.fail(
                    row,
                    "rqmnt_units",
                    "minutes (MI) are only used for unpaid work",
                    "unit_mismatch",
                )
            elif length % _MINUTES_PER_HOUR:
                self.fail(
                    row,
                    "rqmnt_length",
                    "unpaid work length is in minutes and should be a whole number of hours "
                    "(a multiple of 60)",
                    "whole_hours",
                )
            else:
                return length // _MINUTES_PER_HOUR, RequirementUnit.HOURS
        elif units in codes.REQUIREMENT_UNITS:
            return length, codes.REQUIREMENT_UNITS[units]
        else:
            self.fail(
                row,
                "rqmnt_units",
                f"unknown code; expected one of {codes.MINUTES}, "
                f"{codes.expected(codes.REQUIREMENT_UNITS)}",
                "code",
            )
        return None
