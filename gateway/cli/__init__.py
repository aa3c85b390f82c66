"""The `crc-gateway` command line: one module per area, each adding its commands to `app`."""

from __future__ import annotations

# Importing a command module registers its commands.
from gateway.cli import clients, generate, imports, matcher, poll, server, worker  # noqa: F401
from gateway.cli.app import app
from gateway.cli.server import render_openapi

__all__ = ["app", "main", "render_openapi"]


def main() -> None:
    app()
