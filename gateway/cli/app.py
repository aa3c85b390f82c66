"""The `crc-gateway` Typer application, and what every command module shares."""

from __future__ import annotations

import typer

from gateway.db import Database
from gateway.settings import get_settings

app = typer.Typer(help="crc-gateway: probation case data gateway.", no_args_is_help=True)


def database() -> Database:
    return Database.from_settings(get_settings())
