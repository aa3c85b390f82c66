"""Source records, their versions, and rejected records."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, or_, select
from sqlalchemy.orm import Session, defer

from gateway.models import Person, RejectedRecord, SourceRecord, SourceRecordVersion
from gateway.repositories.dialect import supports_row_locks


def get_many_for_update(
    session: Session, source: str, external_ids: Iterable[str]
) -> dict[str, SourceRecord]:
    """The existing records among these ids, locked (in id order, so writers never deadlock)."""
    ids = sorted(set(external_ids))
    if not ids:
        return {}
    statement = (
        select(SourceRecord)
        .where(SourceRecord.source == source, SourceRecord.external_id.in_(ids))
        .order_by(SourceRecord.external_id)
    )
    if supports_row_locks(session):
        statement = statement.with_for_update()
    return {record.external_id: record for record in session.scalars(statement)}


def get_for_update(session: Session, source_record_id: uuid.UUID) -> SourceRecord | None:
    statement = select(SourceRecord).where(SourceRecord.id == source_record_id)
    if supports_row_locks(session):
        statement = statement.with_for_update()
    return session.scalar(statement)


def add(session: Session, record: SourceRecord) -> None:
    session.add(record)


def add_version(session: Session, version: SourceRecordVersion) -> None:
    session.add(version)


def list_for_person(session: Session, person_id: uuid.UUID) -> Sequence[SourceRecord]:
    return session.scalars(
        select(SourceRecord)
        .where(SourceRecord.person_id == person_id)
        .order_by(SourceRecord.received_at, SourceRecord.id)
    ).all()


def list_for_persons(
    session: Session, person_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[SourceRecord]]:
    ids = set(person_ids)
    grouped: dict[uuid.UUID, list[SourceRecord]] = {person_id: [] for person_id in ids}
    if not ids:
        return grouped
    rows = session.scalars(
        select(SourceRecord)
        .where(SourceRecord.person_id.in_(ids))
        .order_by(SourceRecord.received_at, SourceRecord.id)
    )
    for record in rows:
        grouped[record.person_id].append(record)
    return grouped


def page_for_source(
    session: Session,
    source: str,
    *,
    external_id: str | None,
    after: str | None,
    limit: int,
    warned_only: bool = False,
) -> Sequence[SourceRecord]:
    """A source's records (or only those with data-quality warnings) in external-id order,
    after `after` (keyset pagination)."""
    # The (source, external_id) unique index (or, for warned records only, the partial index
    # ix_source_records_warned) serves both the filter and the order; the stored
    # documents are left unloaded, since a page of them can be large.
    statement = (
        select(SourceRecord)
        .options(
            defer(SourceRecord.payload, raiseload=True),
            defer(SourceRecord.canonical, raiseload=True),
        )
        .where(SourceRecord.source == source)
    )
    if external_id is not None:
        statement = statement.where(SourceRecord.external_id == external_id)
    if warned_only:
        statement = statement.where(SourceRecord.warning_count > 0)
    if after is not None:
        statement = statement.where(SourceRecord.external_id > after)
    return session.scalars(statement.order_by(SourceRecord.external_id).limit(limit)).all()


def live_persons_of(
    session: Session, person_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """The live person each id now stands for, following merges (one query per merge hop)."""
    live = {person_id: person_id for person_id in person_ids}
    pending = set(live)
    seen: set[uuid.UUID] = set()
    while pending:
        seen |= pending
        rows = session.execute(
            select(Person.id, Person.merged_into_id).where(
                Person.id.in_(pending), Person.merged_into_id.is_not(None)
            )
        ).all()
        hops: dict[uuid.UUID, uuid.UUID] = {
            person_id: merged_into for person_id, merged_into in rows if merged_into is not None
        }
        for start, current in live.items():
            if current in hops:
                live[start] = hops[current]
        pending = set(hops.values()) - seen
    return live


def add_rejected(session: Session, rejected: RejectedRecord) -> None:
    session.add(rejected)


def quarantined_by_hash(
    session: Session, source: str, hashes: Iterable[str]
) -> dict[str, RejectedRecord]:
    """Records of this source still waiting in quarantine, by payload hash."""
    values = sorted(set(hashes))
    if not values:
        return {}
    statement = select(RejectedRecord).where(
        RejectedRecord.source == source,
        RejectedRecord.status == "quarantined",
        RejectedRecord.payload_hash.in_(values),
    )
    if supports_row_locks(session):
        statement = statement.with_for_update()
    return {row.payload_hash: row for row in session.scalars(statement)}


def get_rejected(
    session: Session, rejected_id: int, *, for_update: bool = False
) -> RejectedRecord | None:
    statement = select(RejectedRecord).where(RejectedRecord.id == rejected_id)
    if for_update and supports_row_locks(session):
        statement = statement.with_for_update()
    return session.scalar(statement)


def _like_json_member(column: Any, key: str, value: str, *, prefix: bool) -> Any:
    """Match `"key":"value..."` in a JSON column's text.

    Compact JSON (as the gateway writes it) has no space after the colon; PostgreSQL renders
    jsonb with one; both spellings are matched.
    """
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    tail = "%" if prefix else '"%'
    text = cast(column, Text)
    return or_(
        text.like(f'%"{key}":"{escaped}{tail}', escape="\\"),
        text.like(f'%"{key}": "{escaped}{tail}', escape="\\"),
    )


def list_rejected(
    session: Session,
    *,
    status: str | None,
    source: str | None,
    error_path: str | None,
    error_type: str | None,
    received_from: datetime | None,
    received_to: datetime | None,
    after_id: int,
    limit: int,
) -> Sequence[RejectedRecord]:
    """Quarantined records, oldest first, after `after_id` (keyset pagination)."""
    statement = select(RejectedRecord).where(RejectedRecord.id > after_id)
    if status is not None:
        statement = statement.where(RejectedRecord.status == status)
    if source is not None:
        statement = statement.where(RejectedRecord.source == source)
    if error_path is not None:
        statement = statement.where(
            _like_json_member(RejectedRecord.errors, "path", error_path, prefix=True)
        )
    if error_type is not None:
        statement = statement.where(
            _like_json_member(RejectedRecord.errors, "type", error_type, prefix=False)
        )
    if received_from is not None:
        statement = statement.where(RejectedRecord.last_received_at >= received_from)
    if received_to is not None:
        statement = statement.where(RejectedRecord.received_at < received_to)
    return session.scalars(statement.order_by(RejectedRecord.id).limit(limit)).all()


def person_ids_of(
    session: Session, source_record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """The person each of these records belongs to now."""
    found: dict[uuid.UUID, uuid.UUID] = {}
    for start in range(0, len(source_record_ids), 500):
        chunk = source_record_ids[start : start + 500]
        found.update(
            (row[0], row[1])
            for row in session.execute(
                select(SourceRecord.id, SourceRecord.person_id).where(SourceRecord.id.in_(chunk))
            )
        )
    return found


def iter_canonical_persons(
    session: Session, *, limit: int | None = None, batch: int = 2000
) -> Iterator[dict[str, Any]]:
    """Every stored record's canonical person, streamed by source and external id (for training
    the matcher): the same records give the same order, and so the same model for a seed,
    whatever order they arrived in and whatever ids they were given."""
    statement = select(SourceRecord.canonical["person"]).order_by(
        SourceRecord.source, SourceRecord.external_id
    )
    if limit is not None:
        statement = statement.limit(limit)
    yield from session.execute(statement.execution_options(yield_per=batch)).scalars()
