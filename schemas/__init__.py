"""The canonical case schema, version 1: the one shape every source's records are translated into.

Pydantic v2 models with ``extra="forbid"``; identifiers, postcodes and the tier are canonicalised on
the way in. The exported JSON Schema (``schemas/json/case-record.v1.json``, written by
``python -m schemas.export``) is the public contract. This package imports nothing else of the
project.
"""

from schemas.base import CanonicalModel
from schemas.case import (
    Case,
    Event,
    Offence,
    OffenderManager,
    Registration,
    Requirement,
    Sentence,
    Tier,
)
from schemas.codes import (
    AddressStatus,
    LengthUnit,
    RegistrationType,
    RequirementCategory,
    RequirementUnit,
    RoshLevel,
    SentenceType,
    Sex,
)
from schemas.person import Address, Alias, ContactDetails, Identifiers, Person
from schemas.record import SCHEMA_VERSION, CaseRecord, Provenance, export_json_schema

__all__ = [
    "SCHEMA_VERSION",
    "Address",
    "AddressStatus",
    "Alias",
    "CanonicalModel",
    "Case",
    "CaseRecord",
    "ContactDetails",
    "Event",
    "Identifiers",
    "LengthUnit",
    "Offence",
    "OffenderManager",
    "Person",
    "Provenance",
    "Registration",
    "RegistrationType",
    "Requirement",
    "RequirementCategory",
    "RequirementUnit",
    "RoshLevel",
    "Sentence",
    "SentenceType",
    "Sex",
    "Tier",
    "export_json_schema",
]
