"""Survivorship: the golden person built from every source record linked to a person."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.matching.views import JUNK_CROS, JUNK_DATES_OF_BIRTH
from gateway.settings import SurvivorshipSettings, SurvivorshipStrategy

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
#: Every field survivorship decides, as named in provenance and in the settings.
GOLDEN_FIELDS = (*PERSON_FIELDS, *(f"identifiers.{name}" for name in IDENTIFIER_FIELDS))

# Placeholders real systems hold: never chosen over a real value, kept only when nothing else is.
_PLACEHOLDERS: Mapping[str, frozenset[Any]] = {
    "date_of_birth": frozenset(born.isoformat() for born in JUNK_DATES_OF_BIRTH),
    "identifiers.cro": JUNK_CROS,
}


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


@dataclass(frozen=True)
class SurvivorshipPolicy:
    """The strategy of each golden field, and the order of trust among sources."""

    default: SurvivorshipStrategy = SurvivorshipStrategy.MOST_RECENT
    fields: Mapping[str, SurvivorshipStrategy] = field(default_factory=dict)
    source_priority: Sequence[str] = ()

    @classmethod
    def from_settings(cls, settings: SurvivorshipSettings) -> SurvivorshipPolicy:
        unknown = sorted(set(settings.fields) - set(GOLDEN_FIELDS))
        if unknown:
            raise ValueError(
                f"survivorship names unknown fields {', '.join(unknown)}; "
                f"known: {', '.join(GOLDEN_FIELDS)}"
            )
        return cls(
            default=settings.default,
            fields=dict(settings.fields),
            source_priority=tuple(settings.source_priority),
        )

    def strategy(self, name: str) -> SurvivorshipStrategy:
        return self.fields.get(name, self.default)


DEFAULT_POLICY = SurvivorshipPolicy()


def _present(value: Any) -> bool:
    return value not in (None, "", [], {})


def _completeness(value: Any) -> int:
    """How much a value says: entries of a list, filled members of a dict, length of text."""
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        return sum(1 for member in value.values() if _present(member))
    return len(str(value))


def _value(person: Mapping[str, Any], name: str) -> Any:
    if name.startswith("identifiers."):
        return (person.get("identifiers") or {}).get(name.removeprefix("identifiers."))
    return person.get(name)


def build_golden(
    records: Iterable[LinkedRecord], policy: SurvivorshipPolicy = DEFAULT_POLICY
) -> GoldenPerson:
    """Each field takes the value its strategy prefers among the records that have one.

    Ties (and `most_recent` itself) go to the record received last; every field of the result
    carries the source record it came from. Known placeholders lose to any real value.
    """
    ordered = sorted(records, key=lambda r: (r.received_at, r.source, r.external_id))
    rank = {source: position for position, source in enumerate(policy.source_priority)}
    unranked = len(rank)
    person: dict[str, Any] = dict.fromkeys(PERSON_FIELDS)
    person["forenames"] = []
    person["aliases"] = []
    person["addresses"] = []
    identifiers: dict[str, Any] = dict.fromkeys(IDENTIFIER_FIELDS)
    provenance: dict[str, dict[str, str]] = {}
    for name in GOLDEN_FIELDS:
        strategy = policy.strategy(name)
        placeholders = _PLACEHOLDERS.get(name, frozenset())
        preference: Callable[[int, LinkedRecord, Any], tuple[Any, ...]]
        if strategy is SurvivorshipStrategy.SOURCE_PRIORITY:

            def preference(i: int, r: LinkedRecord, _v: Any) -> tuple[Any, ...]:
                return (-rank.get(r.source, unranked), i)
        elif strategy is SurvivorshipStrategy.MOST_COMPLETE:

            def preference(i: int, _r: LinkedRecord, v: Any) -> tuple[Any, ...]:
                return (_completeness(v), i)
        else:

            def preference(i: int, _r: LinkedRecord, _v: Any) -> tuple[Any, ...]:
                return (i,)

        best: tuple[tuple[Any, ...], Any, LinkedRecord] | None = None
        for index, linked in enumerate(ordered):
            value = _value(linked.person, name)
            if not _present(value):
                continue
            real = not isinstance(value, str) or value not in placeholders
            key = (real, *preference(index, linked, value))
            if best is None or key >= best[0]:
                best = (key, value, linked)
        if best is None:
            continue
        _key, value, origin = best
        if name.startswith("identifiers."):
            identifiers[name.removeprefix("identifiers.")] = value
        else:
            person[name] = value
        provenance[name] = {
            "source": origin.source,
            "external_id": origin.external_id,
            "received_at": origin.received_at.isoformat(),
        }
    person["identifiers"] = identifiers
    return GoldenPerson(person=person, provenance=provenance)
