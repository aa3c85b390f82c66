"""Identity resolution benchmark: accuracy against the generator's ground truth, and its cost.

For each size, generates (or reuses) a synthetic data set with `gateway.synthetic` (every source in
its own format, plus truth.csv), imports every part file in-process through the real import path
(`gateway.services.imports.run_import`, the adapters, ingest and the matcher) into a fresh
database, and compares the resulting clustering of source records into persons with the truth.
The same data imported with matching disabled (exact CRN links only) on another fresh database is
the baseline. Figures are printed; nothing passes or fails on time.

    .venv/bin/python bench/matching.py                           # 10k, 100k and 1M records
    .venv/bin/python bench/matching.py --sizes 2000 --runs 1     # quick smoke run
    .venv/bin/python bench/matching.py --sizes 10000 --orders    # plus a second, shuffled order
    .venv/bin/python bench/matching.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/crc_bench

Per-record timings come from each ingest batch's `BatchResult.match_seconds`. `run_import` hands
no batch to its caller, so unless it takes an `on_batch=` callback the benchmark wraps
`gateway.services.ingest.ingest_batch` (the function `run_import` calls per chunk) for the
duration of a run, to see each batch's result; nothing else is changed.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

# The database handling (fresh files or DROP/CREATE of crc_bench* databases, and the refusal of
# any other name) is bench/ingest.py's, so both benchmarks treat databases the same way.
from ingest import Databases, PostgresDatabases, SqliteDatabases, percentile
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import func, make_url, select

from adapters import registry
from adapters.base import Adapter, RawRecord
from gateway import migrate
from gateway.db import Database
from gateway.matching import evaluation
from gateway.models import Person, SourceRecord
from gateway.services import imports
from gateway.services import ingest as ingest_service
from gateway.services.sources import SourceRegistry
from gateway.settings import MatchingSettings, Settings
from gateway.synthetic import GENERATOR_VERSION, GenerateOptions, PopulationSettings, generate

REPO: Final = Path(__file__).resolve().parents[1]
DEFAULT_SIZES: Final = (10_000, 100_000, 1_000_000)
DEFAULT_DATA_DIR: Final = REPO / "var" / "bench-matching"
DEFAULT_SEED: Final = 20210626
# Sizes above this get one run by default: a 1M-record run takes hours on a small machine.
MANY_RUNS_UP_TO: Final = 100_000
CHUNK_RECORDS: Final = 1000
GENERATION_WORKERS: Final = 2
TENTHS: Final = 10
TARGETS: Final = {
    "pairwise_precision": 0.999,
    "pairwise_recall": 0.99,
    "cost_ratio": 1.5,
    "throughput_ratio": 0.5,
    "order_agreement": 0.999,
}

RecordKey = tuple[str, str]  # (source, external_id)


# --------------------------------------------------------------------------------------------
# Data: generated once per (persons, seed, generator version) and cached under --data-dir.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartFile:
    source: str
    path: Path
    content_type: str
    sha256: str
    size: int


@dataclass
class DataSet:
    asked: int  # source records asked for
    directory: Path
    persons: int
    records: int  # source records written, rejected ones included
    invalid: int  # records with a malformed PNC, which the gateway rejects
    files: list[PartFile]  # in arrival order: round-robin over the sources' part files
    truth: dict[RecordKey, str]


def persons_for(records: int) -> int:
    return math.ceil(records / PopulationSettings().mean_sources_per_person)


def _manifest(directory: Path) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest


def _cached(directory: Path, persons: int, seed: int) -> bool:
    manifest = _manifest(directory)
    return (
        manifest is not None
        and manifest.get("persons") == persons
        and manifest.get("seed") == seed
        and manifest.get("generator_version") == GENERATOR_VERSION
        and (directory / "sources.yaml").is_file()
        and (directory / "truth.csv").is_file()
    )


def prepare_data(asked: int, seed: int, data_dir: Path, console: Console) -> DataSet:
    """The data set for `asked` records: the cached one if its manifest fits, else generated."""
    persons = persons_for(asked)
    directory = data_dir / f"records-{asked}"
    if _cached(directory, persons, seed):
        console.print(f"using cached data in {directory}")
    else:
        if directory.exists():
            if _manifest(directory) is None and any(directory.iterdir()):
                raise SystemExit(f"{directory} holds something other than generated data")
            shutil.rmtree(directory)
        _generate(persons, seed, directory, console)
    return load_data(asked, directory)


def _generate(persons: int, seed: int, directory: Path, console: Console) -> None:
    # Into a scratch directory first, renamed when complete: an interrupted run leaves no cache.
    scratch = directory.with_name(directory.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    options = GenerateOptions(
        persons=persons, seed=seed, out=scratch, workers=GENERATION_WORKERS, overwrite=True
    )
    started = time.perf_counter()
    try:
        with _progress(console) as bar:
            task = bar.add_task(f"generating {persons:,} persons", total=persons, unit="persons")
            generate(options, lambda done, _records: bar.update(task, advance=done))
        scratch.rename(directory)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    console.print(f"generated {persons:,} persons in {time.perf_counter() - started:,.0f} s")


def load_data(asked: int, directory: Path) -> DataSet:
    manifest = _manifest(directory)
    if manifest is None:  # pragma: no cover - checked by prepare_data
        raise RuntimeError(f"no manifest in {directory}")
    by_source: list[list[PartFile]] = []
    for source, entry in manifest["sources"].items():
        parts = []
        for name in entry["files"]:
            path = directory / name
            digest, size = _digest(path)
            parts.append(PartFile(source, path, entry["content_type"], digest, size))
        by_source.append(parts)
    # Sources deliver side by side: one file of each in turn, in the generator's source order.
    files = [
        parts[index]
        for index in range(max((len(parts) for parts in by_source), default=0))
        for parts in by_source
        if index < len(parts)
    ]
    with (directory / "truth.csv").open(newline="", encoding="utf-8") as stream:
        truth = {
            (row["source"], row["external_id"]): row["person_key"] for row in csv.DictReader(stream)
        }
    return DataSet(
        asked=asked,
        directory=directory,
        persons=manifest["persons"],
        records=manifest["records"],
        invalid=sum(entry["invalid_records"] for entry in manifest["sources"].values()),
        files=files,
        truth=truth,
    )


def _digest(path: Path) -> tuple[str, int]:
    with path.open("rb") as stream:
        return imports.sha256_of(stream)


def shuffled_order(data: DataSet, seed: int) -> list[PartFile]:
    files = list(data.files)
    random.Random(seed).shuffle(files)
    return files


def shuffling(adapter: Adapter[Any], seed: int) -> Adapter[Any]:
    """The same adapter, except that `parse` yields a file's records in a seeded random order.

    A subclass of the adapter's own class with the same config, so the name, version and
    translation (and so the stored records) are the ones the real adapter gives. It holds one
    file's raw records in memory, which the generator's files (at most 100,000 records) allow.
    """
    base = type(adapter)
    rng = random.Random(f"{seed}:{adapter.name}")

    def parse(self: Adapter[Any], stream: IO[bytes], content_type: str) -> Iterator[RawRecord]:
        records = list(base.parse(self, stream, content_type))
        rng.shuffle(records)
        yield from records

    reordered: type[Adapter[Any]] = type(f"Shuffled{base.__name__}", (base,), {"parse": parse})
    return reordered(adapter.config)


# --------------------------------------------------------------------------------------------
# One ingest of a data set into a fresh database, with per-chunk and per-record timings.
# --------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    first: int  # index, in arrival order, of the chunk's first record
    records: int
    seconds: float
    match_seconds: list[float]


class Recorder:
    """Collects each committed chunk's wall time and per-record match times as a run goes.

    Time spent here (counting persons at each tenth, moving the progress bar) is measured and
    taken off the run's wall time, so the figures are the import's own.
    """

    def __init__(
        self, total: int, count_persons: Callable[[], int], advance: Callable[[int], None]
    ):
        self.total = total
        self.count_persons = count_persons
        self.advance = advance
        self.chunks: list[Chunk] = []
        self.persons_at_tenth: list[int] = []
        self.paused = 0.0
        self.done = 0
        self._batch: ingest_service.BatchResult | None = None
        self._mark = 0.0

    def start(self) -> None:
        self._mark = time.perf_counter()

    def on_batch(self, batch: ingest_service.BatchResult) -> None:
        # Kept until the chunk is committed (on_progress): a transaction retried after a
        # deadlock calls ingest_batch again, and only the committed attempt counts.
        self._batch = batch

    def on_progress(self, _bytes_read: int, _summary: imports.ImportSummary) -> None:
        now = time.perf_counter()
        batch = self._batch
        self._batch = None
        records = len(batch.results) if batch is not None else 0
        match = list(getattr(batch, "match_seconds", None) or [])
        self.chunks.append(Chunk(self.done, records, now - self._mark, match))
        self.done += records
        while (
            len(self.persons_at_tenth) < TENTHS
            and self.done * TENTHS >= (len(self.persons_at_tenth) + 1) * self.total
        ):
            self.persons_at_tenth.append(self.count_persons())
        self.advance(records)
        self._mark = time.perf_counter()
        self.paused += self._mark - now


@dataclass
class IngestRun:
    wall_s: float
    records: int
    created: int
    rejected: int
    chunks: list[Chunk]
    persons_at_tenth: list[int]
    persons: int
    clustering: dict[RecordKey, Any]
    pending_review: int | None

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s


@contextmanager
def batch_hook(recorder: Recorder) -> Iterator[dict[str, Any]]:
    """Extra run_import arguments that let the recorder see each batch (see the module doc)."""
    if "on_batch" in inspect.signature(imports.run_import).parameters:
        yield {"on_batch": recorder.on_batch}
        return
    original = ingest_service.ingest_batch

    def recorded(*args: Any, **kwargs: Any) -> ingest_service.BatchResult:
        batch = original(*args, **kwargs)
        recorder.on_batch(batch)
        return batch

    ingest_service.ingest_batch = recorded
    try:
        yield {}
    finally:
        ingest_service.ingest_batch = original


def _live_persons(db: Database) -> int:
    statement = select(func.count()).select_from(Person)
    merged = getattr(Person, "merged_into_id", None)
    if merged is not None:
        statement = statement.where(merged.is_(None))
    with db.engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def _pending_review(db: Database) -> int | None:
    from gateway import models

    decision = getattr(models, "MatchDecision", None)
    if decision is None or not hasattr(decision, "status"):
        return None
    statement = select(func.count()).select_from(decision).where(decision.status == "pending")
    with db.engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def stored_clustering(db: Database) -> dict[RecordKey, Any]:
    # person_id always names the surviving person, merges included.
    statement = select(SourceRecord.source, SourceRecord.external_id, SourceRecord.person_id)
    with db.engine.connect() as connection:
        return {
            (source, external_id): person
            for source, external_id, person in connection.execute(statement)
        }


def ingest_data_set(
    url: str,
    data: DataSet,
    files: Sequence[PartFile],
    *,
    matching: bool,
    shuffle_seed: int | None,
    progress: Progress,
    label: str,
) -> IngestRun:
    settings = Settings(
        database_url=url,
        sources_file=data.directory / "sources.yaml",
        matching=MatchingSettings(enabled=matching),
        log_level="WARNING",
    )
    # Imported here: the lead's identity service may not exist in an older checkout.
    from gateway.services.identity import Matcher

    db = Database.from_settings(settings)
    task = progress.add_task(label, total=data.records, unit="records")
    try:
        migrate.upgrade(db.engine)
        sources = SourceRegistry(registry.discover(), settings)
        adapters: dict[tuple[str, str], Adapter[Any]] = {}
        for part in files:
            adapter = sources.adapter_for(part.source, part.content_type)
            if shuffle_seed is not None:
                adapter = shuffling(adapter, shuffle_seed)
            adapters.setdefault((part.source, part.content_type), adapter)
        matcher = Matcher.from_settings(settings)
        recorder = Recorder(
            data.records,
            lambda: _live_persons(db),
            lambda records: progress.update(task, advance=records),
        )
        summaries: list[imports.ImportSummary] = []
        with batch_hook(recorder) as hook:
            _warm(db)
            started = time.perf_counter()
            recorder.start()
            for part in files:
                with part.path.open("rb") as stream:
                    summaries.append(
                        imports.run_import(
                            db,
                            source=part.source,
                            adapter=adapters[part.source, part.content_type],
                            stream=stream,
                            content_type=part.content_type,
                            filename=part.path.name,
                            file_sha256=part.sha256,
                            file_size=part.size,
                            principal=None,
                            chunk_records=CHUNK_RECORDS,
                            matcher=matcher,
                            on_progress=recorder.on_progress,
                            **hook,
                        )
                    )
            wall = time.perf_counter() - started - recorder.paused
        records = sum(summary.records for summary in summaries)
        created = sum(summary.created for summary in summaries)
        rejected = sum(summary.rejected for summary in summaries)
        clustering = stored_clustering(db)
        # Every record must have been read and either stored once or rejected; else fail loudly.
        if records != data.records or created + rejected != records:
            raise RuntimeError(
                f"{label}: {records:,} records read ({created:,} created, {rejected:,} rejected) "
                f"of {data.records:,} generated"
            )
        if len(clustering) != created:
            raise RuntimeError(
                f"{label}: {len(clustering):,} source records stored, not {created:,}"
            )
        while len(recorder.persons_at_tenth) < TENTHS:  # a tiny run with fewer chunks than tenths
            recorder.persons_at_tenth.append(_live_persons(db))
        return IngestRun(
            wall_s=wall,
            records=records,
            created=created,
            rejected=rejected,
            chunks=recorder.chunks,
            persons_at_tenth=recorder.persons_at_tenth,
            persons=_live_persons(db),
            clustering=clustering,
            pending_review=_pending_review(db) if matching else None,
        )
    finally:
        progress.remove_task(task)
        db.dispose()


def _warm(db: Database) -> None:
    # Open the pooled connection outside the clock, as bench/ingest.py does.
    with db.engine.connect() as connection:
        connection.execute(select(1))


# --------------------------------------------------------------------------------------------
# Figures: per run, per size (medians), per tenth of a run, and the report.
# --------------------------------------------------------------------------------------------


@dataclass
class Tenth:
    tenth: int
    persons: int  # live persons in the store at the first chunk boundary after this tenth
    records: int
    records_per_s: float
    ms_per_record: float  # wall time of the import per record, everything included
    match_p50_ms: float | None
    match_p99_ms: float | None
    match_mean_ms: float | None


@dataclass
class RunFigures:
    run: int
    records: int
    rejected: int
    persons: int
    records_per_s: float
    wall_s: float
    baseline_records_per_s: float | None
    baseline_wall_s: float | None
    ratio: float | None  # records/s with matching / records/s without
    match_p50_ms: float | None
    match_p99_ms: float | None
    match_mean_ms: float | None
    ms_per_record: float
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    cluster_precision: float
    cluster_recall: float
    cluster_f1: float
    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int
    exact_clusters: int
    predicted_clusters: int
    true_clusters: int
    pending_review: int | None
    baseline_pairwise_recall: float | None = None
    baseline_persons: int | None = None
    tenths: list[Tenth] = field(default_factory=list)


def _ms(values: Sequence[float], fraction: float) -> float | None:
    return percentile(values, fraction) * 1000 if values else None


def tenth_of(index: float, total: int) -> int:
    return min(TENTHS - 1, int(index * TENTHS / total))


def tenths_of(run: IngestRun) -> list[Tenth]:
    """Each tenth of the import by record count; a chunk spanning a boundary is shared out."""
    records = [0.0] * TENTHS
    seconds = [0.0] * TENTHS
    match: list[list[float]] = [[] for _ in range(TENTHS)]
    for chunk in run.chunks:
        if not chunk.records:
            continue
        for index in range(chunk.first, chunk.first + chunk.records):
            tenth = tenth_of(index, run.records)
            records[tenth] += 1
            seconds[tenth] += chunk.seconds / chunk.records
        # match_seconds has one entry per new record: spread them over the chunk's span.
        for position, value in enumerate(chunk.match_seconds):
            offset = position * chunk.records / len(chunk.match_seconds)
            match[tenth_of(chunk.first + offset, run.records)].append(value)
    return [
        Tenth(
            tenth=number + 1,
            persons=run.persons_at_tenth[number],
            records=round(records[number]),
            records_per_s=records[number] / seconds[number] if seconds[number] else math.nan,
            ms_per_record=seconds[number] * 1000 / records[number] if records[number] else math.nan,
            match_p50_ms=_ms(match[number], 0.50),
            match_p99_ms=_ms(match[number], 0.99),
            match_mean_ms=statistics.fmean(match[number]) * 1000 if match[number] else None,
        )
        for number in range(TENTHS)
    ]


def run_figures(
    number: int, run: IngestRun, baseline: IngestRun | None, truth: dict[RecordKey, str]
) -> RunFigures:
    match = [value for chunk in run.chunks for value in chunk.match_seconds]
    pairs = evaluation.pairwise(run.clustering, truth)
    clusters = evaluation.cluster(run.clustering, truth)
    return RunFigures(
        run=number,
        records=run.records,
        rejected=run.rejected,
        persons=run.persons,
        records_per_s=run.records_per_s,
        wall_s=run.wall_s,
        baseline_records_per_s=baseline.records_per_s if baseline else None,
        baseline_wall_s=baseline.wall_s if baseline else None,
        ratio=run.records_per_s / baseline.records_per_s if baseline else None,
        match_p50_ms=_ms(match, 0.50),
        match_p99_ms=_ms(match, 0.99),
        match_mean_ms=statistics.fmean(match) * 1000 if match else None,
        ms_per_record=run.wall_s * 1000 / run.records,
        pairwise_precision=pairs.precision,
        pairwise_recall=pairs.recall,
        pairwise_f1=pairs.f1,
        cluster_precision=clusters.precision,
        cluster_recall=clusters.recall,
        cluster_f1=clusters.f1,
        true_positive_pairs=pairs.true_positive_pairs,
        predicted_pairs=pairs.predicted_pairs,
        true_pairs=pairs.true_pairs,
        exact_clusters=clusters.exact_clusters,
        predicted_clusters=clusters.predicted_clusters,
        true_clusters=clusters.true_clusters,
        pending_review=run.pending_review,
        baseline_pairwise_recall=(
            evaluation.pairwise(baseline.clustering, truth).recall if baseline else None
        ),
        baseline_persons=baseline.persons if baseline else None,
        tenths=tenths_of(run),
    )


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None and not math.isnan(value)]
    return statistics.median(present) if present else None


def median_figures(runs: Sequence[RunFigures]) -> dict[str, Any]:
    names = [name for name, value in asdict(runs[0]).items() if name not in ("run", "tenths")]
    medians: dict[str, Any] = {
        name: _median([getattr(run, name) for run in runs]) for name in names
    }
    medians["tenths"] = [
        {
            name: _median([getattr(run.tenths[index], name) for run in runs])
            for name in asdict(runs[0].tenths[index])
        }
        for index in range(TENTHS)
    ]
    return medians


@dataclass
class OrderCheck:
    agreement: float
    pairwise_precision: float
    pairwise_recall: float
    persons: int  # persons holding the records, first order
    other_persons: int  # and in the shuffled order


@dataclass
class SizeResult:
    data: DataSet
    runs: list[RunFigures]
    medians: dict[str, Any]
    order: OrderCheck | None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def print_size(result: SizeResult) -> None:
    data = result.data
    print()
    print(
        f"{data.asked:,} records asked: {data.persons:,} true persons, {data.records:,} source "
        f"records in {len(data.files)} files ({data.invalid:,} with a malformed PNC, rejected)"
    )
    header = (
        f"{'run':>6} {'records':>9} {'persons':>9} {'rec/s':>7} {'base/s':>7} {'ratio':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'pw P':>7} {'pw R':>7} {'pw F1':>7} "
        f"{'cl P':>7} {'cl R':>7} {'cl F1':>7} {'review':>7}"
    )
    print(header)
    print("-" * len(header))
    rows: list[tuple[str, dict[str, Any]]] = [(str(run.run), asdict(run)) for run in result.runs]
    rows.append(("median", result.medians))
    for label, row in rows:
        if label == "median":
            print("-" * len(header))
        print(
            f"{label:>6} {_fmt(row['records'], ',.0f'):>9} {_fmt(row['persons'], ',.0f'):>9} "
            f"{_fmt(row['records_per_s'], ',.0f'):>7} "
            f"{_fmt(row['baseline_records_per_s'], ',.0f'):>7} {_fmt(row['ratio'], '.3f'):>6} "
            f"{_fmt(row['match_p50_ms'], '.2f'):>7} {_fmt(row['match_p99_ms'], '.2f'):>7} "
            f"{_fmt(row['pairwise_precision'], '.4f'):>7} {_fmt(row['pairwise_recall'], '.4f'):>7} "
            f"{_fmt(row['pairwise_f1'], '.4f'):>7} {_fmt(row['cluster_precision'], '.4f'):>7} "
            f"{_fmt(row['cluster_recall'], '.4f'):>7} {_fmt(row['cluster_f1'], '.4f'):>7} "
            f"{_fmt(row['pending_review'], ',.0f'):>7}"
        )
    medians = result.medians
    print(
        f"pairs: {medians['true_positive_pairs']:,.0f} found of {medians['true_pairs']:,.0f} true, "
        f"{medians['predicted_pairs']:,.0f} predicted; clusters: {medians['exact_clusters']:,.0f} "
        f"exact of {medians['true_clusters']:,.0f} true, {medians['predicted_clusters']:,.0f} "
        "predicted"
    )
    if medians["baseline_pairwise_recall"] is not None:
        print(
            f"without matching (exact CRN only): {medians['baseline_persons']:,.0f} persons, "
            f"pairwise recall {medians['baseline_pairwise_recall']:.4f}"
        )
    if result.order is not None:
        order = result.order
        print(
            f"second order (files and records shuffled): agreement {order.agreement:.5f} "
            f"(target >= {TARGETS['order_agreement']}); {order.other_persons:,} persons vs "
            f"{order.persons:,}; against the truth P {order.pairwise_precision:.4f} "
            f"R {order.pairwise_recall:.4f}"
        )
    print()
    print(f"as the store grows ({data.asked:,}; median across runs per tenth of the import):")
    growth = (
        f"{'tenth':>6} {'persons':>9} {'rec/s':>7} {'ms/rec':>7} "
        f"{'match p50':>9} {'p99 ms':>7} {'mean ms':>7}"
    )
    print(growth)
    print("-" * len(growth))
    for tenth in medians["tenths"]:
        print(
            f"{_fmt(tenth['tenth'], '.0f'):>6} {_fmt(tenth['persons'], ',.0f'):>9} "
            f"{_fmt(tenth['records_per_s'], ',.0f'):>7} {_fmt(tenth['ms_per_record'], '.3f'):>7} "
            f"{_fmt(tenth['match_p50_ms'], '.2f'):>9} {_fmt(tenth['match_p99_ms'], '.2f'):>7} "
            f"{_fmt(tenth['match_mean_ms'], '.3f'):>7}"
        )


def summary(results: Sequence[SizeResult]) -> dict[str, Any]:
    """The issue's targets, from the medians: accuracy at the largest size, cost and throughput."""
    # Whatever order the sizes ran in (running the smallest last measures it on a quieter machine).
    results = sorted(results, key=lambda result: result.data.asked)
    first, last = results[0].medians, results[-1].medians
    last_tenth = last["tenths"][-1]
    cost = last_tenth["ms_per_record"] / first["ms_per_record"]
    match_cost = (
        last_tenth["match_mean_ms"] / first["match_mean_ms"]
        if last_tenth["match_mean_ms"] and first["match_mean_ms"]
        else None
    )
    return {
        "largest": results[-1].data.asked,
        "smallest": results[0].data.asked,
        "pairwise_precision": last["pairwise_precision"],
        "pairwise_recall": last["pairwise_recall"],
        "cost_ratio": cost,
        "match_cost_ratio": match_cost,
        "throughput_ratio": min(
            (r.medians["ratio"] for r in results if r.medians["ratio"] is not None), default=None
        ),
        "order_agreement": min(
            (r.order.agreement for r in results if r.order is not None), default=None
        ),
    }


