"""How a failed command is told to a person: one or two lines on stderr, never a traceback.

Every command runs inside `GatewayGroup.invoke`, which turns a known exception into what is wrong
and what to do, and anything else into a one-line report. Driver and exception messages can quote
the record that caused them (PostgreSQL's DETAIL and CONTEXT lines do), so they are shown only
for failures known not to carry data; `crc-gateway --debug` shows the full traceback instead.
"""

from __future__ import annotations

from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from typer.core import TyperGroup

from adapters.mapping.document import MappingFileError
from adapters.registry import AdapterLoadError
from gateway.db import DatabaseUnavailable
from gateway.errors import GatewayError, MalformedBody
from gateway.matching.model import ModelFileError

E = TypeVar("E", bound=BaseException)

DEBUG_KEY = "crc_gateway.debug"
DEBUG_HINT = "rerun with `crc-gateway --debug ...` for the full traceback"
# Typer reports usage errors with click's ClickException, which newer Typer versions vendor in a
# private module: reach it through BadParameter, which every version exports.
_USAGE_ERROR: type[Exception] = next(
    kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "ClickException"
)
# PostgreSQL's "undefined table"; SQLite says "no such table".
_UNDEFINED_TABLE = "SQLSTATE 42P01"


class CommandFailed(Exception):
    """A failure a command explains itself: what is wrong, and what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def lines(self) -> list[str]:
        return [f"error: {self.message}", *([f"  {self.hint}"] if self.hint else [])]


class GatewayGroup(TyperGroup):
    """The command group of `crc-gateway`: renders every failure of every command the same way."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, _USAGE_ERROR):
            # Exits, aborts and usage errors are already Typer's to show.
            raise
        except Exception as error:
            if ctx.meta.get(DEBUG_KEY):
                raise
            failure = explain(error)
            typer.echo("\n".join(failure.lines()), err=True)
            raise typer.Exit(failure.exit_code) from None


def explain(error: BaseException) -> CommandFailed:
    """What to tell a person about `error`: a known failure in its words, anything else by name."""
    if isinstance(error, CommandFailed):
        return error
    mapping = _cause(error, MappingFileError)
    if mapping is not None:
        # Its lines are file:line:col: message, already what the person needs; no prefix.
        return _Lines(str(mapping), exit_code=2)
    if isinstance(error, AdapterLoadError):
        return CommandFailed(
            str(error),
            hint="fix the source settings (GATEWAY_SOURCES, GATEWAY_SOURCES_FILE); "
            "`crc-gateway adapters list` shows what is installed",
            exit_code=2,
        )
    if isinstance(error, ModelFileError):
        return CommandFailed(
            str(error), hint="check GATEWAY_MATCHING__MODEL_FILE, or unset it", exit_code=2
        )
    if isinstance(error, ValidationError) and error.title == "Settings":
        return _settings_failure(error)
    if isinstance(error, DatabaseUnavailable):
        return CommandFailed(str(error), hint="check GATEWAY_DATABASE_URL", exit_code=2)
    if isinstance(error, DBAPIError):
        return _database_failure(error)
    if isinstance(error, (NoSuchModuleError, ArgumentError)):
        # Their messages repeat the URL, password and all.
        return CommandFailed(
            "GATEWAY_DATABASE_URL is not a database URL the gateway can use",
            hint="use sqlite:///path/to/gateway.db or postgresql://user@host:5432/database",
            exit_code=2,
        )
    if isinstance(error, MalformedBody):
        return CommandFailed(error.detail)
    if isinstance(error, GatewayError):
        return CommandFailed(error.detail, exit_code=2 if error.status < 500 else 1)
    if isinstance(error, SQLAlchemyError):
        return CommandFailed(f"database error ({type(error).__name__})", hint=DEBUG_HINT)
    if isinstance(error, OSError) and error.filename is not None:
        return CommandFailed(f"{error.filename}: {error.strerror or type(error).__name__}")
    return CommandFailed(
        f"unexpected {type(error).__name__} (a bug: please report it)", hint=DEBUG_HINT
    )


class _Lines(CommandFailed):
    """A failure whose message is complete lines of its own, printed as they are."""

    def lines(self) -> list[str]:
        return self.message.splitlines()


def _cause(error: BaseException, kind: type[E]) -> E | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__
    return None


def _settings_failure(error: ValidationError) -> CommandFailed:
    # The input is left out: a setting can be a secret (a database password, a token).
    problems = [
        f"GATEWAY_{'__'.join(str(part) for part in item['loc']).upper()}: {item['msg']}"
        for item in error.errors(include_url=False, include_input=False)
    ]
    return CommandFailed(
        "bad setting " + "; ".join(problems), hint="see Configuration in README.md", exit_code=2
    )


# SQLSTATE classes that mean the session never began: connection exception (08), invalid
# authorisation (28), and a database that does not exist (3D000).
_CONNECT_SQLSTATES = ("08", "28", "3D000")
# SQLite's codes for a file it cannot open as a database.
_CONNECT_SQLITE_ERRORS = frozenset({"SQLITE_CANTOPEN", "SQLITE_NOTADB", "SQLITE_PERM"})


def _never_connected(error: DBAPIError) -> bool:
    """A failure to connect, not one at COMMIT (which has no statement either)."""
    if error.statement is not None:
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_CONNECT_SQLSTATES)
    name = getattr(error.orig, "sqlite_errorname", None)
    if isinstance(name, str):
        return name in _CONNECT_SQLITE_ERRORS
    # A server that never answered (refused, unknown host) gives no code at all.
    return True


def _database_failure(error: DBAPIError) -> CommandFailed:
    where = _database_location()
    if _never_connected(error):
        # A failure to connect: the driver's first line names host, port, file or role, no data.
        reason = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
        return CommandFailed(
            f"cannot connect to the database {where}: {reason or type(error.orig).__name__}",
            hint="check GATEWAY_DATABASE_URL, and that the database server is running "
            "(or the SQLite file's folder is writable)",
            exit_code=2,
        )
    code = _error_code(error.orig) if error.orig is not None else None
    if code == _UNDEFINED_TABLE or str(error.orig).startswith("no such table"):
        return CommandFailed(
            f"the database {where} has no gateway tables",
            hint="run `crc-gateway migrate` first",
            exit_code=2,
        )
    kind = type(error.orig).__name__
    return CommandFailed(
        f"the database refused the work: {kind}" + (f" ({code})" if code else ""),
        hint="nothing of the failed transaction was stored; " + DEBUG_HINT,
    )


def _error_code(driver_error: Exception) -> str | None:
    sqlstate = getattr(driver_error, "sqlstate", None)
    if isinstance(sqlstate, str):
        return f"SQLSTATE {sqlstate}"
    name = getattr(driver_error, "sqlite_errorname", None)
    return name if isinstance(name, str) else None


def _database_location() -> str:
    from gateway.settings import get_settings

    try:
        url = make_url(get_settings().database_url)
    except (ValidationError, ArgumentError):
        return "(GATEWAY_DATABASE_URL)"
    return url.render_as_string(hide_password=True)
