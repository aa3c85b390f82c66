"""The queries a growing table makes slow, checked against the database's own plan."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from gateway.db import Database
from gateway.repositories import source_records as source_records_repo


def _plan(db: Database, run: Any) -> str:
    """The plan the database makes for the last statement `run` executes."""
    captured: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        _connection, _cursor, statement, parameters, _context, _many = args
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        db.read(run)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    statement, parameters = captured[-1]
    with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        else:
            # On a near-empty table a sequential scan is cheapest; what matters is the index
            # the planner would use once the table is large.
            connection.exec_driver_sql("SET enable_seqscan = off")
            rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return "\n".join(" ".join(str(part) for part in row) for row in rows)


def test_a_page_of_warned_records_reads_the_warned_records_index(db: Database) -> None:
    plan = _plan(
        db,
        lambda session: source_records_repo.page_for_source(
            session, "crc-north", external_id=None, after="N-100", limit=50, warned_only=True
        ),
    )
    assert "ix_source_records_warned" in plan
