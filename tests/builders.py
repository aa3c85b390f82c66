"""Builders of synthetic case data for the whole test suite.

Everything here is made up: names come from short lists of obviously fictional names, identifiers
are generated with valid check letters, and each identifier and external id is unique within the
test process, so two built records never collide by chance in a matcher test.

``make_case_record(**overrides)`` returns what a source would POST (a JSON-ready dict). Overrides
are deep-merged into nested dicts; a list or any other value replaces what was there, and ``OMIT``
removes a key::

    make_case_record(person={"surname": "Okafor"})          # other person fields kept
    make_case_record(person={"date_of_birth": OMIT})         # key removed
    make_case_record(case=None)                              # no case at all
"""

from __future__ import annotations

import copy
import random
import string
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from uuid import uuid4

from adapters.base import RawRecord
from adapters.canonical import CanonicalAdapter
from schemas.identifiers import canonical_nino, make_cro, make_pnc

__all__ = [
    "OMIT",
    "another_record_of",
    "as_raw_records",
    "deep_merge",
    "make_case_record",
    "make_identifiers",
    "random_crn",
    "random_cro",
    "random_nino",
    "random_noms",
    "random_pnc",
]


class _Omit:
    """Marker for an override that removes a key."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()

FORENAMES: Final = (
    "Zebedee",
    "Ottoline",
    "Peregrine",
    "Clementine",
    "Barnaby",
    "Araminta",
    "Fitzwilliam",
    "Wilhelmina",
)
SURNAMES: Final = (
    "Fictionworth",
    "Madeupson",
    "Pretendley",
    "Notarealname",
    "Imaginaire",
    "Fakeington",
    "Synthetica",
    "Inventedale",
)
STREETS: Final = ("Imaginary Road", "Fictional Lane", "Makebelieve Street", "Nowhere Close")
# (postcode, town): syntactically valid postcodes of public buildings, never a real person's home.
PLACES: Final = (
    ("SW1A 1AA", "London"),
    ("LS1 4AP", "Leeds"),
    ("M1 1AE", "Manchester"),
    ("B1 1BB", "Birmingham"),
    ("CF10 1EP", "Cardiff"),
    ("NE1 4ST", "Newcastle upon Tyne"),
    ("BS1 5TR", "Bristol"),
)
# Dates of birth that real systems use as placeholders; a synthetic person never gets one.
_PLACEHOLDER_DATES_OF_BIRTH: Final = frozenset({date(1900, 1, 1), date(1970, 1, 1)})

_issued: set[str] = set()


def _unique(generate: Callable[[], str]) -> str:
    """Return a value from ``generate`` not handed out before in this process."""
    while True:
        value = generate()
        if value not in _issued:
            _issued.add(value)
            return value


def _digits(count: int) -> str:
    return "".join(random.choices(string.digits, k=count))


def random_crn() -> str:
    """A fresh canonical CRN, e.g. ``X320741``."""
    return _unique(lambda: random.choice(string.ascii_uppercase) + _digits(6))


def random_pnc() -> str:
    """A fresh canonical PNC ID with a valid check letter."""
    return _unique(
        lambda: make_pnc(random.randint(1980, date.today().year), random.randint(1, 9_999_999))
    )


def random_cro() -> str:
    """A fresh canonical CRO number (never the placeholder ``000000/00Z``)."""
    return _unique(lambda: make_cro(random.randint(1, 999_999), random.randint(0, 99)))


def random_noms() -> str:
    """A fresh canonical NOMS number, e.g. ``A1234BC``."""
    return _unique(
        lambda: (
            random.choice(string.ascii_uppercase)
            + _digits(4)
            + "".join(random.choices(string.ascii_uppercase, k=2))
        )
    )


def random_nino() -> str:
    """A fresh canonical National Insurance number with an issuable prefix."""

    def generate() -> str:
        while True:
            candidate = (
                "".join(random.choices(string.ascii_uppercase, k=2))
                + _digits(6)
                + random.choice("ABCD")
            )
            try:
                return canonical_nino(candidate)
            except ValueError:
                continue  # a never-issued prefix: draw again

    return _unique(generate)


def deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` into ``base`` in place: dicts recursively, other values replaced."""
    for key, value in overrides.items():
        if value is OMIT:
            base.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def make_identifiers(**overrides: Any) -> dict[str, Any]:
    """Fresh valid canonical identifiers: ``crn``, ``pnc`` and ``noms`` (add ``cro``/``nino``)."""
    identifiers: dict[str, Any] = {"crn": random_crn(), "pnc": random_pnc(), "noms": random_noms()}
    return deep_merge(identifiers, overrides)


