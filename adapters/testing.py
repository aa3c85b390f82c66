"""The conformance suite every adapter runs in its own tests.

Subclass `AdapterConformance` in a test module (its name must start with `Test` for pytest to
collect it) and fill in the class attributes::

    class TestDeliusFlatConformance(AdapterConformance):
        adapter = DeliusFlatAdapter(DeliusFlatConfig())
        samples = [Sample(SAMPLES / "export-v2.csv", "text/csv", expect_records=12)]
        malformed = [Malformed(b"CRN,Surname\\nX320741\\n", "text/csv", paths={"surname"})]

Each sample must parse and translate into valid canonical records; each malformed payload must
come out as records rejected with field paths (or, where nothing can be read, PayloadRejected).
"""

from __future__ import annotations

import copy
import inspect
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from adapters.base import Adapter, AdapterConfig, PayloadRejected, RawRecord, RecordRejected
from schemas import CaseRecord


@dataclass(frozen=True)
class Sample:
    """A sample file in the source's own format, and how many records it holds."""

    path: Path
    content_type: str
    expect_records: int | None = None


@dataclass(frozen=True)
class Malformed:
    """A bad payload: either PayloadRejected, or every record rejected naming these paths."""

    payload: bytes
    content_type: str
    paths: set[str] = field(default_factory=set)
    payload_rejected: bool = False


def parse_all(adapter: Adapter[Any], payload: bytes, content_type: str) -> list[RawRecord]:
    return list(adapter.parse(io.BytesIO(payload), content_type))


def outcomes(
    adapter: Adapter[Any], records: list[RawRecord]
) -> list[CaseRecord | RecordRejected | RawRecord]:
    """Each record translated, or the rejection; a record with parse errors is returned as is."""
    results: list[CaseRecord | RecordRejected | RawRecord] = []
    for raw in records:
        if raw.errors:
            results.append(raw)
            continue
        try:
            results.append(adapter.translate(raw.data))
        except RecordRejected as rejected:
            results.append(rejected)
    return results


class AdapterConformance:
    """Generated checks of the adapter contract. Not collected itself (no `Test` prefix)."""

    adapter: ClassVar[Adapter[Any]]
    samples: ClassVar[list[Sample]] = []
    malformed: ClassVar[list[Malformed]] = []

    def test_the_adapter_declares_its_contract(self) -> None:
        adapter_class = type(self.adapter)
        assert isinstance(adapter_class.name, str)
        assert adapter_class.name
        assert isinstance(adapter_class.version, str)
        assert adapter_class.version
        assert issubclass(adapter_class.config_model, AdapterConfig)
        assert not inspect.isabstract(adapter_class)
        assert self.adapter.content_types or self.adapter.polled

    def test_there_is_something_to_check(self) -> None:
        assert self.samples, "an adapter ships at least one sample"
        assert self.malformed, "an adapter states how it rejects malformed input"

    def test_samples_translate_into_valid_canonical_records(self) -> None:
        for sample in self.samples:
            records = parse_all(self.adapter, sample.path.read_bytes(), sample.content_type)
            if sample.expect_records is not None:
                assert len(records) == sample.expect_records, sample.path.name
            for raw in records:
                assert not raw.errors, (sample.path.name, raw.position, raw.errors)
                record = self.adapter.translate(raw.data)
                assert isinstance(record, CaseRecord)
                # A translated record is valid canonical data in its own right.
                CaseRecord.model_validate(record.model_dump(mode="json"))
                assert record.provenance.external_id == raw.external_id, raw.position

    def test_raw_records_are_json_and_keep_their_position(self) -> None:
        for sample in self.samples:
            for raw in parse_all(self.adapter, sample.path.read_bytes(), sample.content_type):
                json.dumps(raw.data)
                assert raw.position

    def test_translate_is_deterministic_and_leaves_its_input_alone(self) -> None:
        for sample in self.samples:
            for raw in parse_all(self.adapter, sample.path.read_bytes(), sample.content_type):
                before = copy.deepcopy(raw.data)
                first = self.adapter.translate(raw.data)
                second = self.adapter.translate(copy.deepcopy(raw.data))
                assert first == second
                assert raw.data == before

    def test_parsing_is_deterministic(self) -> None:
        for sample in self.samples:
            payload = sample.path.read_bytes()
            first = parse_all(self.adapter, payload, sample.content_type)
            assert first == parse_all(self.adapter, payload, sample.content_type)

    def test_malformed_input_is_rejected_with_field_paths(self) -> None:
        for case in self.malformed:
            if case.payload_rejected:
                with pytest.raises(PayloadRejected):
                    parse_all(self.adapter, case.payload, case.content_type)
                continue
            results = outcomes(
                self.adapter, parse_all(self.adapter, case.payload, case.content_type)
            )
            assert results, "a malformed payload still accounts for its records"
            seen: set[str] = set()
            for result in results:
                assert not isinstance(result, CaseRecord), "a malformed record was accepted"
                errors = result.errors
                assert errors, "a rejection carries at least one error"
                for error in errors:
                    assert error["message"]
                    seen.add(error["path"])
            assert case.paths <= seen, (case.paths, seen)
