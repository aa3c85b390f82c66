"""Migrations: a fresh database goes up, down and up again, and ends up matching the models.

Each test gets a database of its own (a new SQLite file, or a scratch PostgreSQL database next to
the run's one), so the session's migrated database is never touched.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from psycopg import sql
from sqlalchemy import Engine, insert, inspect, make_url, select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from gateway import cli, migrate
from gateway.db import Database
from gateway.models import Base, FeedHead, IdempotencyKey, utcnow
from gateway.settings import Settings, get_settings

MODEL_TABLES = frozenset(Base.metadata.tables)
VERSION_TABLE = "alembic_version"


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def scratch_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database on the run's engine: `<db>_scratch` on PostgreSQL, else a new file."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        yield f"sqlite:///{tmp_path_factory.mktemp('scratch') / 'gateway.db'}"
        return
    name = f"{url.database}_scratch"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    _drop_database(admin, name)  # left over from an interrupted run
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin, name)


@pytest.fixture
def scratch(scratch_url: str) -> Iterator[Database]:
    database = Database.from_settings(Settings(database_url=scratch_url))
    yield database
    database.dispose()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def feed_head_rows(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as connection:
        rows = connection.execute(select(FeedHead.id, FeedHead.seq)).all()
    return [(row.id, row.seq) for row in rows]


def schema_diffs(engine: Engine) -> list[object]:
    """What alembic autogenerate would still write to bring the database to the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return migrate.current_revision(connection)


def test_a_fresh_database_upgrades_downgrades_and_upgrades_again(scratch: Database) -> None:
    engine = scratch.engine
    assert table_names(engine) == set()
    head = migrate.head_revision()
    assert head is not None

    migrate.upgrade(engine)
    assert table_names(engine) == MODEL_TABLES | {VERSION_TABLE}
    assert revision(engine) == head
    assert feed_head_rows(engine) == [(1, 0)]

    migrate.downgrade(engine, "base")
    assert table_names(engine) == {VERSION_TABLE}
    assert revision(engine) is None

    migrate.upgrade(engine)
    assert table_names(engine) == MODEL_TABLES | {VERSION_TABLE}
    assert revision(engine) == head
    assert feed_head_rows(engine) == [(1, 0)]
    assert schema_diffs(engine) == []


def test_the_models_match_the_migrations(scratch: Database) -> None:
    migrate.upgrade(scratch.engine)

    assert schema_diffs(scratch.engine) == []


def test_the_comparison_would_notice_a_drift(scratch: Database) -> None:
    # Guards the test above: a schema that differs from the models must show up as diffs.
    migrate.upgrade(scratch.engine)
    with scratch.engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_persons_crn"))

    diffs = schema_diffs(scratch.engine)

    assert [(diff[0], diff[1].name) for diff in diffs] == [("add_index", "ix_persons_crn")]  # type: ignore[index]


def test_the_migrate_command_creates_a_wal_database_that_enforces_foreign_keys(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = tmp_path_factory.mktemp("cli") / "var" / "gateway.db"  # the folder does not exist yet
    url = f"sqlite:///{path}"
    runner = CliRunner()
    get_settings.cache_clear()
    try:
        first = runner.invoke(cli.app, ["migrate"], env={"GATEWAY_DATABASE_URL": url})
        again = runner.invoke(cli.app, ["migrate"], env={"GATEWAY_DATABASE_URL": url})
    finally:
        get_settings.cache_clear()

    head = migrate.head_revision()
    assert first.exit_code == 0, first.output
    assert f"database at {head}" in first.output
    assert again.exit_code == 0, again.output  # migrating an up-to-date database is a no-op
    assert path.is_file()
    with closing(sqlite3.connect(path)) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert plain.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
        assert plain.execute("SELECT id, seq FROM feed_head").fetchall() == [(1, 0)]
        # A plain connection does not check foreign keys; the gateway's must switch them on.
        assert plain.execute("PRAGMA foreign_keys").fetchone() == (0,)

    database = Database.from_settings(Settings(database_url=url))
    try:
        assert database.read(lambda s: s.execute(text("PRAGMA foreign_keys")).scalar_one()) == 1
        now = utcnow()
        orphan = insert(IdempotencyKey).values(
            client_id=uuid.uuid4(),  # no such client
            key="orphan",
            fingerprint="0" * 64,
            state="in_flight",
            created_at=now,
            locked_until=now,
            expires_at=now + timedelta(hours=24),
        )
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            database.write(lambda session: session.execute(orphan))
    finally:
        database.dispose()


@pytest.mark.slow
def test_an_installed_wheel_migrates_from_any_directory(
    repo_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`pip install crc-gateway` then `crc-gateway migrate` works with no checkout around."""
    wheels = tmp_path_factory.mktemp("wheels")
    target = tmp_path_factory.mktemp("installed")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(repo_root)], check=True)
    [wheel] = wheels.glob("crc_gateway-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)

    # -S keeps site-packages' .pth files (the checkout's editable install) out of the path; the
    # dependencies come from site-packages named explicitly, the gateway only from the wheel.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]]),
        "GATEWAY_DATABASE_URL": f"sqlite:///{elsewhere / 'var' / 'gateway.db'}",
    }
    env.pop("GATEWAY_TEST_DATABASE_URL", None)

    def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", "-c", code, *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    located = run("import gateway; print(gateway.__file__)")
    assert located.returncode == 0, located.stderr
    assert Path(located.stdout.strip()).is_relative_to(target)
    # /docs serves Swagger UI from the package too, not from a checkout or a CDN.
    assert (target / "gateway" / "api" / "static" / "swagger-ui" / "swagger-ui-bundle.js").is_file()

    migrated = run(
        "import sys; from gateway.cli import main; sys.argv[0] = 'crc-gateway'; main()", "migrate"
    )

    assert migrated.returncode == 0, migrated.stderr
    assert f"database at {migrate.head_revision()}" in migrated.stdout
    with closing(sqlite3.connect(elsewhere / "var" / "gateway.db")) as plain:
        assert plain.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (migrate.head_revision(),)
        ]
