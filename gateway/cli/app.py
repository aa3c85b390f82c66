"""The `crc-gateway` Typer application, and what every command module shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli.failures import DEBUG_KEY, CommandFailed, GatewayGroup
from gateway.db import Database
from gateway.settings import Settings, get_settings

if TYPE_CHECKING:
    from gateway.services.identity import Matcher
    from gateway.services.sources import SourceRegistry

app = typer.Typer(
    cls=GatewayGroup, help="crc-gateway: probation case data gateway.", no_args_is_help=True
)


@app.callback()
def options(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="On failure show the full traceback (it may quote record values)."
        ),
    ] = False,
) -> None:
    ctx.meta[DEBUG_KEY] = debug


def database() -> Database:
    return Database.from_settings(get_settings())


def configured_sources(settings: Settings) -> SourceRegistry:
    """Every configured source's adapter; a broken one raises AdapterLoadError, shown as such."""
    from adapters import registry
    from gateway.services.sources import SourceRegistry

    return SourceRegistry(registry.discover(), settings)


def configured_matcher(settings: Settings) -> Matcher:
    """The matcher the settings describe; a bad model file or survivorship setting fails here."""
    from gateway.matching.model import ModelFileError
    from gateway.services.identity import Matcher

    try:
        return Matcher.from_settings(settings)
    except ModelFileError:
        raise
    except ValueError as error:
        # Survivorship settings name fields, not data, so the message is safe to show.
        raise CommandFailed(
            f"matching settings: {error}", hint="fix GATEWAY_SURVIVORSHIP__*", exit_code=2
        ) from error
