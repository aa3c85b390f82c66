"""The crc-gateway command line: migrate, clients, openapi."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.models import ApiClient
from gateway.services.clients import hash_key
from gateway.settings import get_settings

runner = CliRunner()


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_clients_create_prints_a_key_once_and_stores_only_its_hash(sqlite_env: str) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0

    result = runner.invoke(
        app, ["clients", "create", "--name", "north", "--role", "source", "--source", "crc-north"]
    )

    assert result.exit_code == 0, result.output
    key = re.search(r"API key \(shown once\): (\S+)", result.output)
    assert key is not None
    engine = create_engine(sqlite_env)
    with engine.connect() as connection:
        stored = connection.execute(select(ApiClient.key_hash, ApiClient.source)).one()
    engine.dispose()
    assert stored == (hash_key(key.group(1)), "crc-north")
    listing = runner.invoke(app, ["clients", "list"])
    assert "crc-north" in listing.output
    assert key.group(1) not in listing.output


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "x", "--role", "wizard"],
        ["--name", "x", "--role", "source"],
        ["--name", "x", "--role", "central", "--source", "crc-north"],
    ],
)
def test_clients_create_refuses_bad_input(sqlite_env: str, args: list[str]) -> None:
    runner.invoke(app, ["migrate"])

    result = runner.invoke(app, ["clients", "create", *args])

    assert result.exit_code == 2


def test_revoking_an_unknown_client_fails(sqlite_env: str) -> None:
    runner.invoke(app, ["migrate"])

    assert runner.invoke(app, ["clients", "revoke", "not-a-uuid"]).exit_code == 2


def test_openapi_check_fails_on_a_stale_file(tmp_path: Path, sqlite_env: str) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")

    assert runner.invoke(app, ["openapi", "--out", str(stale), "--check"]).exit_code == 1
    assert runner.invoke(app, ["openapi", "--out", str(stale)]).exit_code == 0
    assert runner.invoke(app, ["openapi", "--out", str(stale), "--check"]).exit_code == 0


def test_import_streams_a_file_and_a_second_run_changes_nothing(
    sqlite_env: str, tmp_path: Path
) -> None:
    import json

    from tests.builders import make_case_record

    file = tmp_path / "north.ndjson"
    file.write_text("".join(json.dumps(make_case_record()) + "\n" for _ in range(5)))
    runner.invoke(app, ["migrate"])

    first = runner.invoke(app, ["import", str(file), "--source", "crc-north"])
    second = runner.invoke(app, ["import", str(file), "--source", "crc-north"])

    assert first.exit_code == 0, first.output
    assert "5 records, 5 created" in first.output
    assert "5 records, 0 created, 0 updated, 5 unchanged" in second.output


def test_import_refuses_a_type_the_source_cannot_read(sqlite_env: str, tmp_path: Path) -> None:
    file = tmp_path / "north.csv"
    file.write_text("CRN\nX320741\n")
    runner.invoke(app, ["migrate"])

    result = runner.invoke(app, ["import", str(file), "--source", "crc-north"])

    assert result.exit_code == 2
    assert "text/csv" in result.output


def test_adapters_list_names_the_installed_adapters(sqlite_env: str) -> None:
    result = runner.invoke(app, ["adapters", "list"])

    assert result.exit_code == 0
    assert "canonical" in result.output
