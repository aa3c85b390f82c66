"""One database per run, migrated with alembic; every test starts from empty tables.

SQLite by default (a real file); PostgreSQL when GATEWAY_TEST_DATABASE_URL is set. API handlers
run in worker threads and concurrency tests need connections of their own, so tests cannot share
one rolled-back connection: instead every table is emptied after each test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, make_url, text, update

from gateway import migrate
from gateway.db import Database
from gateway.main import create_app
from gateway.models import Base, FeedHead, utcnow
from gateway.services import clients
from gateway.services.clients import Role
from gateway.settings import Settings

TEST_DATABASE_URL_ENV = "GATEWAY_TEST_DATABASE_URL"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(TEST_DATABASE_URL_ENV, "").startswith("postgresql"):
        return
    skip = pytest.mark.skip(reason=f"needs PostgreSQL: set {TEST_DATABASE_URL_ENV}")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get(TEST_DATABASE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'gateway.db'}"


def reset_postgres_schema(url: str) -> None:
    """Drop everything in the test database so the run starts from an empty schema."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> Iterator[Database]:
    if make_url(database_url).get_backend_name() == "postgresql":
        reset_postgres_schema(database_url)
    database = Database.from_settings(Settings(database_url=database_url))
    migrate.upgrade(database.engine)
    yield database
    database.dispose()


def empty_all_tables(database: Database) -> None:
    with database.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != FeedHead.__tablename__:
                connection.execute(delete(table))
        connection.execute(update(FeedHead).values(seq=0, purged_through=0))


@pytest.fixture
def db(migrated_database: Database) -> Iterator[Database]:
    yield migrated_database
    empty_all_tables(migrated_database)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_format="text")


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, db=db)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http


KeyMaker = Callable[..., str]


@pytest.fixture
def make_key(db: Database) -> KeyMaker:
    """Create an API client and return its key: make_key(Role.SOURCE, source="crc-north")."""

    def make(role: Role, *, source: str | None = None, name: str = "test client") -> str:
        _, key = db.write(
            lambda session: clients.create(
                session, name=name, role=role, source=source, now=utcnow()
            )
        )
        return key

    return make


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_database(
    database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    """The suite's database, as the command line finds it through GATEWAY_DATABASE_URL."""
    from gateway.settings import get_settings

    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()
