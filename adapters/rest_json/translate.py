"""Translating one `/cases` item into a canonical case record.

Two steps: the item is read against the case system's own shape (`items.py`), which maps its
codes; then each canonical part is built and validated. Every error is reported on the path of
the field the case system sent (`riskLevel`, `sentences[0].requirements[1].quantity`), never on
the canonical path, so the people who run the case system can find what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from adapters.base import FieldError, RecordRejected
from adapters.rest_json.items import (
    AddressItem,
    AliasItem,
    CaseItem,
    FlagItem,
    MappaItem,
    OffenceItem,
    PersonItem,
    RequirementItem,
    SentenceItem,
)
from schemas import (
    Address,
    Alias,
    Case,
    CaseRecord,
    ContactDetails,
    Event,
    Identifiers,
    Offence,
    OffenderManager,
    Person,
    Provenance,
    Registration,
    RegistrationType,
    Requirement,
    Sentence,
    Tier,
)

ModelT = TypeVar("ModelT", bound=BaseModel)


def source_path(loc: Sequence[str | int]) -> str:
    """A location as the case system would write it: `sentences[0].type`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _join(at: str, relative: str) -> str:
    if not relative:
        return at
    if not at or relative.startswith("["):
        return at + relative
    return f"{at}.{relative}"


@dataclass(frozen=True)
class ListPaths:
    """Where a canonical list field came from: the source list, and each kept element's path."""

    whole: str
    items: Sequence[str]


PathMap = Mapping[str, "str | ListPaths"]


def external_id_of(item: Any) -> str | None:
    """The item's `id` (an integer id is read as its decimal text), or None if it has none."""
    if not isinstance(item, dict):
        return None
    value = item.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and 0 < len(value.strip()) <= 128:
        return value.strip()
    return None


class _Translation:
    """Builds the canonical parts of one item, collecting every error on its source path."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def build(
        self,
        model: type[ModelT],
        values: dict[str, Any],
        *,
        at: str,
        paths: PathMap,
        whole: str = "",
    ) -> ModelT | None:
        try:
            return model.model_validate(values)
        except ValidationError as error:
            for item in error.errors(include_url=False, include_input=False, include_context=False):
                self.errors.append(
                    FieldError(
                        path=_locate(item["loc"], at=at, paths=paths, whole=whole),
                        message=item["msg"],
                        type=item["type"],
                    )
                )
            return None

    def mark(self) -> int:
        return len(self.errors)

    def failed_since(self, mark: int) -> bool:
        """Whether a part built since `mark` failed (then its parent is not built)."""
        return len(self.errors) > mark

    def reject(self, path: str, message: str, kind: str) -> None:
        self.errors.append(FieldError(path=path, message=message, type=kind))


def _locate(loc: Sequence[str | int], *, at: str, paths: PathMap, whole: str) -> str:
    if not loc:
        return _join(at, whole)
    head, rest = str(loc[0]), list(loc[1:])
    mapped = paths.get(head, head)
    if isinstance(mapped, ListPaths):
        if rest and isinstance(rest[0], int) and rest[0] < len(mapped.items):
            base = _join(at, mapped.items[rest[0]])
            rest = rest[1:]
        else:
            base = _join(at, mapped.whole)
    else:
        base = _join(at, mapped)
    return _join(base, source_path(rest)) if rest else base


def _names(first: str | None, middle: Sequence[str | None]) -> tuple[list[str], ListPaths]:
    """Forenames from firstName and middleNames, blanks dropped, with each one's source path."""
    names: list[str] = []
    paths: list[str] = []
    if first is not None:
        names.append(first)
        paths.append("firstName")
    for index, name in enumerate(middle):
        if name is not None and name.strip():
            names.append(name)
            paths.append(f"middleNames[{index}]")
    return names, ListPaths("middleNames", paths)


def translate_item(data: Any) -> CaseRecord:
    """The canonical record for one item; RecordRejected naming source fields if it is bad."""
    if not isinstance(data, dict):
        raise RecordRejected(
            [FieldError(path="", message="an item must be a JSON object", type="dict_type")]
        )
    external_id = external_id_of(data)
    try:
        item = CaseItem.model_validate(data)
    except ValidationError as error:
        raise RecordRejected(
            [
                FieldError(path=source_path(e["loc"]), message=e["msg"], type=e["type"])
                for e in error.errors(include_url=False, include_input=False, include_context=False)
            ],
            external_id=external_id,
        ) from None
    translation = _Translation()
    provenance = translation.build(
        Provenance,
        {
            "external_id": item.id,
            "source_version": item.revision,
            "source_updated_at": item.updated_at,
        },
        at="",
        paths={
            "external_id": "id",
            "source_version": "revision",
            "source_updated_at": "updatedAt",
        },
    )
    person = _person(translation, item.person)
    case = _case(translation, item) if item.has_case else None
    if translation.errors or provenance is None or person is None:
        raise RecordRejected(translation.errors, external_id=external_id)
    return CaseRecord(provenance=provenance, person=person, case=case)


