"""Data-quality warnings held on source records: counts and warned records per source."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from gateway.models import SourceRecord

# Warnings live in a JSON array on each record; unnesting it is the one dialect-specific part.
_COUNTS_SQLITE = text(
    "SELECT json_extract(w.value, '$.path') AS path, json_extract(w.value, '$.rule') AS rule, "
    "COUNT(*) AS records FROM source_records AS r, json_each(r.warnings) AS w "
    "WHERE r.source = :source AND r.warning_count > 0 GROUP BY 1, 2 ORDER BY 1, 2"
)
_COUNTS_POSTGRESQL = text(
    "SELECT w.value ->> 'path' AS path, w.value ->> 'rule' AS rule, COUNT(*) AS records "
    "FROM source_records AS r CROSS JOIN LATERAL jsonb_array_elements(r.warnings) AS w(value) "
    "WHERE r.source = :source AND r.warning_count > 0 GROUP BY 1, 2 ORDER BY 1, 2"
)


@dataclass(frozen=True)
class RecordTotals:
    records: int
    warned: int


def warning_counts(session: Session, *, source: str) -> list[tuple[str, str, int]]:
    """(path, rule, records) for each kind of warning a source's current records carry."""
    statement = (
        _COUNTS_POSTGRESQL if session.get_bind().dialect.name == "postgresql" else _COUNTS_SQLITE
    )
    return [
        (str(path), str(rule), int(records))
        for path, rule, records in session.execute(statement, {"source": source})
    ]


def record_totals(session: Session, *, source: str) -> RecordTotals:
    records, warned = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((SourceRecord.warning_count > 0, 1), else_=0)), 0),
        ).where(SourceRecord.source == source)
    ).one()
    return RecordTotals(records=int(records), warned=int(warned))
