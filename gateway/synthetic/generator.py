"""A generator run: every source's files, the ground truth, a manifest and a sources file.

Output layout (``out`` below)::

    out/manifest.json          what was asked for and what was written (counts, rates, versions)
    out/sources.yaml           GATEWAY_SOURCES_FILE: each source and the adapter that reads it
    out/truth.csv              source,external_id,person_key for every record written
    out/noise.csv              source,external_id,kinds for every record that carries noise
    out/twins.csv              person_key_a,person_key_b for every pair of true twins
    out/<source>/part-00001.<ext>, part-00002.<ext>, ...   each a complete file of the format

The population is cut into tasks of whole blocks of persons (at least eight where the run is big
enough, never more persons than ``records_per_file``). A task generates its persons once and
streams every source's records to that source's writer, each writer in its own thread behind a
bounded queue, so memory stays flat whatever the size. Each task ends its sources' files, so a
file holds at most ``records_per_file`` records (often fewer). Tasks run in worker processes when
``workers`` > 1; the cut depends only on the run's size, so the same persons, seed, sources and
settings give byte-identical output whatever the number of workers.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import queue
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

from gateway.synthetic.noise import NoiseKind
from gateway.synthetic.pools import Pools, draw_pools
from gateway.synthetic.population import (
    BLOCK_SIZE,
    MAX_PERSONS,
    REFERENCE_DATE,
    Population,
    person_key,
)
from gateway.synthetic.rendering import SourceRenderer
from gateway.synthetic.settings import NoiseRates, PopulationSettings
from gateway.synthetic.sources import (
    SOURCE_FORMATS,
    RecordWriter,
    SourceFormat,
    WriterUnavailable,
    as_canonical,
    load_writer,
)
from schemas import CaseRecord

__all__ = [
    "DEFAULT_RECORDS_PER_FILE",
    "GENERATOR_VERSION",
    "GenerateOptions",
    "GenerationError",
    "GenerationReport",
    "MissingWriterPolicy",
    "SourceSummary",
    "generate",
    "resolve_sources",
]

#: Bumped whenever the same seed would give different output.
GENERATOR_VERSION: Final = "1"
DEFAULT_RECORDS_PER_FILE: Final = 100_000

TRUTH_FILE: Final = "truth.csv"
NOISE_FILE: Final = "noise.csv"
TWINS_FILE: Final = "twins.csv"
MANIFEST_FILE: Final = "manifest.json"
SOURCES_FILE: Final = "sources.yaml"
_PARTS_DIR: Final = ".parts"
_WRITE_BUFFER: Final = 1 << 20
_MIN_TASKS: Final = 8

#: Called as blocks are done: how many more persons and source records have been written.
ProgressCallback = Callable[[int, int], None]


class GenerationError(RuntimeError):
    """The run cannot go ahead: bad options, a missing writer, an occupied output directory."""


class MissingWriterPolicy(StrEnum):
    """What to do with a source whose writer is not available."""

    FAIL = "fail"
    SKIP = "skip"
    CANONICAL = "canonical"


@dataclass(frozen=True)
class GenerateOptions:
    """What to generate and where; see the module docstring for the output layout."""

    persons: int
    seed: int
    out: Path
    sources: tuple[str, ...] = tuple(SOURCE_FORMATS)
    records_per_file: int = DEFAULT_RECORDS_PER_FILE
    noise: NoiseRates = field(default_factory=NoiseRates)
    population: PopulationSettings = field(default_factory=PopulationSettings)
    workers: int = 1
    on_missing_writer: MissingWriterPolicy = MissingWriterPolicy.FAIL
    overwrite: bool = False


@dataclass(frozen=True)
class SourceSummary:
    """What one source's pass wrote."""

    source: str
    adapter: str
    content_type: str
    records: int
    invalid_records: int
    files: tuple[str, ...]
    noise: dict[str, int]


@dataclass(frozen=True)
class GenerationReport:
    """What a run wrote, source by source, and the population's shape."""

    out: Path
    persons: int
    seed: int
    sources: tuple[SourceSummary, ...]
    skipped: dict[str, str]
    overlap: dict[int, int]
    twin_pairs: int

    @property
    def records(self) -> int:
        return sum(source.records for source in self.sources)


@dataclass(frozen=True)
class _RunPlan:
    """What every task of a run shares; picklable, so tasks can run in other processes."""

    formats: tuple[SourceFormat, ...]
    persons: int
    seed: int
    pools: Pools
    population: PopulationSettings
    noise: NoiseRates
    out: Path
    records_per_file: int

    @property
    def universe(self) -> tuple[str, ...]:
        return tuple(fmt.source for fmt in self.formats)

    def task_directory(self, task: int) -> Path:
        return self.out / _PARTS_DIR / f"task-{task:05d}"