def _random_date_of_birth() -> date:
    while True:
        born = date(1955, 1, 1) + timedelta(days=random.randint(0, 50 * 365))
        if born not in _PLACEHOLDER_DATES_OF_BIRTH:
            return born


def make_case_record(**overrides: Any) -> dict[str, Any]:
    """A fully valid synthetic case record as a source would POST it (no ``provenance.source``).

    One person with fresh identifiers and one MAIN address; one active event with a community
    order carrying 120 hours of unpaid work and a 20-day RAR; a ROSH MEDIUM registration; tier B2;
    an offender manager. ``overrides`` are deep-merged (see the module docstring).
    """
    postcode, town = random.choice(PLACES)
    convicted = date(2023, 1, 2) + timedelta(days=random.randint(0, 700))
    record: dict[str, Any] = {
        "schema_version": 1,
        "provenance": {
            "external_id": f"ext-{uuid4().hex[:12]}",
            "source_version": "1",
            # "Z" rather than "+00:00": the spelling pydantic dumps, so the dict is canonical.
            "source_updated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "person": {
            "forenames": [random.choice(FORENAMES), random.choice(FORENAMES)],
            "surname": random.choice(SURNAMES),
            "aliases": [],
            "date_of_birth": _random_date_of_birth().isoformat(),
            "sex": random.choice(["MALE", "FEMALE"]),
            "addresses": [
                {
                    "status": "MAIN",
                    "lines": [f"{random.randint(1, 199)} {random.choice(STREETS)}"],
                    "town": town,
                    "postcode": postcode,
                    "start_date": (convicted - timedelta(days=400)).isoformat(),
                    "no_fixed_abode": False,
                }
            ],
            "identifiers": make_identifiers(),
        },
        "case": {
            "events": [
                {
                    "event_number": "1",
                    "referral_date": convicted.isoformat(),
                    "conviction_date": convicted.isoformat(),
                    "court": "Fictionville Magistrates' Court",
                    "offences": [
                        {
                            "code": "02800",
                            "description": "Burglary in a dwelling",
                            "offence_date": (convicted - timedelta(days=60)).isoformat(),
                            "main": True,
                        }
                    ],
                    "sentence": {
                        "type": "COMMUNITY_ORDER",
                        "length": 12,
                        "length_unit": "MONTHS",
                        "start_date": convicted.isoformat(),
                        "expected_end_date": (convicted + timedelta(days=365)).isoformat(),
                    },
                    "requirements": [
                        {
                            "category": "UNPAID_WORK",
                            "amount": 120,
                            "unit": "HOURS",
                            "start_date": convicted.isoformat(),
                        },
                        {
                            "category": "REHABILITATION_ACTIVITY",
                            "amount": 20,
                            "unit": "DAYS",
                            "start_date": convicted.isoformat(),
                        },
                    ],
                    "active": True,
                }
            ],
            "registrations": [
                {
                    "type": "ROSH",
                    "rosh_level": "MEDIUM",
                    "code": "RMRH",
                    "description": "Medium RoSH",
                    "start_date": convicted.isoformat(),
                    "review_date": (convicted + timedelta(days=182)).isoformat(),
                    "active": True,
                }
            ],
            "tier": {"value": "B2", "assessed_on": convicted.isoformat()},
            "offender_manager": {
                "provider_code": "C16",
                "team_code": "C16T01",
                "staff_code": "C16A001",
                "staff_name": f"{random.choice(FORENAMES)} {random.choice(SURNAMES)}",
            },
        },
    }
    return deep_merge(record, overrides)


def as_raw_records(records: list[Any]) -> list[RawRecord]:
    """Records as the canonical adapter's parse would hand them to ingest."""
    return [
        RawRecord(
            data=record,
            external_id=CanonicalAdapter.external_id_of(record),
            position=f"records[{index}]",
        )
        for index, record in enumerate(records)
    ]


def ingest_records(
    db: Any, records: list[Any], *, source: str = "crc-north", matcher: Any = None
) -> Any:
    """Store canonical records through the real ingest path, in one committed transaction."""
    from adapters.base import AdapterConfig
    from gateway.models import utcnow
    from gateway.services import ingest

    adapter = CanonicalAdapter(AdapterConfig())
    return db.write(
        lambda session: ingest.ingest_batch(
            session,
            source=source,
            adapter=adapter,
            raw_records=as_raw_records(list(records)),
            principal=None,
            received_at=utcnow(),
            matcher=matcher,
        )
    )


def another_record_of(record: dict[str, Any], **person: Any) -> dict[str, Any]:
    """Another record of the same person: a new external id, no identifiers unless given."""
    other = copy.deepcopy(record)
    other["provenance"]["external_id"] = f"ext-{uuid4().hex[:12]}"
    other["person"]["identifiers"] = {}
    other["person"].update(person)
    return other
