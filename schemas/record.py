"""The canonical case record (schema version 1), its provenance and its exported JSON Schema."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from schemas.base import CanonicalModel
from schemas.case import Case
from schemas.person import Person

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "JSON_SCHEMA_ID",
    "SCHEMA_VERSION",
    "CaseRecord",
    "Provenance",
    "export_json_schema",
]

#: Version of the canonical case schema. Additive changes stay within a version; a breaking
#: change is a new version (and a new ``CaseRecord.schema_version`` literal).
SCHEMA_VERSION: Final = 1

JSON_SCHEMA_ID: Final = "https://crc-gateway.example/schemas/case-record.v1.json"
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


class Provenance(CanonicalModel):
    """Where a case record came from.

    ``external_id`` is the record's id in its source system; together with ``source`` it identifies
    the record, so re-sending a record with the same source and external id updates it rather than
    creating another. ``source`` is the source's slug; a source pushing records may leave it out,
    because the gateway fills it from the URL it was posted to. ``received_at`` is set by the
    gateway on receipt. Timestamps must carry a UTC offset.
    """

    source: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] | None = Field(
        default=None,
        description=(
            "Slug of the source system (lower-case letters, digits and hyphens, at most 63). "
            "Filled by the gateway from the URL when a source pushes records."
        ),
        examples=["crc-c16"],
    )
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="The record's id in its source system (1 to 128 characters, trimmed).",
    )
    source_version: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None,
        description="The source's version or revision of the record, if it keeps one.",
    )
    source_updated_at: AwareDatetime | None = Field(
        default=None, description="When the source last changed the record (with UTC offset)."
    )
    received_at: AwareDatetime | None = Field(
        default=None, description="When the gateway received the record; set by the gateway."
    )


class CaseRecord(CanonicalModel):
    """One source system's record of a person and their probation case, in canonical form.

    This is what every adapter produces and what a source may post directly: the person as the
    source holds them (names, date of birth, addresses, national identifiers in canonical form) and,
    optionally, their case (events with offences, sentence and requirements; registers; tier;
    offender manager). Every model rejects unknown fields. Identifiers, postcodes and the tier are
    canonicalised on the way in; cross-field rules (RoSH and MAPPA fields, sentence and requirement
    units, dates in order) are enforced, and a violation is reported on the path of the offending
    object. ``schema_version`` is 1 for this schema.
    """

    schema_version: Literal[1] = Field(
        default=1, description="Version of the canonical case schema this record follows."
    )
    provenance: Provenance = Field(description="Where the record came from.")
    person: Person = Field(description="The person the record is about.")
    case: Case | None = Field(default=None, description="The person's probation case, if any.")


def export_json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of :class:`CaseRecord`, the public contract."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": JSON_SCHEMA_ID,
        **CaseRecord.model_json_schema(),
    }
