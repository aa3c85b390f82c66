"""`crc-gateway generate`: synthetic CRC source files with ground truth (see gateway.synthetic)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from gateway.cli.app import app
from gateway.synthetic.sources import SOURCE_FORMATS

if TYPE_CHECKING:
    from gateway.synthetic import GenerateOptions, GenerationReport

_DEFAULT_WORKERS = min(os.cpu_count() or 1, 4)


@app.command("generate")
def generate_command(
    persons: Annotated[int, typer.Option(min=0, help="True persons in the population.")],
    seed: Annotated[int, typer.Option(help="Seed: the same persons and seed give the same bytes.")],
    out: Annotated[Path, typer.Option(help="Output directory (empty, or see --overwrite).")],
    sources: Annotated[
        str,
        typer.Option(help="Comma-separated sources to write, from: " + ", ".join(SOURCE_FORMATS)),
    ] = ",".join(SOURCE_FORMATS),
    records_per_file: Annotated[
        int, typer.Option(min=1, help="Most records in one file of a source.")
    ] = 100_000,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes; the output does not depend on it.")
    ] = _DEFAULT_WORKERS,
    noise: Annotated[
        list[str] | None,
        typer.Option(
            help="Override a noise rate, KIND=RATE (repeatable), e.g. --noise name_typo=0.1.",
        ),
    ] = None,
    overlap: Annotated[
        str | None,
        typer.Option(help="Weights of a person being in 1, 2, 3... sources, e.g. 0.2,0.3,0.5."),
    ] = None,
    twin_rate: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Chance a person starts a twin pair.")
    ] = None,
    on_missing_writer: Annotated[
        str,
        typer.Option(
            help="A source whose writer is missing: fail, skip it, or write it as canonical NDJSON."
        ),
    ] = "fail",
    overwrite: Annotated[
        bool, typer.Option(help="Replace a previous run's files in --out.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Write synthetic CRC case data: each source in its own format, plus the ground truth.

    Layout: OUT/<source>/part-NNNNN.<ext> (at most --records-per-file records each),
    OUT/truth.csv (source,external_id,person_key for every record), OUT/noise.csv,
    OUT/twins.csv, OUT/manifest.json and OUT/sources.yaml (for GATEWAY_SOURCES_FILE).
    """
    from pydantic import ValidationError

    from gateway.synthetic import (
        GenerateOptions,
        GenerationError,
        MissingWriterPolicy,
        NoiseRates,
        PopulationSettings,
        generate,
        resolve_sources,
    )

    try:
        policy = MissingWriterPolicy(on_missing_writer)
    except ValueError:
        _fail("--on-missing-writer must be one of: fail, skip, canonical")
    try:
        noise_rates = NoiseRates(**_rates(noise or []))
        population: dict[str, object] = {}
        if overlap is not None:
            population["overlap_weights"] = tuple(float(w) for w in overlap.split(","))
        if twin_rate is not None:
            population["twin_rate"] = twin_rate
        settings = PopulationSettings.model_validate(population)
    except (ValidationError, ValueError) as error:
        _fail(f"bad rates: {error}")
    options = GenerateOptions(
        persons=persons,
        seed=seed,
        out=out,
        sources=tuple(source.strip() for source in sources.split(",") if source.strip()),
        records_per_file=records_per_file,
        noise=noise_rates,
        population=settings,
        workers=workers,
        on_missing_writer=policy,
        overwrite=overwrite,
    )
    started = time.perf_counter()
    try:
        resolve_sources(options)  # fail fast, before any progress bar
        report = _run_with_progress(options) if progress else generate(options)
    except GenerationError as error:
        _fail(str(error))
    _print_report(report, time.perf_counter() - started)


def _rates(pairs: list[str]) -> dict[str, float]:
    rates: dict[str, float] = {}
    for pair in pairs:
        kind, separator, value = pair.partition("=")
        if not separator:
            raise ValueError(f"--noise takes KIND=RATE, got {pair!r}")
        rates[kind.strip()] = float(value)
    return rates


def _run_with_progress(options: GenerateOptions) -> GenerationReport:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from gateway.synthetic import generate

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("persons, {task.fields[records]:,} records"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("generating", total=options.persons, records=0)
        written = 0

        def advance(persons: int, records: int) -> None:
            nonlocal written
            written += records
            bar.update(task, advance=persons, records=written)

        return generate(options, advance)


def _print_report(report: GenerationReport, seconds: float) -> None:
    for reason in report.skipped.values():
        typer.echo(f"warning: {reason}", err=True)
    for summary in report.sources:
        invalid = f" ({summary.invalid_records:,} with a malformed PNC)"
        typer.echo(
            f"{summary.source:<14} {summary.adapter:<16} {summary.records:>10,} records{invalid} "
            f"in {len(summary.files)} file(s)"
        )
    rate = report.records / seconds if seconds > 0 else 0.0
    typer.echo(
        f"{report.records:,} source records for {report.persons:,} persons "
        f"({report.twin_pairs:,} twin pairs) in {seconds:.1f} s: {rate:,.0f} records/s"
    )
    typer.echo(f"truth: {report.out / 'truth.csv'}; sources file: {report.out / 'sources.yaml'}")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