@dataclass(frozen=True)
class _Task:
    """A run of whole blocks of the population: every source's records of those persons."""

    number: int
    first_block: int
    end_block: int


@dataclass
class _TaskResult:
    files: dict[str, list[Path]]
    records: Counter[str]
    invalid: Counter[str]
    noise: dict[str, Counter[str]]
    overlap: Counter[int]
    twins: list[tuple[str, str]]


def generate(
    options: GenerateOptions, progress: ProgressCallback | None = None
) -> GenerationReport:
    """Write every requested source, the ground truth, the manifest and the sources file."""
    formats, skipped = resolve_sources(options)
    _prepare_output(options.out, overwrite=options.overwrite)
    plan = _RunPlan(
        formats=tuple(formats),
        persons=options.persons,
        seed=options.seed,
        pools=draw_pools(options.seed),
        population=options.population,
        noise=options.noise,
        out=options.out,
        records_per_file=options.records_per_file,
    )
    tasks = _plan_tasks(options.persons, options.records_per_file)
    report = progress or (lambda _persons, _records: None)
    if options.workers > 1 and len(tasks) > 1:
        results = _run_in_processes(plan, tasks, options.workers, report)
    else:
        results = [_run_task(plan, task, report) for task in tasks]
    generated = _finish(options, plan, tasks, results, skipped)
    _write_manifest(options, generated)
    _write_sources_file(options, generated)
    return generated


