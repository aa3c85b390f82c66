"""Shared runs of the generator and readers of what it wrote (small populations, kept fast)."""

from __future__ import annotations

import csv
import importlib
import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Adapter, RecordRejected
from adapters.canonical import CanonicalAdapter
from gateway.synthetic import (
    GenerateOptions,
    GenerationReport,
    MissingWriterPolicy,
    NoiseRates,
    generate,
)
from schemas import CaseRecord

MAIN_PERSONS = 1500
MAIN_SEED = 11
MAIN_PNC_MALFORMED = 0.05


@dataclass(frozen=True)
class Run:
    options: GenerateOptions
    report: GenerationReport

    @property
    def out(self) -> Path:
        return self.options.out

    @property
    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.out / "manifest.json").read_text())
        return manifest


def run_generator(out: Path, **overrides: Any) -> Run:
    """Generate into ``out``; a missing writer is replaced by canonical NDJSON unless told."""
    values: dict[str, Any] = {
        "persons": 200,
        "seed": 1,
        "out": out,
        "on_missing_writer": MissingWriterPolicy.CANONICAL,
    }
    values.update(overrides)
    options = GenerateOptions(**values)
    return Run(options=options, report=generate(options))


@pytest.fixture(scope="session")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Every source, default rates but a raised malformed-PNC rate, 1,500 persons."""
    return run_generator(
        tmp_path_factory.mktemp("main-run"),
        persons=MAIN_PERSONS,
        seed=MAIN_SEED,
        noise=NoiseRates(pnc_malformed=MAIN_PNC_MALFORMED),
        records_per_file=1000,
    )


@pytest.fixture(scope="session")
def main_read_back(main_run: Run) -> dict[str, list[ReadBack]]:
    """The main run's records, read back source by source (once: it takes a few seconds)."""
    return {source: list(read_back(main_run, source)) for source in main_run.manifest["sources"]}


def read_truth(out: Path) -> list[tuple[str, str, str]]:
    with (out / "truth.csv").open(newline="") as stream:
        reader = csv.reader(stream)
        assert next(reader) == ["source", "external_id", "person_key"]
        return [(source, external_id, key) for source, external_id, key in reader]


def read_noise(out: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    with (out / "noise.csv").open(newline="") as stream:
        reader = csv.reader(stream)
        assert next(reader) == ["source", "external_id", "kinds"]
        return {
            (source, external_id): tuple(kinds.split(";")) for source, external_id, kinds in reader
        }


def adapter_named(name: str) -> Adapter[Any]:
    """The adapter class `name` from `adapters.<name>`, with its default config."""
    if name == CanonicalAdapter.name:
        return CanonicalAdapter(CanonicalAdapter.config_model())
    module = importlib.import_module(f"adapters.{name}")
    for value in vars(module).values():
        if inspect.isclass(value) and issubclass(value, Adapter) and value.name == name:
            return value(value.config_model())
    raise LookupError(f"adapters.{name} has no adapter class named {name}")


@dataclass(frozen=True)
class ReadBack:
    external_id: str | None
    outcome: CaseRecord | RecordRejected


def read_back(run: Run, source: str) -> Iterator[ReadBack]:
    """Every record of a source's files, parsed and translated by the adapter named for it."""
    entry = run.manifest["sources"][source]
    adapter = adapter_named(entry["adapter"])
    assert entry["content_type"] in adapter.content_types
    for name in entry["files"]:
        with (run.out / name).open("rb") as stream:
            for raw in adapter.parse(stream, entry["content_type"]):
                assert not raw.errors, (name, raw.position, raw.errors)
                try:
                    outcome: CaseRecord | RecordRejected = adapter.translate(raw.data)
                except RecordRejected as rejected:
                    outcome = rejected
                yield ReadBack(external_id=raw.external_id, outcome=outcome)


def canonical_lines(run: Run, source: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of an NDJSON source, unvalidated."""
    for name in run.manifest["sources"][source]["files"]:
        with (run.out / name).open("rb") as stream:
            for line in stream:
                yield json.loads(line)


def all_files(out: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }
