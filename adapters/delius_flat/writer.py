"""Writing canonical records as a Delius flat export: the inverse of the adapter's translate.

Used to make synthetic exports. Streams: one record's rows at a time through `csv.writer`.
What the format cannot carry (FORMAT.md lists it) is left out; where the format has fewer
slots than the record (forenames, address lines) the extra values are joined into the last one.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import IO, Final

from adapters.delius_flat import codes
from adapters.delius_flat.columns import FIELDS, VERSIONS, ExportVersion, Scope
from schemas import (
    Address,
    AddressStatus,
    CaseRecord,
    Event,
    Offence,
    Registration,
    RegistrationType,
    Requirement,
    RequirementCategory,
)

__all__ = ["write_records"]

_SEX: Final = codes.reverse(codes.SEX)
_ADDRESS_STATUS: Final = codes.reverse(codes.ADDRESS_STATUS)
_DISPOSAL: Final = codes.reverse(codes.DISPOSAL_TYPE)
_SENTENCE_UNITS: Final = codes.reverse(codes.SENTENCE_LENGTH_UNITS)
_CATEGORY: Final = codes.reverse(codes.REQUIREMENT_CATEGORY)
_UNITS: Final = codes.reverse(codes.REQUIREMENT_UNITS)

# The logical row holds every field of FIELDS in order: person, then event, then requirement
# fields. The tuples _Rows builds follow that order; `order` picks and orders a version's columns.
_EVENT_WIDTH: Final = sum(1 for f in FIELDS if f.scope is Scope.EVENT)
_REQUIREMENT_WIDTH: Final = sum(1 for f in FIELDS if f.scope is Scope.REQUIREMENT)
_INDEX: Final = {f.key: index for index, f in enumerate(FIELDS)}
_NO_EVENT: Final = ("",) * _EVENT_WIDTH
_NO_REQUIREMENT: Final = ("",) * _REQUIREMENT_WIDTH


def write_records(
    records: Iterable[CaseRecord],
    stream: IO[bytes],
    *,
    export_version: str = "v2",
    encoding: str = "utf-8",
) -> None:
    """Write `records` to `stream` as a Delius flat export of `export_version` (v1 or v2).

    One row per requirement (an event without requirements, or a record without events, takes
    one row), CRLF line endings, no byte order mark. The CRN column holds
    `person.identifiers.crn`, or `provenance.external_id` when the record has no CRN. The stream
    is left open.
    """
    version = VERSIONS.get(export_version)
    if version is None:
        raise ValueError("export_version should be v1 or v2")
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    try:
        writer = csv.writer(text)
        writer.writerow(version.header)
        rows = _Rows(version)
        for record in records:
            writer.writerows(rows.of(record))
    finally:
        text.flush()
        text.detach()


def _date(value: date | None) -> str:
    return "" if value is None else _dd_mm_yyyy(value)


@functools.lru_cache(maxsize=1 << 16)
def _dd_mm_yyyy(value: date) -> str:
    # Cached: formatting dates is a large share of the writer's time, and they repeat.
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _timestamp(value: datetime | None) -> str:
    if value is None:
        return ""
    t = value.astimezone(UTC)
    return f"{_date(t.date())} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"


def _fit(values: Sequence[str], slots: int, joiner: str = " ") -> list[str]:
    """`values` in `slots` slots, any extra joined into the last, padded with ""."""
    if len(values) > slots:
        values = [*values[: slots - 1], joiner.join(values[slots - 1 :])]
    return [*values, *[""] * (slots - len(values))]


def _carried_address(addresses: Sequence[Address]) -> Address | None:
    """The one address the export carries: the first MAIN one, else the first."""
    for address in addresses:
        if address.status is AddressStatus.MAIN:
            return address
    return addresses[0] if addresses else None


def _first_active(
    registrations: Sequence[Registration], kind: RegistrationType
) -> Registration | None:
    return next((r for r in registrations if r.type is kind and r.active), None)


def _carried_offence(offences: Sequence[Offence]) -> Offence | None:
    """The export's one offence per event: the main one, else the first."""
    return next((o for o in offences if o.main), offences[0] if offences else None)


