"""`crc-gateway worker`: deliver webhooks from the outbox in a process of its own."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from gateway.cli.app import app, configured_matcher, database
from gateway.logs import configure_logging
from gateway.services.delivery import DeliveryWorker
from gateway.settings import get_settings


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit (for cron).")
    ] = False,
) -> None:
    """Deliver webhooks until stopped (SIGTERM or Ctrl-C). Safe beside servers and other
    workers: each delivery is claimed by one worker at a time."""
    settings = get_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    policy = configured_matcher(settings).policy
    db = database()

    async def main() -> None:
        delivery = DeliveryWorker(db, settings.webhooks, policy=policy)
        try:
            if once:
                while (await delivery.run_once()).claimed:
                    pass
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            typer.echo("delivering webhooks; Ctrl-C to stop", err=True)
            await delivery.run(stop)
            typer.echo("stopped", err=True)
        finally:
            await delivery.aclose()

    try:
        asyncio.run(main())
    finally:
        db.dispose()
