"""Writing canonical records in the case system's own shape: pages of `/cases` items.

`write_records` writes one page per line (JSON Lines of pages, media type
`application/vnd.crc-rest-json+jsonl`), each page exactly what `GET /cases` returns:
`{"items": [...], "nextCursor": "p000002"}`, the last page with `"nextCursor": null`. With no
records at all it writes one empty page. The synthetic data generator uses it to produce files a
test double of the case system can serve, or that a source can upload.

The case system cannot hold everything the canonical schema can, so reading written records
back gives the same records except: `provenance.source` and `received_at` (the gateway's to
fill); only the first active ROSH registration (as `riskLevel`, without its description) and the
first active MAPPA registration are kept, and a ROSH code is always its Delius code; and an empty
case (no events, registrations, tier or manager) reads back as no case.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date
from itertools import islice
from typing import IO, Any

from adapters.rest_json.codes import (
    ADDRESS_TYPES,
    FLAG_TYPES,
    GENDERS,
    LENGTH_UNITS,
    QUANTITY_UNITS,
    REQUIREMENT_TYPES,
    RISK_LEVELS,
    SENTENCE_TYPES,
    reverse,
)
from schemas import (
    Address,
    Alias,
    Case,
    CaseRecord,
    Event,
    Person,
    Registration,
    RegistrationType,
)

_GENDER = reverse(GENDERS)
_RISK = reverse(RISK_LEVELS)
_ADDRESS = reverse(ADDRESS_TYPES)
_SENTENCE = reverse(SENTENCE_TYPES)
_LENGTH = reverse(LENGTH_UNITS)
_REQUIREMENT = reverse(REQUIREMENT_TYPES)
_QUANTITY = reverse(QUANTITY_UNITS)
_FLAG = reverse(FLAG_TYPES)


def write_records(
    records: Iterable[CaseRecord], stream: IO[bytes], *, page_size: int = 500
) -> None:
    """Write the records as pages of `/cases` items, one JSON page per line (see the module)."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    pages = _pages(records, page_size)
    page = next(pages, [])
    number = 1
    while True:
        following = next(pages, None)
        document = {
            "items": page,
            "nextCursor": None if following is None else f"p{number + 1:06d}",
        }
        stream.write(
            json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        )
        if following is None:
            return
        page, number = following, number + 1


def _pages(records: Iterable[CaseRecord], page_size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, page_size)):
        yield [case_item(record) for record in chunk]


def case_item(record: CaseRecord) -> dict[str, Any]:
    """One record as a `/cases` item."""
    provenance = record.provenance
    item: dict[str, Any] = {"id": provenance.external_id}
    if provenance.source_version is not None:
        version = provenance.source_version
        item["revision"] = (
            int(version) if version.isdigit() and str(int(version)) == version else version
        )
    if provenance.source_updated_at is not None:
        item["updatedAt"] = provenance.source_updated_at.isoformat()
    item["person"] = _person(record.person)
    if record.case is not None:
        item.update(_case(record.case))
    return item


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """Leave out what is not known, as the case system does."""
    return {key: value for key, value in values.items() if value is not None}


def _names(forenames: list[str]) -> dict[str, Any]:
    return {"firstName": forenames[0] if forenames else None, "middleNames": forenames[1:]}


def _person(person: Person) -> dict[str, Any]:
    identifiers = person.identifiers
    return _compact(
        {
            **_names(person.forenames),
            "lastName": person.surname,
            "dateOfBirth": _day(person.date_of_birth),
            "gender": None if person.sex is None else _GENDER[person.sex],
            "aliases": [_alias(alias) for alias in person.aliases],
            "addresses": [_address(address) for address in person.addresses],
            "contact": None
            if person.contact is None
            else _compact(
                {
                    "phone": person.contact.telephone,
                    "mobile": person.contact.mobile,
                    "email": person.contact.email,
                }
            ),
            "identifiers": _compact(
                {
                    "crn": identifiers.crn,
                    "pncId": identifiers.pnc,
                    "croNumber": identifiers.cro,
                    "nomsNumber": identifiers.noms,
                    "niNumber": identifiers.nino,
                }
            ),
        }
    )


