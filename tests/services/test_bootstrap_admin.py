"""The deployer's first admin key, read from GATEWAY_BOOTSTRAP_ADMIN_KEY_FILE at start-up."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from gateway.db import Database
from gateway.main import create_app
from gateway.models import ApiClient, utcnow
from gateway.services import clients
from gateway.services.clients import BootstrapKeyError, Role
from gateway.settings import Settings, WebhookSettings
from tests.conftest import KeyMaker

pytestmark = pytest.mark.anyio


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "admin-key"


def app_with_key_file(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database, key_file: Path
) -> FastAPI:
    # Through the environment, as a container sets it.
    monkeypatch.setenv("GATEWAY_BOOTSTRAP_ADMIN_KEY_FILE", str(key_file))
    settings = Settings(
        database_url=database_url,
        log_format="text",
        webhooks=WebhookSettings(worker_enabled=False),
    )
    return create_app(settings, db=db)


def put(path: Path, content: str) -> None:
    path.write_text(content)


async def start(app: FastAPI) -> None:
    async with app.router.lifespan_context(app):
        pass


def all_clients(db: Database) -> list[ApiClient]:
    return list(db.read(lambda session: session.scalars(select(ApiClient)).all()))


async def test_with_no_admin_the_key_in_the_file_becomes_an_admin_stored_hashed(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    db: Database,
    key_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key, _ = clients.generate_key()
    put(key_file, key + "\n")  # secrets are often written with a trailing newline
    caplog.set_level(logging.DEBUG)

    await start(app_with_key_file(monkeypatch, database_url, db, key_file))

    principal = db.read(lambda session: clients.authenticate(session, key))
    assert principal is not None
    assert principal.role is Role.ADMIN
    [stored] = all_clients(db)
    assert stored.name == clients.BOOTSTRAP_ADMIN_NAME
    assert stored.key_hash == clients.hash_key(key)
    assert key not in repr(vars(stored))
    assert key.split("_")[2] not in caplog.text
    assert "admin client created from the bootstrap key file" in caplog.text


async def test_a_restart_with_the_same_file_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database, key_file: Path
) -> None:
    put(key_file, clients.generate_key()[0])

    await start(app_with_key_file(monkeypatch, database_url, db, key_file))
    first = all_clients(db)
    await start(app_with_key_file(monkeypatch, database_url, db, key_file))

    assert [client.id for client in all_clients(db)] == [client.id for client in first]


async def test_an_active_admin_means_the_file_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    db: Database,
    key_file: Path,
    make_key: KeyMaker,
) -> None:
    make_key(Role.ADMIN, name="existing admin")
    make_key(Role.OPERATOR)
    key, _ = clients.generate_key()
    put(key_file, key)

    await start(app_with_key_file(monkeypatch, database_url, db, key_file))

    assert db.read(lambda session: clients.authenticate(session, key)) is None
    assert sorted(client.name for client in all_clients(db)) == ["existing admin", "test client"]


async def test_a_revoked_admin_does_not_count_as_an_admin(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    db: Database,
    key_file: Path,
    make_key: KeyMaker,
) -> None:
    old_key = make_key(Role.ADMIN, name="former admin")
    old = db.read(lambda session: clients.authenticate(session, old_key))
    assert old is not None
    db.write(
        lambda session: clients.revoke(session, old.client_id, now=utcnow(), allow_lockout=True)
    )
    key, _ = clients.generate_key()
    put(key_file, key)

    await start(app_with_key_file(monkeypatch, database_url, db, key_file))

    principal = db.read(lambda session: clients.authenticate(session, key))
    assert principal is not None
    assert principal.role is Role.ADMIN


async def test_a_revoked_bootstrap_key_is_never_revived(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database, key_file: Path
) -> None:
    key, _ = clients.generate_key()
    put(key_file, key)
    await start(app_with_key_file(monkeypatch, database_url, db, key_file))
    principal = db.read(lambda session: clients.authenticate(session, key))
    assert principal is not None
    db.write(
        lambda session: clients.revoke(
            session, principal.client_id, now=utcnow(), allow_lockout=True
        )
    )

    with pytest.raises(BootstrapKeyError, match="revoked") as refused:
        await start(app_with_key_file(monkeypatch, database_url, db, key_file))

    assert key not in str(refused.value)
    assert db.read(lambda session: clients.authenticate(session, key)) is None


GOOD = clients.generate_key()[0]
BAD_FILES = {
    "empty": ("", "does not hold a gateway API key"),
    "a password": ("correct horse battery staple", "does not hold a gateway API key"),
    "no gateway prefix": ("sk_" + GOOD, "does not hold a gateway API key"),
    "upper-case hex": (GOOD.replace(GOOD[6:14], "ABCDEF12"), "does not hold a gateway API key"),
    "too short": (GOOD[:-10], "too short"),
    "too long": (GOOD + "x" * 200, "does not hold a gateway API key"),
    "two keys": (GOOD + "\n" + GOOD, "does not hold a gateway API key"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_key_file_without_a_strong_gateway_key_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database, key_file: Path, case: str
) -> None:
    content, message = BAD_FILES[case]
    key_file.write_text(content)

    with pytest.raises(BootstrapKeyError, match=message) as refused:
        app_with_key_file(monkeypatch, database_url, db, key_file)

    assert "GATEWAY_BOOTSTRAP_ADMIN_KEY_FILE" in str(refused.value)
    if content:
        assert content.splitlines()[0] not in str(refused.value)
    assert all_clients(db) == []


def test_a_missing_key_file_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database, key_file: Path
) -> None:
    with pytest.raises(BootstrapKeyError, match="cannot read"):
        app_with_key_file(monkeypatch, database_url, db, key_file)


def test_a_key_file_that_is_not_text_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database, key_file: Path
) -> None:
    key_file.write_bytes(b"\xff\xfe" + GOOD.encode())

    with pytest.raises(BootstrapKeyError, match="not UTF-8 text"):
        app_with_key_file(monkeypatch, database_url, db, key_file)
