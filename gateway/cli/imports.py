"""`crc-gateway import` and `crc-gateway adapters list`: files in a source's own format."""

from __future__ import annotations

import mimetypes
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

from adapters import registry
from adapters.base import Adapter
from gateway.cli.app import app, database
from gateway.errors import GatewayError
from gateway.services import imports
from gateway.services.identity import Matcher
from gateway.services.sources import SourceRegistry
from gateway.settings import get_settings

adapters_app = typer.Typer(help="Installed adapters and configured sources.", no_args_is_help=True)
app.add_typer(adapters_app, name="adapters")

CONTENT_TYPES = {
    ".csv": "text/csv",
    ".xml": "application/xml",
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
}


def guess_content_type(path: Path) -> str | None:
    return CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    source: Annotated[str, typer.Option(help="The source the file comes from.")],
    content_type: Annotated[
        str | None, typer.Option(help="Media type; guessed from the file name if not given.")
    ] = None,
) -> None:
    """Import a file in a source's own format, in constant memory; resumes if interrupted."""
    settings = get_settings()
    try:
        sources = SourceRegistry(registry.discover(), settings)
        matcher = Matcher.from_settings(settings)
    except (registry.AdapterLoadError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    media_type = content_type or guess_content_type(file)
    if media_type is None:
        typer.echo("error: cannot tell the content type; pass --content-type", err=True)
        raise typer.Exit(2)
    try:
        adapter = sources.adapter_for(source, media_type)
    except GatewayError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2) from None
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
                    content_type=media_type,
                    filename=file.name,
                    file_sha256=digest,
                    file_size=size,
                    principal=None,
                    chunk_records=settings.limits.import_chunk_records,
                    on_progress=advance,
                    matcher=matcher,
                )
                progress.update(task, completed=size)
    except GatewayError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    if summary.resumed_from:
        typer.echo(f"resumed after {summary.resumed_from} records already stored")
    typer.echo(
        f"import {summary.import_id} {summary.status}: {summary.records} records, "
        f"{summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.rejected} rejected (see GET /v1/quarantine?source={source})"
    )


@adapters_app.command("list")
def adapters_list() -> None:
    """Show installed adapters and which source uses which."""
    try:
        installed = registry.discover()
        sources = SourceRegistry(installed, get_settings())
    except registry.AdapterLoadError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
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
