"""Data quality: keep a record whose identity fields are bad, drop those fields, say so.

A record that fails the canonical schema only on identity fields (a date of birth, a surname,
a forename, a national identifier, a postcode, an alias) is kept: each offending field is
removed and reported as a warning `{path, rule, message, value}`, `value` the raw value as
sent. A postcode that is not a UK one moves to the address's `postal_code`, kept as text. Sex
stays strict: it is a code the adapter maps, and an unmapped code is a fault to fix. Anything
else wrong, or too little left to identify the person (see `identifiable`), rejects the record.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypedDict

from pydantic import ValidationError
from sqlalchemy.orm import Session

from adapters.base import FieldError, Unparsed
from gateway.repositories import data_quality as data_quality_repo
from gateway.repositories import source_records as source_records_repo
from gateway.services import audit
from gateway.services.clients import Principal
from gateway.storable import first_unstorable, safe_text
from schemas import CaseRecord

__all__ = [
    "MINIMUM",
    "DataQualityWarning",
    "identifiable",
    "keep_with_warnings",
    "missing_field_warnings",
]

#: What a record must still hold after its bad fields are dropped (documented in the README).
MINIMUM: Final = (
    "an external id and at least one of: a surname or forename, a date of birth, or a "
    "national identifier (CRN, PNC, CRO, NOMS, NINO)"
)

MISSING: Final = "missing"
INVALID: Final = "invalid"
NOT_UK_POSTCODE: Final = "not_uk_postcode"

_IDENTIFIER_KINDS: Final = ("crn", "pnc", "cro", "noms", "nino")
# A list item marked for removal; lists are filtered once every fix is applied.
_DROPPED: Final = object()
# A fix can expose another error on a parent (an alias with its bad date dropped is fine, but
# an address with its postcode moved may still fail): a few rounds settle any such chain.
_ROUNDS: Final = 4
_MAX_POSTAL_CODE: Final = 200


class DataQualityWarning(TypedDict):
    """One identity field the gateway dropped (or kept as text) instead of rejecting the record."""

    path: str
    rule: str
    message: str
    value: Any


def keep_with_warnings(document: Any) -> tuple[CaseRecord, list[DataQualityWarning]] | None:
    """The record with its bad identity fields dropped, and a warning for each; None if the
    record has errors elsewhere (those still reject it)."""
    if not isinstance(document, dict):
        return None
    working = copy.deepcopy(document)
    warnings: list[DataQualityWarning] = []
    for _ in range(_ROUNDS):
        try:
            return CaseRecord.model_validate(working), warnings
        except ValidationError as error:
            items = error.errors(include_url=False, include_input=False)
        for item in items:
            warning = _drop(working, tuple(item["loc"]), item["type"], item["msg"])
            if warning is None:
                return None
            warnings.append(warning)
        _filter_dropped(working)
    return None


def missing_field_warnings(
    record: CaseRecord, warnings: Sequence[DataQualityWarning]
) -> list[DataQualityWarning]:
    """Warnings for identity fields a valid record leaves empty (a null surname)."""
    if record.person.surname is None and not any(
        warning["path"] == "person.surname" for warning in warnings
    ):
        return [
            DataQualityWarning(
                path="person.surname", rule=MISSING, message="no surname", value=None
            )
        ]
    return []


def identifiable(record: CaseRecord) -> bool:
    """Whether enough is left to identify the person (see MINIMUM); the external id is required
    by the schema itself."""
    person = record.person
    identifiers = person.identifiers
    return bool(
        person.surname
        or person.forenames
        or person.date_of_birth
        or any(getattr(identifiers, kind) for kind in _IDENTIFIER_KINDS)
    )


def unidentifiable_error() -> FieldError:
    return FieldError(
        path="person",
        message=f"too little to identify the person: a record needs {MINIMUM}",
        type="unidentifiable",
    )


def as_field_errors(warnings: Sequence[DataQualityWarning]) -> list[FieldError]:
    """Warnings as the field errors a strict source's record is quarantined with."""
    return [
        FieldError(path=warning["path"], message=warning["message"], type=warning["rule"])
        for warning in warnings
    ]


