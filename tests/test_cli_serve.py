"""`crc-gateway serve` refuses a taken port before it changes anything."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.db import Database
from gateway.settings import get_settings
from tests.test_cli_failures import assert_told

runner = CliRunner()


@pytest.fixture
def cli_env(database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def test_serving_on_a_taken_port_says_which_and_how_to_pick_another(cli_env: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])

        result = runner.invoke(app, ["serve", "--demo-key", "--port", str(port)])

    told = assert_told(result, exit_code=2, says=f"port {port} on 127.0.0.1 is already in use")
    assert f"--port {port + 1}" in told[1]
    assert f"make run PORT={port + 1}" in told[1]
    listing = runner.invoke(app, ["clients", "list"])
    assert "demo-admin" not in listing.output  # no key was issued for a server that never ran


def test_an_unknown_host_is_named(cli_env: str) -> None:
    result = runner.invoke(app, ["serve", "--host", "no-such-host.invalid", "--port", "0"])

    told = assert_told(result, exit_code=2, says="cannot listen on no-such-host.invalid")
    assert "--host" in told[1]