def _person(translation: _Translation, item: PersonItem) -> Person | None:
    at = "person"
    mark = translation.mark()
    identifiers = translation.build(
        Identifiers,
        {
            "crn": item.identifiers.crn,
            "pnc": item.identifiers.pnc_id,
            "cro": item.identifiers.cro_number,
            "noms": item.identifiers.noms_number,
            "nino": item.identifiers.ni_number,
        }
        if item.identifiers
        else {},
        at=f"{at}.identifiers",
        paths={
            "crn": "crn",
            "pnc": "pncId",
            "cro": "croNumber",
            "noms": "nomsNumber",
            "nino": "niNumber",
        },
    )
    contact = (
        translation.build(
            ContactDetails,
            {
                "telephone": item.contact.phone,
                "mobile": item.contact.mobile,
                "email": item.contact.email,
            },
            at=f"{at}.contact",
            paths={"telephone": "phone"},
        )
        if item.contact
        else None
    )
    aliases = [
        _alias(translation, alias, at=f"{at}.aliases[{index}]")
        for index, alias in enumerate(item.aliases)
    ]
    addresses = [
        _address(translation, address, at=f"{at}.addresses[{index}]")
        for index, address in enumerate(item.addresses)
    ]
    forenames, forename_paths = _names(item.first_name, item.middle_names)
    if translation.failed_since(mark):
        return None
    return translation.build(
        Person,
        {
            "forenames": forenames,
            "surname": item.last_name,
            "date_of_birth": item.date_of_birth,
            "sex": item.gender,
            "aliases": aliases,
            "addresses": addresses,
            "contact": contact,
            "identifiers": identifiers,
        },
        at=at,
        paths={
            "forenames": forename_paths,
            "surname": "lastName",
            "date_of_birth": "dateOfBirth",
            "sex": "gender",
        },
    )


def _alias(translation: _Translation, item: AliasItem, *, at: str) -> Alias | None:
    forenames, forename_paths = _names(item.first_name, item.middle_names)
    return translation.build(
        Alias,
        {"forenames": forenames, "surname": item.last_name, "date_of_birth": item.date_of_birth},
        at=at,
        paths={"forenames": forename_paths, "surname": "lastName", "date_of_birth": "dateOfBirth"},
    )


def _address(translation: _Translation, item: AddressItem, *, at: str) -> Address | None:
    kept = [
        (index, line)
        for index, line in enumerate(item.address_lines)
        if line is not None and line.strip()
    ]
    return translation.build(
        Address,
        {
            "status": item.type,
            "lines": [line for _, line in kept],
            "town": item.town,
            "county": item.county,
            "postcode": item.postcode,
            "start_date": item.start_date,
            "end_date": item.end_date,
            "no_fixed_abode": item.no_fixed_abode,
        },
        at=at,
        paths={
            "status": "type",
            "lines": ListPaths("addressLines", [f"addressLines[{index}]" for index, _ in kept]),
            "start_date": "startDate",
            "end_date": "endDate",
            "no_fixed_abode": "noFixedAbode",
        },
    )


def _case(translation: _Translation, item: CaseItem) -> Case | None:
    mark = translation.mark()
    events = [
        _event(translation, sentence, at=f"sentences[{index}]")
        for index, sentence in enumerate(item.sentences)
    ]
    registrations = _registrations(translation, item)
    tier = (
        translation.build(
            Tier,
            {"value": item.tier, "assessed_on": item.tier_assessed_on},
            at="",
            paths={"value": "tier", "assessed_on": "tierAssessedOn"},
        )
        if item.tier is not None
        else None
    )
    manager = (
        translation.build(
            OffenderManager,
            {
                "provider_code": item.manager.provider_code,
                "team_code": item.manager.team_code,
                "staff_code": item.manager.staff_code,
                "staff_name": item.manager.staff_name,
            },
            at="manager",
            paths={
                "provider_code": "providerCode",
                "team_code": "teamCode",
                "staff_code": "staffCode",
                "staff_name": "staffName",
            },
        )
        if item.manager
        else None
    )
    if translation.failed_since(mark):
        return None
    return translation.build(
        Case,
        {
            "events": events,
            "registrations": registrations,
            "tier": tier,
            "offender_manager": manager,
        },
        at="",
        paths={"events": "sentences"},
        whole="sentences",
    )


