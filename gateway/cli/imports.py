"""`crc-gateway import` and `crc-gateway adapters list`: files in a source's own format."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from adapters.base import Adapter
from gateway.cli.app import app, configured_matcher, configured_sources, database
from gateway.cli.failures import CommandFailed
from gateway.errors import MalformedBody
from gateway.services import imports
from gateway.services.sources import ConfiguredSource
from gateway.settings import get_settings

adapters_app = typer.Typer(help="Installed adapters and configured sources.", no_args_is_help=True)
app.add_typer(adapters_app, name="adapters")

# A file name's extension, the generic media type it implies, and the structured-syntax suffixes
# (RFC 6839) of vendor types that share its syntax.
_EXTENSIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    ".csv": ("text/csv", ("+csv",)),
    ".xml": ("application/xml", ("+xml",)),
    ".json": ("application/json", ("+json",)),
    ".ndjson": ("application/x-ndjson", ("+ndjson", "+jsonl", "+json-seq")),
    ".jsonl": ("application/x-ndjson", ("+ndjson", "+jsonl", "+json-seq")),
}


@dataclass(frozen=True)
class ContentTypeGuess:
    content_type: str
    reason: str


def guess_content_type(path: Path, accepted: Sequence[str] = ()) -> ContentTypeGuess | None:
    """The media type of a file from its name, preferring one the source's adapter reads.

    A generated `rest_json` file is `.jsonl`, which alone means canonical NDJSON; its adapter's
    only `+jsonl` type is what such a file holds, so it wins when the generic type is not read.
    """
    suffix = path.suffix.lower()
    generic, suffixes = _EXTENSIONS.get(suffix, (mimetypes.guess_type(path.name)[0], ()))
    own = [media_type for media_type in accepted if media_type.endswith(suffixes)]
    if generic not in accepted and len(own) == 1:
        return ContentTypeGuess(own[0], f"the only {suffix} type the source's adapter reads")
    if generic is None:
        return None
    return ContentTypeGuess(generic, f"guessed from the name {path.name}")


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    source: Annotated[str, typer.Option(help="The source the file comes from.")],
    content_type: Annotated[
        str | None,
        typer.Option(
            help="Media type; guessed from the file name and the source's adapter if not given."
        ),
    ] = None,
) -> None:
    """Import a file in a source's own format, in constant memory; resumes if interrupted.

    Exits 1 if the file cannot be read as the content type used, or every record in it was
    rejected (the usual sign of a wrong content type); the type used is always printed.
    """
    settings = get_settings()
    sources = configured_sources(settings)
    matcher = configured_matcher(settings)
    configured = sources.sources.get(source)
    if content_type is not None:
        guess = ContentTypeGuess(content_type, "as --content-type says")
    else:
        found = guess_content_type(file, configured.adapter.content_types if configured else ())
        if found is None:
            raise CommandFailed(
                f"cannot tell the content type of {file.name}",
                hint="pass --content-type (`crc-gateway adapters list` shows what each reads)",
                exit_code=2,
            )
        guess = found
    adapter = sources.adapter_for(source, guess.content_type)
    assumed = f"{file.name} read as {guess.content_type} by adapter {adapter.name}"
    typer.echo(f"{assumed} ({guess.reason})", err=True)
    console = Console(stderr=True)
    db = database()
    try:
        with file.open("rb") as stream:
            digest, size = imports.sha256_of(stream)
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[records]} records"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            ) as progress:
                task = progress.add_task(f"{source} ← {file.name}", total=size, records=0)

                def advance(bytes_read: int, summary: imports.ImportSummary) -> None:
                    progress.update(task, completed=bytes_read, records=summary.records)

                summary = imports.run_import(
                    db,
                    source=source,
                    adapter=adapter,
                    stream=stream,
                    content_type=guess.content_type,
                    filename=file.name,
                    file_sha256=digest,
                    file_size=size,
                    principal=None,
                    chunk_records=settings.limits.import_chunk_records,
                    on_progress=advance,
                    matcher=matcher,
                    strict=sources.strict(source),
                )
                progress.update(task, completed=size)
    except MalformedBody as error:
        raise CommandFailed(error.detail, hint=_wrong_format_hint(source, configured)) from error
    finally:
        db.dispose()
    if summary.resumed_from:
        typer.echo(f"resumed after {summary.resumed_from} records already stored")
    typer.echo(
        f"import {summary.import_id} {summary.status}: {summary.records} records, "
        f"{summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.rejected} rejected (see GET /v1/quarantine?source={source})"
    )
    if summary.records and summary.rejected == summary.records:
        raise CommandFailed(
            f"every record was rejected: {assumed} (reasons: GET /v1/quarantine?source={source})",
            hint=_wrong_format_hint(source, configured),
        )


def _wrong_format_hint(source: str, configured: ConfiguredSource | None) -> str:
    """What to do when a file was probably read as the wrong format."""
    if configured is None:
        return (
            f"source {source} has no adapter configured, so only canonical records are read: "
            "configure it in GATEWAY_SOURCES_FILE if the file is in its own format"
        )
    types = ", ".join(configured.adapter.content_types)
    return f"if that is not the file's format, pass --content-type (its adapter reads {types})"


@adapters_app.command("list")
def adapters_list() -> None:
    """Show installed adapters and which source uses which."""
    sources = configured_sources(get_settings())
    installed = sources.adapter_classes
    console = Console()
    adapters = Table("adapter", "version", "content types", "polled", title="Installed adapters")
    for name, adapter_class in sorted(installed.items()):
        polled = "yes" if adapter_class.fetch is not Adapter.fetch else "no"
        adapters.add_row(
            name, adapter_class.version, ", ".join(adapter_class.content_types) or "-", polled
        )
    console.print(adapters)
    configured = Table("source", "adapter", "version", "polled", title="Configured sources")
    for name, source in sorted(sources.sources.items()):
        configured.add_row(
            name, source.adapter.name, source.adapter.version, "yes" if source.poll else "no"
        )
    console.print(configured)
    console.print("Any other source may push canonical records (application/json, NDJSON).")
