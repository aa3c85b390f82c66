"""`crc-gateway matcher ...`: train and inspect the identity-matching model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from gateway.cli.app import app, database
from gateway.cli.failures import CommandFailed

matcher_app = typer.Typer(help="The identity-matching model.", no_args_is_help=True)
app.add_typer(matcher_app, name="matcher")


@matcher_app.command("train")
def matcher_train(
    out: Annotated[Path, typer.Option(help="Where to write the new model file (JSON).")],
    base: Annotated[
        Path | None,
        typer.Option(help="Model to start from (its bands are kept); the configured one if unset."),
    ] = None,
    max_records: Annotated[
        int | None, typer.Option(min=100, help="Train on at most this many stored records.")
    ] = None,
    max_pairs: Annotated[
        int, typer.Option(min=1, help="Pairs sampled for u and for EM.")
    ] = 200_000,
    max_iterations: Annotated[int, typer.Option(min=1, max=200)] = 25,
    seed: Annotated[int, typer.Option(help="Seed of the pair sampling.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
) -> None:
    """Estimate a model from the stored records (unsupervised EM) and write it to OUT.

    Point GATEWAY_MATCHING__MODEL_FILE at the file to use it; every decision records its version.
    """
    from gateway.matching import load_model, train, view_of
    from gateway.repositories import source_records as source_records_repo
    from gateway.settings import get_settings

    if out.exists() and not force:
        raise CommandFailed(f"{out} exists", hint="pass --force to overwrite it", exit_code=2)
    start = load_model(base or get_settings().matching.model_file)
    console = Console(stderr=True)
    db = database()
    try:
        views = db.read(
            lambda session: [
                view_of(person)
                for person in source_records_repo.iter_canonical_persons(session, limit=max_records)
            ]
        )
    finally:
        db.dispose()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        try:
            model = train(
                views,
                base=start,
                max_pairs=max_pairs,
                max_iterations=max_iterations,
                seed=seed,
                progress=advance,
            )
        except ValueError as error:
            # Training refuses too few records or pairs; its message says which, never a value.
            raise CommandFailed(str(error), exit_code=2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    model.dump(out)
    info = model.trained
    typer.echo(f"wrote {out}: model {model.version} from {len(views)} records")
    if info is not None:
        typer.echo(f"  {info.model_dump_json()}")


@matcher_app.command("show")
def matcher_show(
    model_file: Annotated[
        Path | None, typer.Argument(help="A model file; the configured one if not given.")
    ] = None,
) -> None:
    """Print a model's version, prior, bands and each field's levels in match weights."""
    from gateway.matching import load_model
    from gateway.settings import get_settings

    model = load_model(model_file or get_settings().matching.model_file)
    typer.echo(f"model {model.version}: {model.description}")
    bands = model.bands
    typer.echo(
        f"prior {model.prior:g}; link >= {bands.link} bits, possible >= {bands.possible} bits"
    )
    for name, comparison in model.comparisons.items():
        typer.echo(f"  {name}")
        for level in comparison.levels:
            typer.echo(f"    {level.label:<24} {level.weight:+.2f} bits")