def _event(translation: _Translation, item: SentenceItem, *, at: str) -> Event | None:
    mark = translation.mark()
    offences = [
        _offence(translation, offence, at=f"{at}.offences[{index}]")
        for index, offence in enumerate(item.offences)
    ]
    requirements = [
        _requirement(translation, requirement, at=f"{at}.requirements[{index}]")
        for index, requirement in enumerate(item.requirements)
    ]
    sentence: Sentence | None = None
    if item.sentenced:
        if item.type is None:
            translation.reject(
                f"{at}.type",
                "a sentence with a length or dates needs a sentence type",
                "missing",
            )
        else:
            sentence = translation.build(
                Sentence,
                {
                    "type": item.type,
                    "length": item.length,
                    "length_unit": item.length_unit,
                    "start_date": item.start_date,
                    "expected_end_date": item.expected_end_date,
                    "termination_date": item.terminated_on,
                },
                at=at,
                paths={
                    "length_unit": "lengthUnit",
                    "start_date": "startDate",
                    "expected_end_date": "expectedEndDate",
                    "termination_date": "terminatedOn",
                },
            )
    if translation.failed_since(mark):
        return None
    return translation.build(
        Event,
        {
            "event_number": item.id,
            "referral_date": item.referral_date,
            "conviction_date": item.conviction_date,
            "court": item.court,
            "offences": offences,
            "sentence": sentence,
            "requirements": requirements,
            "active": item.active,
        },
        at=at,
        paths={
            "event_number": "id",
            "referral_date": "referralDate",
            "conviction_date": "convictionDate",
        },
        whole="offences",
    )


def _offence(translation: _Translation, item: OffenceItem, *, at: str) -> Offence | None:
    return translation.build(
        Offence,
        {
            "code": item.home_office_code,
            "description": item.description,
            "offence_date": item.committed_on,
            "main": item.main,
        },
        at=at,
        paths={"code": "homeOfficeCode", "offence_date": "committedOn"},
    )


def _requirement(
    translation: _Translation, item: RequirementItem, *, at: str
) -> Requirement | None:
    return translation.build(
        Requirement,
        {
            "category": item.requirement_type,
            "sub_category": item.sub_type,
            "amount": item.quantity,
            "unit": item.quantity_unit,
            "start_date": item.start_date,
            "end_date": item.end_date,
            "programme": item.programme_name,
        },
        at=at,
        paths={
            "category": "requirementType",
            "sub_category": "subType",
            "amount": "quantity",
            "unit": "quantityUnit",
            "start_date": "startDate",
            "end_date": "endDate",
            "programme": "programmeName",
        },
    )


def _registrations(translation: _Translation, item: CaseItem) -> list[Registration | None]:
    registrations: list[Registration | None] = []
    if item.risk_level is not None:
        registrations.append(
            translation.build(
                Registration,
                {
                    "type": RegistrationType.ROSH,
                    "rosh_level": item.risk_level,
                    "code": item.risk_level.delius_code,
                    "start_date": item.risk_assessed_on,
                    "review_date": item.risk_review_due,
                },
                at="",
                paths={"start_date": "riskAssessedOn", "review_date": "riskReviewDue"},
                whole="riskLevel",
            )
        )
    if item.mappa is not None:
        registrations.append(_mappa(translation, item.mappa))
    registrations.extend(
        _flag(translation, flag, at=f"flags[{index}]") for index, flag in enumerate(item.flags)
    )
    return registrations


def _mappa(translation: _Translation, item: MappaItem) -> Registration | None:
    return translation.build(
        Registration,
        {
            "type": RegistrationType.MAPPA,
            "mappa_category": item.category,
            "mappa_level": item.level,
            "start_date": item.start_date,
            "review_date": item.review_date,
        },
        at="mappa",
        paths={
            "mappa_category": "category",
            "mappa_level": "level",
            "start_date": "startDate",
            "review_date": "reviewDate",
        },
    )


def _flag(translation: _Translation, item: FlagItem, *, at: str) -> Registration | None:
    return translation.build(
        Registration,
        {
            "type": item.flag_type,
            "code": item.code,
            "description": item.description,
            "start_date": item.start_date,
            "review_date": item.review_date,
            "active": item.active,
        },
        at=at,
        paths={"type": "flagType", "start_date": "startDate", "review_date": "reviewDate"},
    )