class _Rows:
    """Builds the rows of one record in a version's column order."""

    def __init__(self, version: ExportVersion) -> None:
        self.v1 = version.name == "v1"
        self.order = itemgetter(*(_INDEX[key] for key in version.order))
        self.forename_slots = 2 if self.v1 else 3
        # The event's active flag: v1 writes 1/0, v2 Y/N.
        self.yes, self.no = ("1", "0") if self.v1 else ("Y", "N")

    def of(self, record: CaseRecord) -> list[tuple[str, ...]]:
        person = self._person(record)
        case = record.case
        if case is None or not case.events:
            return [self.order(person + _NO_EVENT + _NO_REQUIREMENT)]
        rows: list[tuple[str, ...]] = []
        for event in case.events:
            event_part = self._event(event)
            if not event.requirements:
                rows.append(self.order(person + event_part + _NO_REQUIREMENT))
            for requirement in event.requirements:
                rows.append(self.order(person + event_part + self._requirement(requirement)))
        return rows

    def _person(self, record: CaseRecord) -> tuple[str, ...]:
        person = record.person
        ids = person.identifiers
        forename1, forename2, forename3 = _fit(person.forenames, self.forename_slots) + [""] * (
            3 - self.forename_slots
        )
        address = _carried_address(person.addresses)
        if address is None:
            address_part = ("",) * 9
        else:
            lines = address.lines
            if len(lines) == 1:
                building, street, district = "", lines[0], ""
            else:
                building, street, district = _fit(lines, 3, ", ")
            address_part = (
                _ADDRESS_STATUS[address.status],
                "",
                building,
                street,
                district,
                _text(address.town),
                _text(address.county),
                _text(address.postcode),
                "Y" if address.no_fixed_abode else "N",
            )
        contact = person.contact
        case = record.case
        rosh = mappa = tier = manager = None
        if case is not None:
            rosh = _first_active(case.registrations, RegistrationType.ROSH)
            mappa = _first_active(case.registrations, RegistrationType.MAPPA)
            tier, manager = case.tier, case.offender_manager
        updated = record.provenance.source_updated_at if not self.v1 else None
        mappa_code = "{}" if self.v1 else "M{}"
        return (
            ids.crn or record.provenance.external_id,
            person.surname or "",
            forename1,
            forename2,
            forename3,
            _date(person.date_of_birth),
            "" if person.sex is None else _SEX[person.sex],
            _text(ids.pnc),
            _text(ids.cro),
            _text(ids.noms),
            _text(ids.nino),
            _text(contact and contact.telephone),
            _text(contact and contact.mobile),
            _text(contact and contact.email),
            *address_part,
            _date(address.start_date) if address is not None else "",
            tier.value if tier is not None else "",
            _date(tier.assessed_on) if tier is not None else "",
            rosh.rosh_level.delius_code if rosh is not None and rosh.rosh_level else "",
            _date(rosh.start_date) if rosh is not None else "",
            _date(rosh.review_date) if rosh is not None else "",
            mappa_code.format(mappa.mappa_category) if mappa is not None else "",
            mappa_code.format(mappa.mappa_level) if mappa is not None else "",
            _date(mappa.start_date) if mappa is not None else "",
            manager.provider_code if manager is not None else "",
            _text(manager and manager.team_code),
            _text(manager and manager.staff_code),
            _text(manager and manager.staff_name),
            _timestamp(updated),
        )

    def _event(self, event: Event) -> tuple[str, ...]:
        offence = _carried_offence(event.offences)
        sentence = event.sentence
        active = self.yes if event.active else self.no
        if sentence is None:
            sentence_part: tuple[str, ...] = ("",) * 6
        else:
            sentence_part = (
                _DISPOSAL[sentence.type],
                _text(sentence.length),
                "" if sentence.length_unit is None else _SENTENCE_UNITS[sentence.length_unit],
                _date(sentence.start_date),
                _date(sentence.expected_end_date),
                _date(sentence.termination_date),
            )
        return (
            event.event_number,
            active,
            _date(event.referral_date),
            _date(event.conviction_date),
            _text(event.court),
            offence.code if offence is not None else "",
            _text(offence and offence.description),
            _date(offence.offence_date) if offence is not None else "",
            *sentence_part,
        )

    def _requirement(self, requirement: Requirement) -> tuple[str, ...]:
        amount, unit = requirement.amount, requirement.unit
        if amount is None or unit is None:
            length = units = ""
        elif requirement.category is RequirementCategory.UNPAID_WORK:
            length, units = str(amount * 60), codes.MINUTES
        else:
            length, units = str(amount), _UNITS[unit]
        return (
            _CATEGORY[requirement.category],
            _text(requirement.sub_category),
            length,
            units,
            _text(requirement.programme),
            _date(requirement.start_date),
            _date(requirement.end_date),
        )