def _plan_tasks(persons: int, records_per_file: int) -> list[_Task]:
    # A task never holds more persons than a file may hold records (each person is at most once
    # in a source), so a task's records fit one file per source unless files are tiny. A run is
    # cut into at least _MIN_TASKS tasks where it can be, so that workers have work to share;
    # the cut depends on the run's size only, never on the number of workers.
    blocks = -(-persons // BLOCK_SIZE)
    per_task = max(1, min(records_per_file // BLOCK_SIZE, -(-blocks // _MIN_TASKS)))
    return [
        _Task(number=number, first_block=first, end_block=min(first + per_task, blocks))
        for number, first in enumerate(range(0, blocks, per_task), start=1)
    ]


def _finish(
    options: GenerateOptions,
    plan: _RunPlan,
    tasks: list[_Task],
    results: list[_TaskResult],
    skipped: dict[str, str],
) -> GenerationReport:
    """Name the files in task order, concatenate truth and noise, count; drop the scratch space."""
    summaries: list[SourceSummary] = []
    for fmt in plan.formats:
        directory = options.out / fmt.source
        directory.mkdir(exist_ok=True)
        names: list[str] = []
        for result in results:
            for path in result.files[fmt.source]:
                name = f"part-{len(names) + 1:05d}.{fmt.extension}"
                path.replace(directory / name)
                names.append(f"{fmt.source}/{name}")
        noise: Counter[str] = Counter()
        for result in results:
            noise.update(result.noise[fmt.source])
        summaries.append(
            SourceSummary(
                source=fmt.source,
                adapter=fmt.adapter,
                content_type=fmt.content_type,
                records=sum(result.records[fmt.source] for result in results),
                invalid_records=sum(result.invalid[fmt.source] for result in results),
                files=tuple(names),
                noise={kind.value: noise[kind.value] for kind in NoiseKind},
            )
        )
    _concatenate(
        options.out / TRUTH_FILE,
        "source,external_id,person_key\n",
        [plan.task_directory(task.number) / TRUTH_FILE for task in tasks],
    )
    _concatenate(
        options.out / NOISE_FILE,
        "source,external_id,kinds\n",
        [plan.task_directory(task.number) / NOISE_FILE for task in tasks],
    )
    shutil.rmtree(options.out / _PARTS_DIR, ignore_errors=True)
    overlap: Counter[int] = Counter()
    twins: list[tuple[str, str]] = []
    for result in results:
        overlap.update(result.overlap)
        twins.extend(result.twins)
    with (options.out / TWINS_FILE).open("w", encoding="utf-8", newline="") as stream:
        stream.write("person_key_a,person_key_b\n")
        stream.writelines(f"{first},{second}\n" for first, second in twins)
    return GenerationReport(
        out=options.out,
        persons=options.persons,
        seed=options.seed,
        sources=tuple(summaries),
        skipped=skipped,
        overlap=dict(sorted(overlap.items())),
        twin_pairs=len(twins),
    )


def resolve_sources(options: GenerateOptions) -> tuple[list[SourceFormat], dict[str, str]]:
    """The formats to write and the sources skipped (with why); GenerationError if impossible."""
    unknown = [source for source in options.sources if source not in SOURCE_FORMATS]
    if unknown:
        raise GenerationError(
            f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCE_FORMATS)}"
        )
    if not 0 <= options.persons <= MAX_PERSONS:
        raise GenerationError(f"persons must be between 0 and {MAX_PERSONS}")
    if options.records_per_file < 1:
        raise GenerationError("records_per_file must be at least 1")
    formats: list[SourceFormat] = []
    skipped: dict[str, str] = {}
    problems: list[str] = []
    # Table order, not the order asked for, so that the output does not depend on it.
    for source, fmt in SOURCE_FORMATS.items():
        if source not in options.sources:
            continue
        try:
            load_writer(fmt)
        except WriterUnavailable as error:
            if options.on_missing_writer is MissingWriterPolicy.FAIL:
                problems.append(str(error))
            elif options.on_missing_writer is MissingWriterPolicy.SKIP:
                skipped[source] = f"{error}; skipped"
            else:
                skipped[source] = f"{error}; written as canonical NDJSON instead"
                formats.append(as_canonical(fmt))
            continue
        formats.append(fmt)
    if problems:
        raise GenerationError(
            "; ".join(problems)
            + ". Choose other --sources, or pass --on-missing-writer skip|canonical."
        )
    if not formats:
        raise GenerationError("no source left to generate")
    return formats, skipped


def _prepare_output(out: Path, *, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise GenerationError(f"{out} exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise GenerationError(
                f"{out} is not empty (pass --overwrite to replace a previous run)"
            )
        # Only what a run writes is removed; anything else in the directory is left alone.
        for name in (TRUTH_FILE, NOISE_FILE, TWINS_FILE, MANIFEST_FILE, SOURCES_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / _PARTS_DIR, ignore_errors=True)
        for source in SOURCE_FORMATS:
            directory = out / source
            if directory.is_dir():
                for part in directory.glob("part-*.*"):
                    part.unlink()
    out.mkdir(parents=True, exist_ok=True)


class _SourceSink:
    """A source's writer running in its own thread, fed batches of records through a queue.

    Writers pull records from an iterable, and one pass over the population feeds every source's
    writer at once, so each writer gets a thread; the queue is bounded, so memory stays flat.
    """

    def __init__(
        self, writer: RecordWriter, directory: Path, extension: str, per_file: int
    ) -> None:
        self.files: list[Path] = []
        self.error: BaseException | None = None
        self._writer = writer
        self._directory = directory
        self._extension = extension
        self._per_file = per_file
        self._batches: queue.Queue[list[CaseRecord] | None] = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def put(self, batch: list[CaseRecord]) -> None:
        if self.error is not None:
            raise self.error
        self._batches.put(batch)

    def close(self) -> None:
        self._batches.put(None)
        self._thread.join()

    def _records(self) -> Iterator[CaseRecord]:
        while (batch := self._batches.get()) is not None:
            yield from batch

    def _run(self) -> None:
        try:
            self.files = _write_sharded(
                self._writer, self._records(), self._directory, self._extension, self._per_file
            )
        except BaseException as error:
            self.error = error
            # Keep taking batches so that the producer never blocks on a dead writer.
            while self._batches.get() is not None:
                pass


def _run_task(plan: _RunPlan, task: _Task, progress: ProgressCallback) -> _TaskResult:
    """One task: every source's files for its blocks, and its part of the truth and noise."""
    population = Population(
        persons=plan.persons,
        seed=plan.seed,
        sources=plan.universe,
        settings=plan.population,
        pools=plan.pools,
    )
    renderers = [
        SourceRenderer(
            fmt, seed=plan.seed, noise=plan.noise, settings=plan.population, pools=plan.pools
        )
        for fmt in plan.formats
    ]
    scratch = plan.task_directory(task.number)
    result = _TaskResult(
        files={},
        records=Counter(),
        invalid=Counter(),
        noise={fmt.source: Counter() for fmt in plan.formats},
        overlap=Counter(),
        twins=[],
    )
    sinks: dict[str, _SourceSink] = {}
    for fmt in plan.formats:
        directory = scratch / fmt.source
        directory.mkdir(parents=True)
        sinks[fmt.source] = _SourceSink(
            load_writer(fmt), directory, fmt.extension, plan.records_per_file
        )
    try:
        with (
            (scratch / TRUTH_FILE).open("w", encoding="utf-8", newline="") as truth,
            (scratch / NOISE_FILE).open("w", encoding="utf-8", newline="") as noisy,
        ):
            for number in range(task.first_block, task.end_block):
                block = population.block(number)
                for person in block:
                    result.overlap[len(person.sources)] += 1
                    if person.twin_of is not None:
                        result.twins.append((person_key(person.twin_of), person.key))
                written = 0
                for renderer in renderers:
                    source = renderer.fmt.source
                    noise = result.noise[source]
                    batch: list[CaseRecord] = []
                    for rendered in renderer.render_block(number, block):
                        truth.write(f"{source},{rendered.external_id},{rendered.person_key}\n")
                        if rendered.noise:
                            noise.update(rendered.noise)
                            kinds = ";".join(rendered.noise)
                            noisy.write(f"{source},{rendered.external_id},{kinds}\n")
                        if not rendered.valid:
                            result.invalid[source] += 1
                        batch.append(rendered.record)
                    result.records[source] += len(batch)
                    written += len(batch)
                    sinks[source].put(batch)
                progress(len(block), written)
    finally:
        for sink in sinks.values():
            sink.close()
    for source, sink in sinks.items():
        if sink.error is not None:
            raise sink.error
        result.files[source] = sink.files
    return result


def _write_sharded(
    writer: RecordWriter,
    records: Iterator[CaseRecord],
    directory: Path,
    extension: str,
    per_file: int,
) -> list[Path]:
    """Hand the records to the writer, a new file every ``per_file`` records; the files."""
    paths: list[Path] = []
    for number in itertools.count(1):
        first = next(records, None)
        if first is None:
            break
        path = directory / f"{number:05d}.{extension}"
        with path.open("wb", buffering=_WRITE_BUFFER) as stream:
            writer(itertools.chain((first,), itertools.islice(records, per_file - 1)), stream)
        paths.append(path)
    return paths


_progress_queue: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _progress_queue  # set once per worker process, by its initializer
    _progress_queue = progress_queue


def _run_task_in_worker(plan: _RunPlan, task: _Task) -> _TaskResult:
    def report(persons: int, records: int) -> None:
        _progress_queue.put((persons, records))

    return _run_task(plan, task, report)


def _run_in_processes(
    plan: _RunPlan, tasks: list[_Task], workers: int, progress: ProgressCallback
) -> list[_TaskResult]:
    # Spawned, not forked: the parent may be running threads (a progress bar's refresher).
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    with ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(progress_queue,),
    ) as pool:
        futures = [pool.submit(_run_task_in_worker, plan, task) for task in tasks]
        pending: set[Future[_TaskResult]] = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            _drain(progress_queue, progress)
            if any(future.exception() is not None for future in done):
                for future in pending:
                    future.cancel()
                break
        _drain(progress_queue, progress)
        return [future.result() for future in futures]


def _drain(progress_queue: Any, progress: ProgressCallback) -> None:
    while True:
        try:
            persons, records = progress_queue.get_nowait()
        except queue.Empty:
            return
        progress(persons, records)


def _concatenate(target: Path, header: str, parts: Iterable[Path]) -> None:
    with target.open("wb") as out:
        out.write(header.encode())
        for part in parts:
            with part.open("rb") as stream:
                shutil.copyfileobj(stream, out, _WRITE_BUFFER)


def _write_manifest(options: GenerateOptions, report: GenerationReport) -> None:
    manifest = {
        "generator": "crc-gateway generate",
        "generator_version": GENERATOR_VERSION,
        "faker_version": version("faker"),
        "persons": options.persons,
        "seed": options.seed,
        "reference_date": REFERENCE_DATE.isoformat(),
        "records_per_file": options.records_per_file,
        "records": report.records,
        "sources": {
            summary.source: {
                "adapter": summary.adapter,
                "content_type": summary.content_type,
                "records": summary.records,
                "invalid_records": summary.invalid_records,
                "files": list(summary.files),
                "noise": summary.noise,
            }
            for summary in report.sources
        },
        "skipped_sources": report.skipped,
        "persons_by_source_count": {str(k): v for k, v in report.overlap.items()},
        "twin_pairs": report.twin_pairs,
        "noise_rates": options.noise.model_dump(),
        "population": options.population.model_dump(mode="json"),
        "files": {
            "truth": TRUTH_FILE,
            "noise": NOISE_FILE,
            "twins": TWINS_FILE,
            "sources": SOURCES_FILE,
        },
    }
    (options.out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def _write_sources_file(options: GenerateOptions, report: GenerationReport) -> None:
    # Written by hand rather than dumped, to say beside each source how its files are sent.
    lines = [
        f"# Written by crc-gateway generate (persons {options.persons}, seed {options.seed}).",
        "# Load with GATEWAY_SOURCES_FILE. Each source's files are under the directory of its",
        "# name; upload them to /v1/sources/<source>/... with the content type given.",
        "sources:",
    ]
    for summary in report.sources:
        extension = summary.files[0].rsplit(".", 1)[-1] if summary.files else "*"
        lines += [
            f"  # {summary.source}/part-*.{extension} as {summary.content_type}",
            f"  {summary.source}:",
            f"    adapter: {summary.adapter}",
        ]
    (options.out / SOURCES_FILE).write_text("\n".join(lines) + "\n")
