"""The built-in adapter for sources that already speak the canonical schema.

Two forms: `application/json`, a batch `{"records": [<CaseRecord>, ...]}` (what the push API
takes), and `application/x-ndjson`, one CaseRecord per line (for large files, read line by line).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any, ClassVar

from pydantic import ValidationError

from adapters.base import (
    MAX_RECORD_NESTING,
    Adapter,
    AdapterConfig,
    FieldError,
    LineReader,
    PayloadRejected,
    RawRecord,
    RecordRejected,
    field_errors_from,
    json_error_position,
    nested_deeper_than,
    overlong_line,
    unreadable_line,
)
from schemas import CaseRecord

JSON = "application/json"
NDJSON = "application/x-ndjson"
#: Longest NDJSON line (one record); a longer one is quarantined with only its start kept.
MAX_LINE_BYTES = 8 * 1024 * 1024


class CanonicalAdapter(Adapter[AdapterConfig]):
    """Validates each record against the canonical schema; nothing to translate."""

    name: ClassVar[str] = "canonical"
    version: ClassVar[str] = "1"
    content_types: ClassVar[tuple[str, ...]] = (JSON, NDJSON)

    def parse(self, stream: IO[bytes], content_type: str) -> Iterator[RawRecord]:
        if content_type == NDJSON:
            yield from self._parse_lines(stream)
            return
        try:
            document = json.load(stream)
        except ValueError as error:  # bad UTF-8, bad JSON, or a number too long
            raise PayloadRejected(
                f"body is not valid UTF-8 JSON: {json_error_position(error)}"
            ) from None
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
        for index, record in enumerate(document["records"]):
            if nested_deeper_than(record, MAX_RECORD_NESTING):
                raise PayloadRejected(f"records nest at most {MAX_RECORD_NESTING} levels deep")
            yield RawRecord(
                data=record, external_id=self.external_id_of(record), position=f"records[{index}]"
            )

    def _parse_lines(self, stream: IO[bytes]) -> Iterator[RawRecord]:
        for number, line, whole in LineReader(stream).numbered_lines(MAX_LINE_BYTES):
            position = f"line {number}"
            if not whole:
                # The rest was stepped over: the record is refused without being held.
                yield overlong_line(line, position, MAX_LINE_BYTES)
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as error:
                yield unreadable_line(
                    line, position, f"not a JSON object: {json_error_position(error)}"
                )
                continue
            if nested_deeper_than(record, MAX_RECORD_NESTING):
                yield unreadable_line(
                    line, position, f"nested deeper than {MAX_RECORD_NESTING} levels"
                )
                continue
            yield RawRecord(data=record, external_id=self.external_id_of(record), position=position)

    def translate(self, raw: Any) -> CaseRecord:
        if not isinstance(raw, dict):
            raise RecordRejected(
                [FieldError(path="", message="a record must be a JSON object", type="dict_type")]
            )
        try:
            return CaseRecord.model_validate(raw)
        except ValidationError as error:
            raise RecordRejected(
                field_errors_from(error), external_id=self.external_id_of(raw), document=raw
            ) from None

    @staticmethod
    def external_id_of(raw: Any) -> str | None:
        if isinstance(raw, dict):
            provenance = raw.get("provenance")
            if isinstance(provenance, dict):
                external_id = provenance.get("external_id")
                if isinstance(external_id, str) and 0 < len(external_id.strip()) <= 128:
                    return external_id.strip()
        return None
