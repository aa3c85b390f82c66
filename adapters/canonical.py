"""The built-in adapter for sources that already speak the canonical schema (JSON batches)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import ValidationError

from adapters.base import (
    Adapter,
    AdapterConfig,
    FieldError,
    PayloadRejected,
    RecordRejected,
    field_errors_from,
)
from schemas import CaseRecord


class CanonicalAdapter(Adapter[AdapterConfig]):
    """Takes `{"records": [<CaseRecord>, ...]}` and validates each record against the schema."""

    name: ClassVar[str] = "canonical"
    version: ClassVar[str] = "1"

    def parse(self, payload: bytes, content_type: str) -> Iterator[Any]:
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise PayloadRejected(f"body is not valid UTF-8 JSON: {_position(error)}") from None
        except RecursionError:
            raise PayloadRejected("body is nested too deeply") from None
        if not isinstance(document, dict) or not isinstance(document.get("records"), list):
            raise PayloadRejected(
                'body must be a JSON object {"records": [...]}',
                errors=[FieldError(path="records", message="expected a list", type="list_type")],
            )
        unknown = sorted(set(document) - {"records"})
        if unknown:
            raise PayloadRejected(
                "body has unknown fields",
                errors=[
                    FieldError(path=key, message="unknown field", type="extra_forbidden")
                    for key in unknown
                ],
            )
        yield from document["records"]

    def translate(self, raw: Any) -> CaseRecord:
        if not isinstance(raw, dict):
            raise RecordRejected(
                [FieldError(path="", message="a record must be a JSON object", type="dict_type")]
            )
        try:
            return CaseRecord.model_validate(raw)
        except ValidationError as error:
            raise RecordRejected(
                field_errors_from(error), external_id=self.external_id_of(raw)
            ) from None

    def external_id_of(self, raw: Any) -> str | None:
        if isinstance(raw, dict):
            provenance = raw.get("provenance")
            if isinstance(provenance, dict):
                external_id = provenance.get("external_id")
                if isinstance(external_id, str) and 0 < len(external_id.strip()) <= 128:
                    return external_id.strip()
        return None


def _position(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"line {error.lineno} column {error.colno}: {error.msg}"
    return "invalid UTF-8"
