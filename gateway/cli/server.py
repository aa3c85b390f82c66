"""Commands that set up and run the service: migrate, serve, openapi."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.cli.app import app, configured_matcher, configured_sources, database
from gateway.cli.failures import CommandFailed
from gateway.settings import get_settings

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

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
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 8000,
    demo_key: Annotated[
        bool,
        typer.Option(
            "--demo-key",
            help="Issue a fresh demo admin key and print it, once the server has started.",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API with uvicorn.

    The port is taken and the settings checked before anything else, so a second server on a
    taken port, or one that cannot start, changes nothing (the running server's demo key stays).
    """
    from gateway.logs import configure_logging
    from gateway.main import create_app
    from gateway.serving import build_server

    settings = get_settings()
    listener = _listen(host, port)
    try:
        # Sources and matcher first: their errors are the person's to fix, shown as such.
        configured_sources(settings)
        configured_matcher(settings)
        application = create_app(settings)
        base = f"http://{_url_host(host)}:{listener.getsockname()[1]}"
        server = build_server(settings, application, host=host, port=listener.getsockname()[1])
        failed: list[BaseException] = []
        if demo_key:
            _issue_demo_key_on_start(application, base, server, failed)
        else:
            typer.echo(f"crc-gateway is starting on {base}", err=True)
        configure_logging(fmt=settings.log_format, level=settings.log_level)
        try:
            server.run(sockets=[listener])
        except SystemExit:
            # uvicorn exits this way when the application's start-up fails; it has logged why.
            if server.started:
                raise
    finally:
        listener.close()
    if failed:
        raise failed[0]
    if not server.started:
        raise CommandFailed(
            "the server did not start (the log above says why); nothing was changed",
        )


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or CommandFailed saying why not and what to do."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        raise CommandFailed(
            f"cannot listen on {host}: not a host name or address", hint=_PICK_HOST, exit_code=2
        ) from None
    listener = socket.socket(family, kind, protocol)
    try:
        # As uvicorn does: a restart may rebind while old connections linger in TIME_WAIT;
        # it still cannot bind a port another process listens on.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise CommandFailed(
                f"port {port} on {host} is already in use (is crc-gateway already running?)",
                hint=_pick_port(port),
                exit_code=2,
            ) from None
        if error.errno == errno.EACCES:
            raise CommandFailed(
                f"not allowed to listen on port {port}", hint=_pick_port(port), exit_code=2
            ) from None
        raise CommandFailed(
            f"cannot listen on {host} port {port}: {error.strerror}", hint=_PICK_HOST, exit_code=2
        ) from None
    listener.set_inheritable(True)
    return listener


def _pick_port(port: int) -> str:
    other = port + 1 if 0 < port < 65535 else 8001
    return f"pick another with --port {other} (under make run: make run PORT={other})"


_PICK_HOST = "pick another with --host (under make run: make run HOST=...)"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _issue_demo_key_on_start(
    application: FastAPI, base: str, server: uvicorn.Server, failed: list[BaseException]
) -> None:
    """Rotate and print the demo key once the application has started, before it serves.

    Rotating revokes the running server's key, so it waits until nothing is left to fail; a
    rotation that fails stops the server and is reported as the command's failure.
    """
    started = application.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with started(app) as state:
            try:
                key = await asyncio.to_thread(_rotate_demo_key)
            except Exception as error:
                failed.append(error)
                server.should_exit = True
            else:
                typer.echo(_demo_banner(base, key))
            yield state

    application.router.lifespan_context = lifespan


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


def _demo_banner(base: str, key: str) -> str:
    return "\n".join(
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
