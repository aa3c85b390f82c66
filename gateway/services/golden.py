"""Survivorship: the golden person built from every source record linked to a person."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

PERSON_FIELDS = (
    "forenames",
    "surname",
    "aliases",
    "date_of_birth",
    "sex",
    "addresses",
    "contact",
)
IDENTIFIER_FIELDS = ("crn", "pnc", "cro", "noms", "nino")


@dataclass(frozen=True)
class LinkedRecord:
    """A source record's canonical person as survivorship sees it."""

    source: str
    external_id: str
    received_at: datetime
    person: dict[str, Any]


@dataclass(frozen=True)
class GoldenPerson:
    person: dict[str, Any]
    provenance: dict[str, dict[str, str]]


def _present(value: Any) -> bool:
    return value not in (None, "", [], {})


def build_golden(records: Iterable[LinkedRecord]) -> GoldenPerson:
    """Most recent wins, field by field: a later record's non-empty value replaces an earlier one.

    Every field of the result carries the source record it came from.
    """
    person: dict[str, Any] = dict.fromkeys(PERSON_FIELDS)
    person["forenames"] = []
    person["aliases"] = []
    person["addresses"] = []
    identifiers: dict[str, Any] = dict.fromkeys(IDENTIFIER_FIELDS)
    provenance: dict[str, dict[str, str]] = {}
    ordered = sorted(records, key=lambda r: (r.received_at, r.source, r.external_id))
    for linked in ordered:
        origin = {
            "source": linked.source,
            "external_id": linked.external_id,
            "received_at": linked.received_at.isoformat(),
        }
        for field in PERSON_FIELDS:
            value = linked.person.get(field)
            if _present(value):
                person[field] = value
                provenance[field] = origin
        for field in IDENTIFIER_FIELDS:
            value = (linked.person.get("identifiers") or {}).get(field)
            if _present(value):
                identifiers[field] = value
                provenance[f"identifiers.{field}"] = origin
    person["identifiers"] = identifiers
    return GoldenPerson(person=person, provenance=provenance)