def print_summary(figures: dict[str, Any]) -> None:
    def verdict(value: float | None, target: float, *, at_most: bool = False) -> str:
        if value is None:
            return "not measured"
        met = value <= target if at_most else value >= target
        return f"{value:.4f} ({'meets' if met else 'misses'} {'<=' if at_most else '>='} {target})"

    largest, smallest = f"{figures['largest']:,}", f"{figures['smallest']:,}"
    print()
    print("targets (medians):")
    print(
        f"  pairwise precision at {largest}: "
        f"{verdict(figures['pairwise_precision'], TARGETS['pairwise_precision'])}"
    )
    print(
        f"  pairwise recall at {largest}:    "
        f"{verdict(figures['pairwise_recall'], TARGETS['pairwise_recall'])}"
    )
    print(
        f"  per-record cost, last tenth of {largest} / whole {smallest} run: "
        f"{verdict(figures['cost_ratio'], TARGETS['cost_ratio'], at_most=True)}"
        + (
            f"; match time alone {figures['match_cost_ratio']:.3f}"
            if figures["match_cost_ratio"] is not None
            else ""
        )
    )
    print(
        "  throughput with matching / without (lowest size median): "
        f"{verdict(figures['throughput_ratio'], TARGETS['throughput_ratio'])}"
    )
    print(
        "  agreement of two ingest orders: "
        f"{verdict(figures['order_agreement'], TARGETS['order_agreement'])}"
    )


