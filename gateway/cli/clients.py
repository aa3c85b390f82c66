"""`crc-gateway clients ...`: API clients and their keys."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.app import app, database

clients_app = typer.Typer(help="Manage API clients and their keys.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")


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
    db = database()
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

    db = database()
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

    db = database()
    try:
        db.write(
            lambda session: clients.revoke(
                session, uuid.UUID(client_id), now=utcnow(), revoked_by=None
            )
        )
    except (GatewayError, ValueError):
        typer.echo("error: no active client with that id", err=True)
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    typer.echo("revoked")
