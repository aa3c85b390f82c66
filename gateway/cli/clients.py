"""`crc-gateway clients ...`: API clients and their keys."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from gateway.cli.app import app, database
from gateway.cli.failures import CommandFailed

clients_app = typer.Typer(help="Manage API clients and their keys.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="Who the client is, e.g. 'crc-north case system'.")],
    role: Annotated[str, typer.Option(help="source, central, operator or admin.")],
    source: Annotated[str | None, typer.Option(help="The source a source client writes.")] = None,
) -> None:
    """Create a client and print its API key (shown once; stored only as a hash)."""
    from gateway.models import utcnow
    from gateway.services import clients
    from gateway.services.clients import Role

    try:
        parsed_role = Role(role)
    except ValueError:
        raise CommandFailed(
            f"role must be one of: {', '.join(r.value for r in Role)}", exit_code=2
        ) from None
    db = database()
    try:
        client, key = db.write(
            lambda session: clients.create(
                session, name=name, role=parsed_role, source=source, now=utcnow()
            )
        )
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
def clients_revoke(
    client_id: str,
    allow_last_admin: Annotated[
        bool,
        typer.Option(
            "--allow-last-admin",
            help="Revoke even the last active admin key (then only this command can make another).",
        ),
    ] = False,
) -> None:
    """Revoke a client's key. The last active admin key needs --allow-last-admin."""
    from sqlalchemy.orm import Session

    from gateway.models import utcnow
    from gateway.services import clients

    try:
        parsed_id = uuid.UUID(client_id)
    except ValueError:
        raise CommandFailed(
            "not a client id: give the id `crc-gateway clients list` shows", exit_code=2
        ) from None

    def revoke(session: Session) -> None:
        # The service checks in the revoking transaction, with the admin rows locked.
        try:
            clients.revoke(session, parsed_id, now=utcnow(), allow_lockout=allow_last_admin)
        except clients.AdminLockout:
            raise CommandFailed(
                "this is the last active admin key: without it nobody can manage clients "
                "over the API",
                hint="create another admin first (`crc-gateway clients create --role admin`), "
                "or pass --allow-last-admin",
                exit_code=2,
            ) from None

    db = database()
    try:
        db.write(revoke)
    finally:
        db.dispose()
    typer.echo("revoked")
