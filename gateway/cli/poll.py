"""`crc-gateway poll`: poll sources in the foreground, for cron or a dedicated worker process."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from gateway.cli.app import app, configured_matcher, configured_sources, database
from gateway.cli.failures import CommandFailed
from gateway.logs import configure_logging
from gateway.services import polling
from gateway.services.polling import PollOutcome, PollResult
from gateway.services.sources import ConfiguredSource
from gateway.settings import get_settings


@app.command()
def poll(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="A source to poll (repeatable); default: every polled one."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Poll once and exit (for cron) instead of looping.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Poll even a source not yet due (paused ones are still skipped)."
        ),
    ] = False,
) -> None:
    """Poll the sources the gateway polls. Safe beside running servers: replicas take turns.

    With --once, exits 1 if a poll failed or paused its source.
    """
    settings = get_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    polled = configured_sources(settings).polled()
    selected = _select(polled, source or [])
    matcher = configured_matcher(settings)
    db = database()
    poller = polling.BackgroundPoller(db, selected, matcher=matcher)
    try:
        if once:
            results = polling.poll_round(
                db,
                selected,
                poller.https,
                only_if_due=not force,
                max_pages=None,
                matcher=matcher,
            )
            for result in results:
                typer.echo(describe(result))
            if any(r.outcome in (PollOutcome.FAILED, PollOutcome.PAUSED) for r in results):
                raise typer.Exit(1)
            return
        tick = polling.tick_seconds(selected)
        typer.echo(f"polling {', '.join(s.name for s in selected)}; Ctrl-C to stop", err=True)
        try:
            while True:
                for result in polling.poll_round(db, selected, poller.https, matcher=matcher):
                    if result.outcome is not PollOutcome.SKIPPED:
                        typer.echo(describe(result))
                time.sleep(tick)
        except KeyboardInterrupt:
            typer.echo("stopped", err=True)
    finally:
        poller.close()
        db.dispose()


def _select(polled: list[ConfiguredSource], names: list[str]) -> list[ConfiguredSource]:
    if not polled:
        raise CommandFailed(
            "no source is configured to be polled",
            hint="give a source `poll:` settings in GATEWAY_SOURCES_FILE (see README.md)",
            exit_code=2,
        )
    if not names:
        return polled
    by_name = {source.name: source for source in polled}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise CommandFailed(
            f"not a polled source: {', '.join(unknown)} (polled: {', '.join(sorted(by_name))})",
            exit_code=2,
        )
    return [by_name[name] for name in dict.fromkeys(names)]


def describe(result: PollResult) -> str:
    """One line about a poll, for people: counts and reasons, never record content."""
    name, pages = result.source, f"{result.pages} page(s)"
    if result.outcome in (PollOutcome.CAUGHT_UP, PollOutcome.MORE_PENDING):
        state = "caught up" if result.outcome is PollOutcome.CAUGHT_UP else "more to come"
        counts = ", ".join(f"{outcome} {count}" for outcome, count in result.counts.items())
        return f"{name}: {state}; {pages}, {result.records} record(s) ({counts})"
    if result.outcome is PollOutcome.SKIPPED:
        return f"{name}: skipped ({result.detail})"
    when = f"; next poll at {result.next_poll_at.isoformat()}" if result.next_poll_at else ""
    return f"{name}: {result.outcome.value} after {pages}: {result.detail}{when}"
