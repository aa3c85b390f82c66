"""The `crc-gateway` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.db import Database
from gateway.settings import get_settings

app = typer.Typer(help="crc-gateway: probation case data gateway.", no_args_is_help=True)
clients_app = typer.Typer(help="Manage API clients and their keys.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")

OPENAPI_PATH = Path("openapi/openapi.json")


def _database() -> Database:
    return Database.from_settings(get_settings())


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Create or upgrade the database schema."""
    from gateway import migrate as migrations

    db = _database()
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
    import uvicorn

    from gateway.logs import configure_logging

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
    uvicorn.run(
        "gateway.main:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


def _rotate_demo_key() -> str:
    from gateway.models import utcnow
    from gateway.services import clients
    from gateway.services.clients import Role

    db = _database()
    try:
        _, key = db.write(
            lambda session: clients.rotate_named(
                session, name="demo-admin", role=Role.ADMIN, source=None, now=utcnow()
            )
        )
        return key
    finally:
        db.dispose()


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="Who the client is, e.g. 'crc-north case system'.")],
    role: Annotated[str, typer.Option(help="source, central, operator or admin.")],
    source: Annotated[str | None, typer.Option(help="The source a source client writes.")] = None,
) -> None:
    """Create a client and print its API key (shown once; stored only as a hash)."""
    from gateway.errors import GatewayError
    from gateway.models import utcnow
    from gateway.services import clients
    from gateway.services.clients import Role

    try:
        parsed_role = Role(role)
    except ValueError:
        typer.echo(f"role must be one of: {', '.join(r.value for r in Role)}", err=True)
        raise typer.Exit(2) from None
    db = _database()
    try:
        client, key = db.write(
            lambda session: clients.create(
                session, name=name, role=parsed_role, source=source, now=utcnow()
            )
        )
    except GatewayError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    typer.echo(f"client {client.id} ({client.role}{'/' + client.source if client.source else ''})")
    typer.echo(f"API key (shown once): {key}")


@clients_app.command("list")
def clients_list() -> None:
    """List clients (never their keys)."""
    from gateway.services import clients

    db = _database()
    try:
        rows = db.read(clients.list_clients)
    finally:
        db.dispose()
    for client in rows:
        state = f"revoked {client.revoked_at:%Y-%m-%d}" if client.revoked_at else "active"
        typer.echo(
            f"{client.id}  {client.role:<8} {client.source or '-':<20} "
            f"{client.key_prefix}  {state}  {client.name}"
        )


@clients_app.command("revoke")
def clients_revoke(client_id: str) -> None:
    """Revoke a client's key."""
    import uuid

    from gateway.errors import GatewayError
    from gateway.models import utcnow
    from gateway.services import clients

    db = _database()
    try:
        db.write(lambda session: clients.revoke(session, uuid.UUID(client_id), now=utcnow()))
    except (GatewayError, ValueError):
        typer.echo("error: no active client with that id", err=True)
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    typer.echo("revoked")


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


def main() -> None:
    app()