def environment(args: argparse.Namespace, engine: str, version: str) -> dict[str, Any]:
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "engine": engine,
        "database_version": version,
        "sizes": args.sizes,
        "runs": {str(size): runs_for(args, size) for size in args.sizes},
        "baseline": not args.no_baseline,
        "orders": args.orders,
        "chunk_records": CHUNK_RECORDS,
        "seed": args.seed,
        "generator_version": GENERATOR_VERSION,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else None,
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------------------------
# Driving it.
# --------------------------------------------------------------------------------------------


def runs_for(args: argparse.Namespace, size: int) -> int:
    if args.runs is not None:
        return int(args.runs)
    return 3 if size <= MANY_RUNS_UP_TO else 1


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=2,
    )


def bench_size(
    asked: int,
    args: argparse.Namespace,
    databases: Databases,
    console: Console,
) -> tuple[SizeResult, str]:
    data = prepare_data(asked, args.seed, args.data_dir, console)
    runs = runs_for(args, asked)
    console.print(
        f"{asked:,} asked: {data.persons:,} persons, {data.records:,} source records, "
        f"{len(data.files)} files; {runs} run(s)"
    )
    figures: list[RunFigures] = []
    first_clustering: dict[RecordKey, Any] | None = None
    version = ""
    with _progress(console) as progress:

        def matched(label: str) -> IngestRun:
            nonlocal version
            url = databases.fresh("gateway")
            try:
                version = databases.version(url)
                return ingest_data_set(
                    url,
                    data,
                    data.files,
                    matching=True,
                    shuffle_seed=None,
                    progress=progress,
                    label=label,
                )
            finally:
                databases.drop("gateway")

        def unmatched(label: str) -> IngestRun:
            url = databases.fresh("baseline")
            try:
                return ingest_data_set(
                    url,
                    data,
                    data.files,
                    matching=False,
                    shuffle_seed=None,
                    progress=progress,
                    label=label,
                )
            finally:
                databases.drop("baseline")

        for number in range(1, runs + 1):
            tag = f"{asked:,} run {number}/{runs}"
            baseline: IngestRun | None = None
            # Alternate which side goes first, so neither always runs on a warmer machine.
            if args.no_baseline:
                run = matched(f"{tag} matching")
            elif number % 2:
                run = matched(f"{tag} matching")
                baseline = unmatched(f"{tag} baseline")
            else:
                baseline = unmatched(f"{tag} baseline")
                run = matched(f"{tag} matching")
            if first_clustering is None:
                first_clustering = run.clustering
            result = run_figures(number, run, baseline, data.truth)
            figures.append(result)
            console.print(
                f"{tag}: {result.records_per_s:,.0f} rec/s with matching"
                + (
                    f", {result.baseline_records_per_s:,.0f} without (ratio {result.ratio:.3f})"
                    if result.baseline_records_per_s is not None
                    else ""
                )
                + f"; pairwise P {result.pairwise_precision:.4f} R {result.pairwise_recall:.4f}"
            )
        order = None
        if args.orders == "all" or (args.orders == "smallest" and asked == min(args.sizes)):
            order = order_check(data, args.seed, databases, progress, first_clustering)
            console.print(f"{asked:,} second order: agreement {order.agreement:.5f}")
    return SizeResult(data, figures, median_figures(figures), order), version


