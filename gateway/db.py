"""Engines and transactions: SQLite (embedded default) and PostgreSQL behave the same to callers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from gateway.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL SQLSTATEs after which a whole transaction can safely be run again: serialization
# failure, deadlock, and a unique violation from a concurrent writer inserting the same key
# (rerun, the transaction finds that row and takes the update path).
_RETRYABLE_PG_CODES = frozenset({"40001", "40P01", "23505"})


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be opened; the message says where and why, never a value."""


def _json_dumps(value: Any) -> str:
    # Every stored record carries several JSON documents; orjson encodes them ~5x faster.
    return orjson.dumps(value).decode()


def build_engine(settings: Settings) -> Engine:
    """An engine for the URL, with SQLite made durable and safe for concurrent writers."""
    url = settings.database_url
    if settings.is_sqlite:
        path = settings.sqlite_path()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                why = "a file is in the way" if isinstance(error, FileExistsError) else None
                raise DatabaseUnavailable(
                    f"cannot create the folder of the SQLite database {path}: "
                    f"{why or error.strerror or type(error).__name__}"
                ) from error
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={
                "timeout": settings.database.sqlite_busy_timeout_ms / 1000,
                "check_same_thread": False,
            },
        )
        _configure_sqlite(engine, settings.database.sqlite_busy_timeout_ms)
        return engine
    return create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_pre_ping=True,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
    )


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # FULL: an acknowledged commit survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes the write lock up front: a deferred read-then-write upgrade can fail
        # with SQLITE_BUSY without ever waiting on the busy timeout.
        if connection.get_execution_options().get("gateway_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def _is_retryable(error: DBAPIError) -> bool:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code in _RETRYABLE_PG_CODES


class Database:
    """Owns the engine and hands out sessions; the only place transactions are committed."""

    def __init__(self, engine: Engine, *, write_attempts: int = 3) -> None:
        self.engine = engine
        self.write_attempts = write_attempts
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=engine.execution_options(gateway_write=True), expire_on_commit=False
        )
        self._commit_listeners: list[Callable[[], None]] = []

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` (from the committing thread) after a commit that published changes."""
        self._commit_listeners.append(listener)

    def remove_commit_listener(self, listener: Callable[[], None]) -> None:
        with suppress(ValueError):
            self._commit_listeners.remove(listener)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(build_engine(settings), write_attempts=settings.database.write_attempts)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read(self, work: Callable[[Session], T]) -> T:
        """Run read-only work in one transaction, ended without commit when the session closes.

        Closing (not rolling back) leaves loaded objects readable after the session is gone.
        """
        with self._read() as session:
            return work(session)

    def write(self, work: Callable[[Session], T]) -> T:
        """Run work in one write transaction and commit it; rerun it whole after a deadlock."""
        for attempt in range(1, self.write_attempts + 1):
            with self._write() as session:
                try:
                    result = work(session)
                    session.commit()
                    if session.info.pop("feed_published", False):
                        for listener in list(self._commit_listeners):
                            listener()
                    return result
                except DBAPIError as error:
                    session.rollback()
                    if attempt < self.write_attempts and _is_retryable(error):
                        log.warning("write transaction retried", extra={"attempt": attempt})
                        continue
                    raise
                except BaseException:
                    session.rollback()
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        self.engine.dispose()
