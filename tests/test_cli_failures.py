"""CLI failures a person can act on: one `error:` line and a hint, no traceback, no record value.

The commands run against the suite's database (SQLite or PostgreSQL), or one set up to fail.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner, Result

from gateway.cli import app
from gateway.cli.failures import explain
from gateway.db import Database
from gateway.settings import Settings, get_settings
from tests.builders import make_case_record

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
REST_SAMPLES = REPO / "adapters" / "rest_json" / "samples"


@pytest.fixture
def cli_env(database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CLI pointed at the suite's migrated database; tables are emptied after the test."""
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.delenv("GATEWAY_SOURCES_FILE", raising=False)
    monkeypatch.delenv("GATEWAY_SOURCES", raising=False)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_told(result: Result, *, exit_code: int, says: str) -> list[str]:
    """The command failed with one `error:` line saying `says` and at most one hint after it."""
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    told = lines[errors[0] :]
    assert len(told) <= 2, result.output
    assert says in told[0], result.output
    return told


# --- unreachable database ------------------------------------------------------------------


def test_a_postgresql_server_that_is_not_there_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"postgresql://gateway:canary-password@127.0.0.1:{closed_port()}/gateway"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    get_settings.cache_clear()

    result = runner.invoke(app, ["clients", "list"])

    told = assert_told(result, exit_code=2, says="cannot connect to the database")
    assert "127.0.0.1" in told[0]
    assert "GATEWAY_DATABASE_URL" in told[1]
    assert "canary-password" not in result.output
    get_settings.cache_clear()


@pytest.mark.parametrize("where", ["under-a-file", "unopenable"])
def test_a_sqlite_file_that_cannot_be_made_is_named(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_the_way = tmp_path / "not-a-folder"
    in_the_way.write_text("")
    # A folder where the database file should be: SQLite cannot open it, even as root.
    (tmp_path / "a-folder.db").mkdir()
    path = in_the_way / "gateway.db" if where == "under-a-file" else tmp_path / "a-folder.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{path}")
    get_settings.cache_clear()

    result = runner.invoke(app, ["migrate"])

    told = assert_told(result, exit_code=2, says="database")
    assert str(path) in told[0]
    assert "GATEWAY_DATABASE_URL" in told[1]
    get_settings.cache_clear()


def test_a_database_without_the_schema_says_to_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    get_settings.cache_clear()

    result = runner.invoke(app, ["clients", "list"])

    told = assert_told(result, exit_code=2, says="has no gateway tables")
    assert "crc-gateway migrate" in told[1]
    get_settings.cache_clear()


def test_debug_shows_the_traceback_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    get_settings.cache_clear()

    result = runner.invoke(app, ["--debug", "clients", "list"])

    assert result.exit_code != 0
    assert result.exception is not None
    assert not isinstance(result.exception, SystemExit)
    get_settings.cache_clear()


# --- postgres:// URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u@db:5432/gw", "postgresql+psycopg://u@db:5432/gw"),
        ("postgresql://u:p@db/gw", "postgresql+psycopg://u:p@db/gw"),
        ("POSTGRES://u@db/gw", "postgresql+psycopg://u@db/gw"),
        ("postgresql+psycopg://u@db/gw", "postgresql+psycopg://u@db/gw"),
        ("sqlite:///./var/gateway.db", "sqlite:///./var/gateway.db"),
    ],
)
def test_postgres_urls_use_the_installed_driver(given: str, used: str) -> None:
    assert Settings(database_url=given).database_url == used