def order_check(
    data: DataSet,
    seed: int,
    databases: Databases,
    progress: Progress,
    first: dict[RecordKey, Any] | None,
) -> OrderCheck:
    """Ingest the same data in another order (files and each file's records shuffled)."""
    if first is None:
        raise RuntimeError("the order check needs a first run to compare with")
    url = databases.fresh("reordered")
    try:
        other = ingest_data_set(
            url,
            data,
            shuffled_order(data, seed),
            matching=True,
            shuffle_seed=seed,
            progress=progress,
            label=f"{data.asked:,} shuffled order",
        )
    finally:
        databases.drop("reordered")
    pairs = evaluation.pairwise(other.clustering, data.truth)
    return OrderCheck(
        agreement=evaluation.agreement(first, other.clustering),
        pairwise_precision=pairs.precision,
        pairwise_recall=pairs.recall,
        persons=len(set(first.values())),
        other_persons=len(set(other.clustering.values())),
    )


def _sizes(value: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in value.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError("sizes are whole numbers, e.g. 10000,100000") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return sizes


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Identity resolution on generated data through the real import path: "
        "accuracy against the ground truth, records/s with and without matching, per-record "
        "match latency as the store grows. Prints figures; never passes or fails on time."
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="source records per data set, comma-separated (default 10000,100000,1000000)",
    )
    parser.add_argument(
        "--runs",
        type=_positive,
        default=None,
        help=f"runs per size (default 3 up to {MANY_RUNS_UP_TO:,} records, 1 above: "
        "a 1M run takes hours)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: fresh SQLite files in a temporary directory; a PostgreSQL URL's database "
        "(which must be named crc_bench*) is dropped and recreated for every run",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="cache of generated data sets (default var/bench-matching/)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the runs with matching disabled"
    )
    parser.add_argument(
        "--orders",
        nargs="?",
        const="smallest",
        choices=("smallest", "all"),
        default=None,
        help="also ingest in a second, shuffled order and print the agreement of the two "
        "clusterings: for the smallest size (the default) or all sizes",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM becomes KeyboardInterrupt so every `finally` (dropping databases) still runs.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    url = args.database_url
    engine = make_url(url).get_backend_name() if url else "sqlite"
    if engine not in ("sqlite", "postgresql"):
        raise SystemExit(f"unsupported database {engine!r}: use SQLite or PostgreSQL")
    console = Console(stderr=True, soft_wrap=True)
    for size in args.sizes:
        if runs_for(args, size) == 1 and args.runs is None:
            console.print(f"{size:,} records: 1 run (a run of this size takes a long while)")
    results: list[SizeResult] = []
    version = ""
    with tempfile.TemporaryDirectory(prefix="crc-bench-matching-") as tmp:
        databases: Databases = (
            PostgresDatabases(url) if engine == "postgresql" else SqliteDatabases(url, Path(tmp))
        )
        try:
            for size in args.sizes:
                result, version = bench_size(size, args, databases, console)
                results.append(result)
        except KeyboardInterrupt:
            console.print("interrupted; temporary databases removed")
            return 130
    env = environment(args, engine, version)
    print()
    print(
        f"crc-gateway identity resolution benchmark: {env['engine']} ({env['database_version']}), "
        f"seed {env['seed']}, generator v{env['generator_version']}, chunks of {CHUNK_RECORDS:,}"
    )
    print(
        f"Python {env['python']}, {env['cpu_count']} cores ({env['usable_cpus']} usable), "
        f"{env['platform']}"
    )
    print(
        "rec/s: source records / wall time of the whole import (rejected ones included); "
        "base/s: the same with matching disabled (exact CRN links only); ratio: rec/s / base/s; "
        "p50/p99: identity resolution time per record (BatchResult.match_seconds); pw: pairwise, "
        "cl: cluster precision/recall/F1 against truth.csv; review: possible matches pending"
    )
    for result in results:
        print_size(result)
    figures = summary(results)
    print_summary(figures)
    if args.json is not None:
        document = {
            "environment": env,
            "targets": TARGETS,
            "summary": figures,
            "sizes": [
                {
                    "asked": result.data.asked,
                    "persons": result.data.persons,
                    "records": result.data.records,
                    "invalid_records": result.data.invalid,
                    "files": len(result.data.files),
                    "runs": [asdict(run) for run in result.runs],
                    "median": result.medians,
                    "order": asdict(result.order) if result.order else None,
                }
                for result in results
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