def _alias(alias: Alias) -> dict[str, Any]:
    return _compact(
        {
            **_names(alias.forenames),
            "lastName": alias.surname,
            "dateOfBirth": _day(alias.date_of_birth),
        }
    )


def _address(address: Address) -> dict[str, Any]:
    return _compact(
        {
            "type": _ADDRESS[address.status],
            "addressLines": address.lines,
            "town": address.town,
            "county": address.county,
            "postcode": address.postcode,
            "startDate": _day(address.start_date),
            "endDate": _day(address.end_date),
            "noFixedAbode": address.no_fixed_abode,
        }
    )


def _first_active(case: Case, kind: RegistrationType) -> Registration | None:
    return next(
        (r for r in case.registrations if r.type is kind and r.active),
        None,
    )


def _case(case: Case) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    rosh = _first_active(case, RegistrationType.ROSH)
    if rosh is not None and rosh.rosh_level is not None:
        fields["riskLevel"] = _RISK[rosh.rosh_level]
        fields["riskAssessedOn"] = _day(rosh.start_date)
        fields["riskReviewDue"] = _day(rosh.review_date)
    mappa = _first_active(case, RegistrationType.MAPPA)
    if mappa is not None:
        fields["mappa"] = _compact(
            {
                "category": mappa.mappa_category,
                "level": mappa.mappa_level,
                "startDate": _day(mappa.start_date),
                "reviewDate": _day(mappa.review_date),
            }
        )
    flags = [
        _compact(
            {
                "flagType": _FLAG[registration.type],
                "code": registration.code,
                "description": registration.description,
                "startDate": _day(registration.start_date),
                "reviewDate": _day(registration.review_date),
                "active": registration.active,
            }
        )
        for registration in case.registrations
        if registration.type in _FLAG
    ]
    if flags:
        fields["flags"] = flags
    if case.tier is not None:
        fields["tier"] = case.tier.value
        fields["tierAssessedOn"] = _day(case.tier.assessed_on)
    if case.offender_manager is not None:
        manager = case.offender_manager
        fields["manager"] = _compact(
            {
                "providerCode": manager.provider_code,
                "teamCode": manager.team_code,
                "staffCode": manager.staff_code,
                "staffName": manager.staff_name,
            }
        )
    if case.events:
        fields["sentences"] = [_sentence(event) for event in case.events]
    return _compact(fields)


def _sentence(event: Event) -> dict[str, Any]:
    sentence = event.sentence
    return _compact(
        {
            "id": event.event_number,
            "type": None if sentence is None else _SENTENCE[sentence.type],
            "length": None if sentence is None else sentence.length,
            "lengthUnit": None
            if sentence is None or sentence.length_unit is None
            else _LENGTH[sentence.length_unit],
            "startDate": None if sentence is None else _day(sentence.start_date),
            "expectedEndDate": None if sentence is None else _day(sentence.expected_end_date),
            "terminatedOn": None if sentence is None else _day(sentence.termination_date),
            "referralDate": _day(event.referral_date),
            "convictionDate": _day(event.conviction_date),
            "court": event.court,
            "active": event.active,
            "offences": [
                _compact(
                    {
                        "homeOfficeCode": offence.code,
                        "description": offence.description,
                        "committedOn": _day(offence.offence_date),
                        "main": offence.main,
                    }
                )
                for offence in event.offences
            ],
            "requirements": [
                _compact(
                    {
                        "requirementType": _REQUIREMENT[requirement.category],
                        "subType": requirement.sub_category,
                        "quantity": requirement.amount,
                        "quantityUnit": None
                        if requirement.unit is None
                        else _QUANTITY[requirement.unit],
                        "startDate": _day(requirement.start_date),
                        "endDate": _day(requirement.end_date),
                        "programmeName": requirement.programme,
                    }
                )
                for requirement in event.requirements
            ],
        }
    )