@pytest.mark.postgres_only
def test_the_cli_accepts_a_postgres_url(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = make_url(cli_env).set(drivername="postgres").render_as_string(hide_password=False)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    get_settings.cache_clear()

    result = runner.invoke(app, ["clients", "create", "--name", "ops", "--role", "operator"])

    assert result.exit_code == 0, result.output
    assert "API key (shown once)" in result.output


# --- sources file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"\xff\xfe not text", "cannot be read"),
        (b"sources:\n  crc-a: [\n", "bad.yaml:3:1"),
        (b"sources:\n  crc-a: {adapter: canonical, colour: blue}\n", "sources.crc-a.colour"),
    ],
)
@pytest.mark.parametrize("command", [["adapters", "list"], ["import", "{file}", "--source", "a"]])
def test_a_bad_sources_file_is_named(
    content: bytes | None,
    says: str,
    command: list[str],
    cli_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sources = tmp_path / "bad.yaml"
    if content is not None:
        sources.write_bytes(content)
    records = tmp_path / "records.ndjson"
    records.write_text(json.dumps(make_case_record()) + "\n")
    monkeypatch.setenv("GATEWAY_SOURCES_FILE", str(sources))
    get_settings.cache_clear()

    result = runner.invoke(app, [part.format(file=records) for part in command])

    told = assert_told(result, exit_code=2, says=says)
    assert str(sources) in told[0]
    assert "blue" not in result.output


def test_a_sources_file_that_is_a_folder_cannot_be_read(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_SOURCES_FILE", str(tmp_path))
    get_settings.cache_clear()

    result = runner.invoke(app, ["adapters", "list"])

    assert_told(result, exit_code=2, says="cannot be read")


def test_a_broken_mapping_file_is_shown_as_its_file_line_and_column_alone(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = REPO / "adapters" / "mapping" / "examples"
    mapping = tmp_path / "merlin.yaml"
    shutil.copy(examples / "merlin.yaml", mapping)
    lines = mapping.read_text().splitlines(keepends=True)
    typo = next(i for i, line in enumerate(lines) if "upper: true" in line)
    lines[typo] = lines[typo].replace("upper: true", "uppercase: true", 1)
    mapping.write_text("".join(lines))
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        f"sources:\n  crc-merlin:\n    adapter: mapping\n    config: {{file: {mapping}}}\n"
    )
    monkeypatch.setenv("GATEWAY_SOURCES_FILE", str(sources))
    get_settings.cache_clear()

    result = runner.invoke(app, ["adapters", "list"])

    assert result.exit_code == 2, result.output
    column = lines[typo].index("uppercase") + 1
    assert result.output.strip() == (
        f"{mapping}:{typo + 1}:{column}: unknown transform 'uppercase' (did you mean 'upper'?)"
    )


# --- imports -------------------------------------------------------------------------------


def test_a_generated_rest_json_file_is_read_as_pages_by_its_source(
    cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_SOURCES", json.dumps({"crc-rest": {"adapter": "rest_json"}}))
    get_settings.cache_clear()

    result = runner.invoke(
        app, ["import", str(REST_SAMPLES / "cases-pages.jsonl"), "--source", "crc-rest"]
    )

    assert result.exit_code == 0, result.output
    assert "read as application/vnd.crc-rest-json+jsonl by adapter rest_json" in result.output
    assert "4 records, 4 created" in result.output


def test_an_import_that_rejects_every_record_fails_and_names_the_type_assumed(
    cli_env: str,
) -> None:
    result = runner.invoke(
        app, ["import", str(REST_SAMPLES / "cases-pages.jsonl"), "--source", "crc-rest"]
    )

    told = assert_told(result, exit_code=1, says="every record was rejected")
    assert "application/x-ndjson by adapter canonical" in told[0]
    assert "crc-rest has no adapter configured" in told[1]


def test_a_file_the_assumed_type_cannot_read_fails_and_names_the_type(cli_env: str) -> None:
    result = runner.invoke(
        app, ["import", str(REST_SAMPLES / "cases-page-1.json"), "--source", "crc-rest"]
    )

    assert_told(result, exit_code=1, says='body must be a JSON object {"records": [...]}')
    assert "read as application/json by adapter canonical" in result.output


def test_with_its_adapter_configured_a_wrong_type_is_named_with_the_types_it_reads(
    cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_SOURCES", json.dumps({"crc-rest": {"adapter": "rest_json"}}))
    get_settings.cache_clear()
    pages = str(REST_SAMPLES / "cases-pages.jsonl")

    result = runner.invoke(
        app, ["import", pages, "--source", "crc-rest", "--content-type", "application/x-ndjson"]
    )

    told = assert_told(result, exit_code=1, says="every record was rejected")
    assert "application/vnd.crc-rest-json+jsonl" in told[1]


def _refuse_chunks(db: Database) -> None:
    """Make the database refuse every import chunk, quoting the stored records as drivers do."""
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_chunk() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN RAISE EXCEPTION 'refused %', "
                    "(SELECT string_agg(external_id, ',') FROM source_records) "
                    "USING DETAIL = (SELECT string_agg(external_id, ',') FROM source_records); "
                    "END $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_chunk BEFORE UPDATE ON imports FOR EACH ROW "
                    "WHEN (NEW.records_done > OLD.records_done) EXECUTE FUNCTION refuse_chunk()"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_chunk BEFORE UPDATE ON imports "
                    "WHEN NEW.records_done > OLD.records_done "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )


def _allow_chunks(db: Database) -> None:
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            connection.execute(text("DROP TRIGGER refuse_chunk ON imports"))
            connection.execute(text("DROP FUNCTION refuse_chunk()"))
        else:
            connection.execute(text("DROP TRIGGER refuse_chunk"))


def test_a_database_error_in_an_import_is_one_line_without_the_driver_detail(
    cli_env: str, db: Database, tmp_path: Path
) -> None:
    record = make_case_record()
    record["provenance"]["external_id"] = "CANARY-EXT-5521"
    file = tmp_path / "north.ndjson"
    file.write_text(json.dumps(record) + "\n")
    _refuse_chunks(db)
    try:
        result = runner.invoke(app, ["import", str(file), "--source", "crc-north"])
    finally:
        _allow_chunks(db)

    told = assert_told(result, exit_code=1, says="the database refused the work")
    code = "SQLSTATE P0001" if db.dialect == "postgresql" else "SQLITE_CONSTRAINT_TRIGGER"
    assert code in told[0]
    assert "--debug" in told[1]
    for leak in ("CANARY-EXT-5521", record["person"]["surname"], "CONTEXT", "DETAIL", "[SQL"):
        assert leak not in result.output


# --- clients revoke: no lock-out by accident ------------------------------------------------


def _create(role: str) -> str:
    result = runner.invoke(app, ["clients", "create", "--name", f"{role} one", "--role", role])
    assert result.exit_code == 0, result.output
    return result.output.split()[1]


def _state(client_id: str) -> str:
    listing = runner.invoke(app, ["clients", "list"]).output
    line = next(line for line in listing.splitlines() if line.startswith(client_id))
    return "active" if "  active  " in line else "revoked"


def test_the_last_active_admin_key_is_revoked_only_with_the_flag(cli_env: str) -> None:
    admin = _create("admin")

    refused = runner.invoke(app, ["clients", "revoke", admin])

    told = assert_told(refused, exit_code=2, says="last active admin key")
    assert "--allow-last-admin" in told[1]
    assert _state(admin) == "active"
    allowed = runner.invoke(app, ["clients", "revoke", admin, "--allow-last-admin"])
    assert allowed.exit_code == 0, allowed.output
    assert _state(admin) == "revoked"


def test_an_admin_key_with_another_admin_left_and_other_keys_revoke_plainly(
    cli_env: str,
) -> None:
    first, second, operator = _create("admin"), _create("admin"), _create("operator")

    for client in (first, operator):
        result = runner.invoke(app, ["clients", "revoke", client])
        assert result.exit_code == 0, result.output
        assert _state(client) == "revoked"
    assert runner.invoke(app, ["clients", "revoke", second]).exit_code == 2
    assert _state(second) == "active"


def test_revoking_something_that_is_not_a_client_id_says_so(cli_env: str) -> None:
    result = runner.invoke(app, ["clients", "revoke", "not-a-uuid"])

    assert_told(result, exit_code=2, says="not a client id")


@pytest.mark.postgres_only
def test_a_postgresql_database_that_does_not_exist_is_a_failure_to_connect(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_url(database_url).set(database="crc_gateway_no_such_database")
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url.render_as_string(hide_password=False))
    get_settings.cache_clear()

    result = runner.invoke(app, ["clients", "list"])

    told = assert_told(result, exit_code=2, says="cannot connect to the database")
    assert "crc_gateway_no_such_database" in told[0]
    get_settings.cache_clear()


class _SerializationFailure(Exception):
    sqlstate = "40001"


def test_a_failure_at_commit_is_not_called_a_failure_to_connect() -> None:
    # A serialisation failure or a deferred constraint reports at COMMIT, with no statement.
    error = DBAPIError(None, None, _SerializationFailure("could not serialize access"))

    failure = explain(error)

    assert "cannot connect" not in failure.message
    assert "refused the work" in failure.message
    assert "SQLSTATE 40001" in failure.message


@pytest.mark.parametrize("name", ["crc\x1b[2Knorth", "line\nbreak", "   ", "x" * 101])
def test_a_client_name_no_one_could_read_is_refused_by_the_cli_too(cli_env: str, name: str) -> None:
    result = runner.invoke(app, ["clients", "create", "--name", name, "--role", "operator"])

    assert_told(result, exit_code=2, says="a client name is 1-100 characters")
    listing = runner.invoke(app, ["clients", "list"]).output
    assert "operator" not in listing
