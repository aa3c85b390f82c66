"""Writes canonical case records as a Casewright XML case export: the inverse of the adapter.

Used by the synthetic data generator, so it streams: each record becomes text as it is read and
the text goes out in blocks, with no tree built, whatever the number of records. What the format
cannot carry is listed in FORMAT.md ("Round trip").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import IO, Final

from adapters.xml_case_export.codes import (
    ADDRESS_STATUS,
    GENDER,
    LENGTH_UNIT,
    REGISTRATION_TYPE,
    REQUIREMENT_CATEGORY,
    REQUIREMENT_UNIT,
    RISK_LEVEL,
    SENTENCE_TYPE,
)
from adapters.xml_case_export.format import (
    CONTACT_NAMESPACE,
    CONTACT_PREFIX,
    EXPORT_NAMESPACE,
    escape_attribute,
    escape_text,
)
from adapters.xml_case_export.values import join_name
from schemas import (
    Address,
    Case,
    CaseRecord,
    Event,
    Offence,
    Person,
    Registration,
    Requirement,
    Sentence,
)

__all__ = ["write_records"]

_RECORDS_PER_WRITE: Final = 256
_CT: Final = CONTACT_PREFIX
# Indentation by depth below the root, so the file reads like the vendor's own.
_I2, _I3, _I4, _I5, _I6 = (" " * (2 * depth) for depth in range(2, 7))


def write_records(
    records: Iterable[CaseRecord],
    stream: IO[bytes],
    *,
    exported_at: datetime | None = None,
    system: str = "Casewright CMS 7.4",
) -> None:
    """Write `records` to `stream` as one export document (UTF-8), reading them as it goes.

    `exported_at` (default: now) stamps the root element; it must carry a UTC offset.
    """
    stamp = _timestamp(exported_at if exported_at is not None else datetime.now(UTC))
    parts: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<CaseExport xmlns="{EXPORT_NAMESPACE}" xmlns:{_CT}="{CONTACT_NAMESPACE}" '
        f'exportedAt="{stamp}" system="{escape_attribute(system)}">\n',
    ]
    for count, record in enumerate(records, start=1):
        _write_case(record, parts)
        if count % _RECORDS_PER_WRITE == 0:
            stream.write("".join(parts).encode("utf-8"))
            parts.clear()
    parts.append("</CaseExport>\n")
    stream.write("".join(parts).encode("utf-8"))


def _timestamp(value: datetime) -> str:
    if value.utcoffset() is None:
        raise ValueError("exported_at needs a UTC offset")
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _leaf(parts: list[str], indent: str, name: str, value: str | None) -> None:
    if value is not None:
        parts.append(f"{indent}<{name}>{escape_text(value)}</{name}>\n")


def _date_leaf(parts: list[str], indent: str, name: str, value: date | None) -> None:
    if value is not None:
        parts.append(f"{indent}<{name}>{value.isoformat()}</{name}>\n")


def _write_case(record: CaseRecord, parts: list[str]) -> None:
    provenance = record.provenance
    attributes = f' id="{escape_attribute(provenance.external_id)}"'
    if provenance.source_updated_at is not None:
        attributes += f' lastModified="{_timestamp(provenance.source_updated_at)}"'
    if provenance.source_version is not None:
        attributes += f' version="{escape_attribute(provenance.source_version)}"'
    parts.append(f"  <Case{attributes}>\n")
    _write_person(record.person, parts)
    if record.case is not None:
        _write_case_detail(record.case, parts)
    parts.append("  </Case>\n")


def _write_person(person: Person, parts: list[str]) -> None:
    parts.append(f"{_I2}<Person>\n")
    _leaf(parts, _I3, "Name", join_name(person.surname or "", person.forenames))
    if person.aliases:
        parts.append(f"{_I3}<Aliases>\n")
        for alias in person.aliases:
            born = (
                ""
                if alias.date_of_birth is None
                else f' dateOfBirth="{alias.date_of_birth.isoformat()}"'
            )
            name = escape_text(join_name(alias.surname, alias.forenames))
            parts.append(f"{_I4}<Alias{born}>{name}</Alias>\n")
        parts.append(f"{_I3}</Aliases>\n")
    _date_leaf(parts, _I3, "DateOfBirth", person.date_of_birth)
    if person.sex is not None:
        parts.append(f"{_I3}<Gender>{GENDER.word(person.sex)}</Gender>\n")
    identifiers = person.identifiers
    held = [
        (name, value)
        for name, value in (
            ("CRN", identifiers.crn),
            ("PNC", identifiers.pnc),
            ("CRO", identifiers.cro),
            ("NOMS", identifiers.noms),
            ("NINO", identifiers.nino),
        )
        if value is not None
    ]
    if held:
        parts.append(f"{_I3}<Identifiers>\n")
        for name, value in held:
            _leaf(parts, _I4, name, value)
        parts.append(f"{_I3}</Identifiers>\n")
    if person.addresses:
        parts.append(f"{_I3}<{_CT}:Addresses>\n")
        for address in person.addresses:
            _write_address(address, parts)
        parts.append(f"{_I3}</{_CT}:Addresses>\n")
    contact = person.contact
    if contact is not None:
        parts.append(f"{_I3}<{_CT}:Contact>\n")
        _leaf(parts, _I4, f"{_CT}:Telephone", contact.telephone)
        _leaf(parts, _I4, f"{_CT}:Mobile", contact.mobile)
        _leaf(parts, _I4, f"{_CT}:Email", contact.email)
        parts.append(f"{_I3}</{_CT}:Contact>\n")
    parts.append(f"{_I2}</Person>\n")


def _write_address(address: Address, parts: list[str]) -> None:
    no_fixed_abode = ' noFixedAbode="true"' if address.no_fixed_abode else ""
    status = ADDRESS_STATUS.word(address.status)
    parts.append(f'{_I4}<{_CT}:Address status="{status}"{no_fixed_abode}>\n')
    for line in address.lines:
        _leaf(parts, _I5, f"{_CT}:Line", line)
    _leaf(parts, _I5, f"{_CT}:Town", address.town)
    _leaf(parts, _I5, f"{_CT}:County", address.county)
    _leaf(parts, _I5, f"{_CT}:Postcode", address.postcode)
    _date_leaf(parts, _I5, f"{_CT}:From", address.start_date)
    _date_leaf(parts, _I5, f"{_CT}:To", address.end_date)
    parts.append(f"{_I4}</{_CT}:Address>\n")


def _write_case_detail(case: Case, parts: list[str]) -> None:
    # <Events> is written even when empty: its presence is what says the record has a case.
    if case.events:
        parts.append(f"{_I2}<Events>\n")
        for event in case.events:
            _write_event(event, parts)
        parts.append(f"{_I2}</Events>\n")
    else:
        parts.append(f"{_I2}<Events/>\n")
    if case.registrations:
        parts.append(f"{_I2}<Registrations>\n")
        for registration in case.registrations:
            _write_registration(registration, parts)
        parts.append(f"{_I2}</Registrations>\n")
    tier = case.tier
    if tier is not None:
        assessed = (
            "" if tier.assessed_on is None else f' assessedOn="{tier.assessed_on.isoformat()}"'
        )
        parts.append(f"{_I2}<Tier{assessed}>{escape_text(tier.value)}</Tier>\n")
    manager = case.offender_manager
    if manager is not None:
        parts.append(f"{_I2}<OffenderManager>\n")
        _leaf(parts, _I3, "Provider", manager.provider_code)
        _leaf(parts, _I3, "Team", manager.team_code)
        _leaf(parts, _I3, "StaffCode", manager.staff_code)
        _leaf(parts, _I3, "StaffName", manager.staff_name)
        parts.append(f"{_I2}</OffenderManager>\n")


def _write_event(event: Event, parts: list[str]) -> None:
    number = escape_attribute(event.event_number)
    parts.append(f'{_I3}<Event number="{number}" active="{_flag(event.active)}">\n')
    _date_leaf(parts, _I4, "ReferralDate", event.referral_date)
    _date_leaf(parts, _I4, "ConvictionDate", event.conviction_date)
    _leaf(parts, _I4, "Court", event.court)
    if event.offences:
        parts.append(f"{_I4}<Offences>\n")
        for offence in event.offences:
            _write_offence(offence, parts)
        parts.append(f"{_I4}</Offences>\n")
    if event.sentence is not None:
        _write_sentence(event.sentence, parts)
    if event.requirements:
        parts.append(f"{_I4}<Requirements>\n")
        for requirement in event.requirements:
            _write_requirement(requirement, parts)
        parts.append(f"{_I4}</Requirements>\n")
    parts.append(f"{_I3}</Event>\n")


def _write_offence(offence: Offence, parts: list[str]) -> None:
    code = escape_attribute(offence.code)
    parts.append(f'{_I5}<Offence code="{code}" main="{_flag(offence.main)}">\n')
    _leaf(parts, _I6, "Description", offence.description)
    _date_leaf(parts, _I6, "OffenceDate", offence.offence_date)
    parts.append(f"{_I5}</Offence>\n")


def _write_sentence(sentence: Sentence, parts: list[str]) -> None:
    parts.append(f"{_I4}<Sentence>\n")
    parts.append(f"{_I5}<Type>{SENTENCE_TYPE.word(sentence.type)}</Type>\n")
    if sentence.length is not None or sentence.length_unit is not None:
        unit = (
            ""
            if sentence.length_unit is None
            else f' unit="{LENGTH_UNIT.word(sentence.length_unit)}"'
        )
        length = "" if sentence.length is None else str(sentence.length)
        parts.append(f"{_I5}<Length{unit}>{length}</Length>\n")
    _date_leaf(parts, _I5, "StartDate", sentence.start_date)
    _date_leaf(parts, _I5, "ExpectedEndDate", sentence.expected_end_date)
    _date_leaf(parts, _I5, "TerminationDate", sentence.termination_date)
    parts.append(f"{_I4}</Sentence>\n")


def _write_requirement(requirement: Requirement, parts: list[str]) -> None:
    parts.append(f"{_I5}<Requirement>\n")
    category = REQUIREMENT_CATEGORY.word(requirement.category)
    parts.append(f"{_I6}<Category>{category}</Category>\n")
    _leaf(parts, _I6, "SubCategory", requirement.sub_category)
    if requirement.amount is not None or requirement.unit is not None:
        unit = (
            "" if requirement.unit is None else f' unit="{REQUIREMENT_UNIT.word(requirement.unit)}"'
        )
        amount = "" if requirement.amount is None else str(requirement.amount)
        parts.append(f"{_I6}<Amount{unit}>{amount}</Amount>\n")
    _date_leaf(parts, _I6, "StartDate", requirement.start_date)
    _date_leaf(parts, _I6, "EndDate", requirement.end_date)
    _leaf(parts, _I6, "Programme", requirement.programme)
    parts.append(f"{_I5}</Requirement>\n")


def _write_registration(registration: Registration, parts: list[str]) -> None:
    parts.append(f'{_I3}<Registration active="{_flag(registration.active)}">\n')
    parts.append(f"{_I4}<Type>{REGISTRATION_TYPE.word(registration.type)}</Type>\n")
    if registration.rosh_level is not None:
        parts.append(f"{_I4}<RiskLevel>{RISK_LEVEL.word(registration.rosh_level)}</RiskLevel>\n")
    if registration.mappa_category is not None:
        parts.append(f"{_I4}<MappaCategory>{registration.mappa_category}</MappaCategory>\n")
    if registration.mappa_level is not None:
        parts.append(f"{_I4}<MappaLevel>{registration.mappa_level}</MappaLevel>\n")
    _leaf(parts, _I4, "Code", registration.code)
    _leaf(parts, _I4, "Description", registration.description)
    _date_leaf(parts, _I4, "StartDate", registration.start_date)
    _date_leaf(parts, _I4, "ReviewDate", registration.review_date)
    parts.append(f"{_I3}</Registration>\n")
