"""Commands that set up and run the service: migrate, serve, openapi."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.app import app, database
from gateway.settings import get_settings

OPENAPI_PATH = Path("openapi/openapi.json")


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Create or upgrade the database schema."""
    from gateway import migrate as migrations

    db = database()
    try:
        migrations.upgrade(db.engine, revision)
        typer.echo(f"database at {migrations.head_revision() if revision == 'head' else revision}")
    finally:
        db.dispose()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    demo_key: Annotated[
        bool, typer.Option("--demo-key", help="Issue a fresh demo admin key and print it.")
    ] = False,
) -> None:
    """Serve the HTTP API with uvicorn."""
    from gateway.logs import configure_logging
    from gateway.serving import build_server

    settings = get_settings()
    base = f"http://{host}:{port}"
    if demo_key:
        key = _rotate_demo_key()
        typer.echo(
            "\n".join(
                [
                    "",
                    f"crc-gateway is starting on {base}",
                    f"  API docs     {base}/docs",
                    f"  Status       {base}/v1/status",
                    f"  Change feed  {base}/v1/changes",
                    f"  Metrics      {base}/metrics",
                    "",
                    "  Demo admin key (shown once; a new one is issued at every start):",
                    f"    {key}",
                    "",
                    f"  Try: curl -H 'Authorization: Bearer {key}' {base}/v1/status",
                    "",
                ]
            )
        )
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    build_server(settings, host=host, port=port).run()


def _rotate_demo_key() -> str:
    from gateway.models import utcnow
    from gateway.services import clients
    from gateway.services.clients import Role

    db = database()
    try:
        _, key = db.write(
            lambda session: clients.rotate_named(
                session, name="demo-admin", role=Role.ADMIN, source=None, now=utcnow()
            )
        )
        return key
    finally:
        db.dispose()


@app.command()
def openapi(
    out: Annotated[Path, typer.Option(help="Where to write the document.")] = OPENAPI_PATH,
    check: Annotated[bool, typer.Option(help="Exit 1 if the file differs.")] = False,
) -> None:
    """Export the OpenAPI document (or check the committed one is current)."""
    from gateway.main import create_app

    document = render_openapi(create_app())
    if check:
        if not out.exists() or out.read_text() != document:
            typer.echo(f"{out} is stale: run `crc-gateway openapi`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out} is current")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document)
    typer.echo(f"wrote {out}")


def render_openapi(application: object) -> str:
    document = application.openapi()  # type: ignore[attr-defined]
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