def _drop(
    document: dict[str, Any], loc: tuple[str | int, ...], error_type: str, message: str
) -> DataQualityWarning | None:
    """Remove the field at `loc` if it is an identity field; the warning, or None if it is not."""
    match loc:
        case ("person", "surname"):
            person = document["person"]
            value = person.get("surname")
            person["surname"] = None
            rule = MISSING if error_type == "missing" or _blank(value) else INVALID
            return _warning("person.surname", rule, message, value)
        case ("person", "date_of_birth" | "forenames" as name):
            return _warning(f"person.{name}", INVALID, message, document["person"].pop(name))
        case ("person", "forenames", int(index)):
            forenames = document["person"]["forenames"]
            value, forenames[index] = forenames[index], _DROPPED
            return _warning(f"person.forenames.{index}", INVALID, message, value)
        case ("person", "identifiers"):
            value = document["person"].pop("identifiers")
            return _warning("person.identifiers", INVALID, message, value)
        case ("person", "identifiers", str(kind)) if kind in _IDENTIFIER_KINDS:
            value = document["person"]["identifiers"].pop(kind)
            return _warning(f"person.identifiers.{kind}", INVALID, message, value)
        case ("person", "addresses", int(index), "postcode"):
            address = document["person"]["addresses"][index]
            value = address.pop("postcode")
            path = f"person.addresses.{index}.postcode"
            kept = value.strip() if isinstance(value, str) else ""
            if kept and len(kept) <= _MAX_POSTAL_CODE and "postal_code" not in address:
                address["postal_code"] = kept
                return _warning(path, NOT_UK_POSTCODE, "not a UK postcode: kept as text", value)
            return _warning(path, INVALID, message, value)
        case ("person", "aliases", int(index), "date_of_birth"):
            value = document["person"]["aliases"][index].pop("date_of_birth")
            return _warning(f"person.aliases.{index}.date_of_birth", INVALID, message, value)
        case ("person", "aliases", int(index), *_):
            aliases = document["person"]["aliases"]
            value, aliases[index] = aliases[index], _DROPPED
            return _warning(f"person.aliases.{index}", INVALID, message, value)
    return None


def _filter_dropped(document: dict[str, Any]) -> None:
    person = document.get("person")
    if not isinstance(person, dict):
        return
    for name in ("forenames", "aliases"):
        items = person.get(name)
        if isinstance(items, list):
            person[name] = [item for item in items if item is not _DROPPED]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _warning(path: str, rule: str, message: str, value: Any) -> DataQualityWarning:
    if isinstance(value, Unparsed):
        # The adapter could not convert it: its message says why better than the schema's.
        message, value = value.message, value.value
    # The value goes into a JSON column: anything no column takes is kept as its text.
    # (A date or any other non-JSON type counts as unstorable too.)
    if first_unstorable(value) is not None:
        value = safe_text(repr(value))
    return DataQualityWarning(path=path, rule=rule, message=message, value=value)


def _stored(warning: dict[str, Any]) -> DataQualityWarning:
    return DataQualityWarning(
        path=warning["path"],
        rule=warning["rule"],
        message=warning["message"],
        value=warning.get("value"),
    )


@dataclass(frozen=True)
class WarningCount:
    path: str
    rule: str
    records: int


@dataclass(frozen=True)
class WarnedRecord:
    source_record_id: uuid.UUID
    external_id: str
    person_id: uuid.UUID
    warnings: list[DataQualityWarning]


@dataclass(frozen=True)
class SourceDataQuality:
    source: str
    records: int
    warned_records: int
    counts: list[WarningCount]
    items: list[WarnedRecord]
    next_after: str | None


def source_report(
    session: Session,
    *,
    source: str,
    after: str | None,
    limit: int,
    principal: Principal | None,
    now: datetime,
) -> SourceDataQuality:
    """A source's warnings counted by field path and rule, and a page of its warned records."""
    rows = source_records_repo.page_for_source(
        session, source, external_id=None, after=after, limit=limit, warned_only=True
    )
    live = source_records_repo.live_persons_of(session, {row.person_id for row in rows})
    if rows:
        # The page shows raw values as sent: consulting personal data is recorded.
        audit.record(
            session,
            principal=principal,
            action=audit.AuditAction.CONSULT,
            resource="data-quality",
            person_ids=[live[row.person_id] for row in rows],
            now=now,
            detail={"source": source, "records": len(rows)},
        )
    totals = data_quality_repo.record_totals(session, source=source)
    return SourceDataQuality(
        source=source,
        records=totals.records,
        warned_records=totals.warned,
        counts=[
            WarningCount(path=path, rule=rule, records=records)
            for path, rule, records in data_quality_repo.warning_counts(session, source=source)
        ],
        items=[
            WarnedRecord(
                source_record_id=row.id,
                external_id=row.external_id,
                person_id=live[row.person_id],
                warnings=[_stored(warning) for warning in row.warnings or []],
            )
            for row in rows
        ],
        next_after=rows[-1].external_id if len(rows) == limit else None,
    )
