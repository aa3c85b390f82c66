"""`crc-gateway matcher ...`: train, inspect, activate and re-run the identity-matching model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from gateway.cli.app import app, configured_matcher, database
from gateway.cli.failures import CommandFailed
from gateway.errors import GatewayError
from gateway.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from gateway.matching import MatchModel

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
    activate: Annotated[
        bool,
        typer.Option("--activate", help="Also store the model and make it the active one."),
    ] = False,
) -> None:
    """Estimate a model from the stored records (unsupervised EM) and write it to OUT.

    `crc-gateway matcher activate OUT` (or --activate here) makes ingest score with it; then
    `crc-gateway matcher rerun` applies it to the records already stored. Every decision records
    the version of the model that made it.
    """
    from gateway.matching import load_model, train, view_of
    from gateway.repositories import source_records as source_records_repo

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
    with _progress(console) as advance:
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
    if activate:
        _activate(model)


def _activate(model: MatchModel) -> None:
    from gateway.models import utcnow
    from gateway.services import match_models

    db = database()
    try:

        def work(session: Session) -> bool:
            _row, created = match_models.add_model(session, model, principal=None, now=utcnow())
            match_models.activate(session, model.version, principal=None, now=utcnow())
            return created

        created = db.write(work)
    except GatewayError as error:
        raise CommandFailed(error.detail, exit_code=2) from None
    finally:
        db.dispose()
    stored = "stored and activated" if created else "activated (already stored)"
    typer.echo(f"model {model.version} {stored}; run `crc-gateway matcher rerun` to apply it")


@matcher_app.command("activate")
def matcher_activate(
    model_file: Annotated[Path, typer.Argument(help="A model file (from `matcher train`).")],
) -> None:
    """Store a model file and make it the model every ingest scores with, from its next batch.

    Records already stored keep their persons until `crc-gateway matcher rerun`.
    """
    from gateway.matching import ModelFileError, load_model

    try:
        model = load_model(model_file)
    except ModelFileError as error:
        raise CommandFailed(str(error), exit_code=2) from None
    _activate(model)


@matcher_app.command("models")
def matcher_models() -> None:
    """List the stored models, newest first; the active one is marked."""
    from gateway.services import match_models

    db = database()
    try:
        rows = db.read(
            lambda session: [
                match_models.model_summary(row) for row in match_models.list_models(session)
            ]
        )
    finally:
        db.dispose()
    if not rows:
        typer.echo("no stored models: ingest uses the configured model file (or the packaged one)")
    for row in rows:
        mark = "*" if row["active"] else " "
        typer.echo(
            f"{mark} {row['version']}  added {row['created_at']:%Y-%m-%d %H:%M}  "
            f"{row['description']}"
        )


@matcher_app.command("rerun")
def matcher_rerun(
    rekey: Annotated[
        bool,
        typer.Option(
            "--rekey",
            help="Also write every record's blocking keys again by the current rules (after an "
            "upgrade that changed them).",
        ),
    ] = False,
) -> None:
    """Cluster every stored record again with the active model and apply the result.

    Records move to the person their cluster keeps (survivors keep their ids), with person.split
    and person.merged changes; records a person pinned and pairs a person said differ are never
    overridden; review items the new clusters answer are closed. Safe while the gateway runs:
    a person changed meanwhile is left as it is. Prints what changed.
    """
    from gateway.models import utcnow
    from gateway.services import reruns

    settings = get_settings()
    matcher = configured_matcher(settings)
    console = Console(stderr=True)
    db = database()
    try:
        try:
            # Claimed for this process as it is queued: no server takes it meanwhile.
            run = db.write(
                lambda session: reruns.request_run(
                    session, principal=None, now=utcnow(), start=True
                )
            )
        except GatewayError as error:
            raise CommandFailed(error.detail, exit_code=2) from None
        assert run.claim is not None  # noqa: S101 (request_run with start claims it)
        claim = reruns.Claim(run_id=run.id, token=run.claim)
        with _progress(console) as advance:
            finished = reruns.execute(db, matcher, claim, progress=advance, rekey=rekey)
    finally:
        db.dispose()
    if finished is None:
        raise CommandFailed(f"run {run.id} was taken over by another process", exit_code=1)
    typer.echo(
        f"run {finished.id} {finished.status} with model {finished.model_version}: "
        f"{finished.records_total} records, {finished.records_moved} moved, "
        f"{finished.persons_merged} persons merged, {finished.persons_split} split, "
        f"{finished.reviews_closed} review items closed, {finished.reviews_opened} opened"
    )


@contextmanager
def _progress(console: Console) -> Iterator[Callable[[str, int, int], None]]:
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

        yield advance


@matcher_app.command("show")
def matcher_show(
    model_file: Annotated[
        Path | None, typer.Argument(help="A model file; the configured one if not given.")
    ] = None,
) -> None:
    """Print a model's version, prior, bands and each comparison level's m, u and weight."""
    from gateway.matching import load_model

    model = load_model(model_file or get_settings().matching.model_file)
    typer.echo(f"model {model.version}: {model.description}")
    bands = model.bands
    typer.echo(
        f"prior {model.prior:g}; link >= {bands.link} bits, possible >= {bands.possible} bits"
    )
    typer.echo(f"  {'comparison / level':<26} {'m':>10} {'u':>10} {'weight':>12}")
    for name, comparison in model.comparisons.items():
        typer.echo(f"  {name}")
        for level in comparison.levels:
            if level.m is None or level.u is None:
                typer.echo(f"    {level.label:<24} {'-':>10} {'-':>10} {'0 (missing)':>12}")
                continue
            typer.echo(
                f"    {level.label:<24} {level.m:>10.4g} {level.u:>10.4g} "
                f"{level.weight:>+7.2f} bits"
            )
    for name, table in model.term_frequencies.items():
        typer.echo(f"  term frequencies: {name}, {len(table)} values")
