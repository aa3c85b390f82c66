"""Blocking keys, match decisions and exclusions; moving records between persons."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from gateway.matching.keys import key_cap
from gateway.models import Case, MatchDecision, MatchExclusion, MatchKey, Person, SourceRecord
from gateway.repositories.dialect import supports_row_locks

# Bound parameters per IN list: well under SQLite's and PostgreSQL's limits.
_IN_CHUNK = 2000


def _chunks(values: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    """A stored source record found through a key: enough to score it and find its person."""

    source_record_id: uuid.UUID
    person_id: uuid.UUID
    person: dict[str, Any]
    pinned: bool


def candidates_by_keys(
    session: Session, keys: Iterable[str], *, max_key_records: int
) -> tuple[dict[str, list[uuid.UUID]], dict[uuid.UUID, CandidateRecord]]:
    """For each key, the records holding it (keys held by too many records, `key_cap`, are
    dropped); and each of those records once, with its canonical person."""
    values = sorted(set(keys))
    by_key: dict[str, list[uuid.UUID]] = defaultdict(list)
    for chunk in _chunks(values):
        keyed = session.execute(
            select(MatchKey.key, MatchKey.source_record_id).where(MatchKey.key.in_(chunk))
        )
        for key, record_id in keyed:
            by_key[key].append(record_id)
    for key in [key for key, ids in by_key.items() if len(ids) > key_cap(key, max_key_records)]:
        del by_key[key]
    # Each record's person once, however many keys it shares: decoding it is the dear part.
    wanted = sorted({record_id for ids in by_key.values() for record_id in ids})
    return dict(by_key), candidate_records(session, wanted)


def candidate_records(
    session: Session, record_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, CandidateRecord]:
    """These records as candidates: each with its person and canonical person."""
    wanted = sorted(set(record_ids))
    records: dict[uuid.UUID, CandidateRecord] = {}
    for chunk in _chunks(wanted):
        rows = session.execute(
            select(
                SourceRecord.id,
                SourceRecord.person_id,
                SourceRecord.canonical["person"],
                SourceRecord.pinned,
            ).where(SourceRecord.id.in_(chunk))
        )
        for record_id, person_id, person, pinned in rows:
            records[record_id] = CandidateRecord(record_id, person_id, person, pinned)
    return records


#: First half of the two-int advisory lock ids the key stripes use ("crcm" in ASCII).
KEY_LOCK_NAMESPACE = 0x6372636D


def lock_key_stripes(session: Session, stripes: Sequence[int]) -> None:
    """Take these advisory stripe locks until commit, in the order given (callers sort)."""
    if not supports_row_locks(session):
        return
    for stripe in stripes:
        session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :stripe)"),
            {"namespace": KEY_LOCK_NAMESPACE, "stripe": stripe},
        )


def add_keys(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert (key, source_record_id) rows in one executemany."""
    if rows:
        session.execute(insert(cast(Table, MatchKey.__table__)), rows)


def delete_keys(session: Session, source_record_ids: Iterable[uuid.UUID]) -> None:
    ids = sorted(set(source_record_ids))
    for chunk in _chunks(ids):
        session.execute(delete(MatchKey).where(MatchKey.source_record_id.in_(chunk)))


def add_decisions(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(cast(Table, MatchDecision.__table__)), rows)


def add_decision(session: Session, decision: MatchDecision) -> None:
    session.add(decision)


def get_decision(
    session: Session, decision_id: uuid.UUID, *, for_update: bool = False
) -> MatchDecision | None:
    statement = select(MatchDecision).where(MatchDecision.id == decision_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return session.scalar(statement)


def pending_reviews(
    session: Session, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Sequence[MatchDecision]:
    """Possible matches waiting for a person, oldest first (keyset pages)."""
    statement = select(MatchDecision).where(MatchDecision.status == "pending")
    if after is not None:
        created_at, decision_id = after
        statement = statement.where(
            or_(
                MatchDecision.created_at > created_at,
                and_(MatchDecision.created_at == created_at, MatchDecision.id > decision_id),
            )
        )
    return session.scalars(
        statement.order_by(MatchDecision.created_at, MatchDecision.id).limit(limit)
    ).all()


def pending_for_record(session: Session, source_record_id: uuid.UUID) -> Sequence[MatchDecision]:
    return session.scalars(
        select(MatchDecision).where(
            MatchDecision.source_record_id == source_record_id, MatchDecision.status == "pending"
        )
    ).all()


def oldest_pending_at(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(MatchDecision.created_at)).where(MatchDecision.status == "pending")
    )


def count_pending(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(MatchDecision).where(MatchDecision.status == "pending")
        )
        or 0
    )


def decisions_for_records(
    session: Session, source_record_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, MatchDecision]:
    """The latest decision of each record."""
    ids = sorted(set(source_record_ids))
    latest: dict[uuid.UUID, MatchDecision] = {}
    for chunk in _chunks(ids):
        rows = session.scalars(
            select(MatchDecision)
            .where(MatchDecision.source_record_id.in_(chunk))
            .order_by(MatchDecision.created_at, MatchDecision.id)
        )
        for decision in rows:
            latest[decision.source_record_id] = decision
    return latest


def record_ids_of_persons(
    session: Session, person_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    ids = sorted(set(person_ids))
    grouped: dict[uuid.UUID, list[uuid.UUID]] = {person_id: [] for person_id in ids}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(SourceRecord.person_id, SourceRecord.id).where(SourceRecord.person_id.in_(chunk))
        )
        for person_id, record_id in rows:
            grouped[person_id].append(record_id)
    return grouped


def exclusions_among(
    session: Session, record_ids: Iterable[uuid.UUID]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """Every excluded pair with both records among these (each pair smaller id first)."""
    ids = sorted(set(record_ids))
    if len(ids) < 2:
        return set()
    found: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for chunk in _chunks(ids):
        rows = session.execute(
            select(MatchExclusion.record_a, MatchExclusion.record_b).where(
                MatchExclusion.record_a.in_(chunk)
            )
        )
        members = set(ids)
        found.update((a, b) for a, b in rows if b in members)
    return found


def add_exclusions(
    session: Session,
    pairs: Iterable[tuple[uuid.UUID, uuid.UUID]],
    *,
    decision_id: uuid.UUID,
    now: datetime,
) -> int:
    """Record pairs of records that are not the same person (already-known pairs are kept)."""
    wanted = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
    if not wanted:
        return 0
    known = exclusions_among(session, {record for pair in wanted for record in pair})
    rows = [
        {"record_a": a, "record_b": b, "decision_id": decision_id, "created_at": now}
        for a, b in sorted(wanted - known)
    ]
    if rows:
        session.execute(insert(cast(Table, MatchExclusion.__table__)), rows)
    return len(rows)


def remove_exclusions(session: Session, record_id: uuid.UUID, others: Iterable[uuid.UUID]) -> None:
    """Forget that this record is not the same as those (a later human decision says it is)."""
    ids = sorted(set(others) - {record_id})
    for chunk in _chunks(ids):
        session.execute(
            delete(MatchExclusion).where(
                or_(
                    and_(MatchExclusion.record_a == record_id, MatchExclusion.record_b.in_(chunk)),
                    and_(MatchExclusion.record_b == record_id, MatchExclusion.record_a.in_(chunk)),
                )
            )
        )


def move_person_records(
    session: Session, *, from_person_ids: Iterable[uuid.UUID], to_person_id: uuid.UUID
) -> None:
    """Every source record and case of those persons now belongs to this one."""
    ids = sorted(set(from_person_ids))
    for chunk in _chunks(ids):
        for entity in (SourceRecord, Case):
            session.execute(
                update(entity)
                .where(entity.person_id.in_(chunk))
                .values(person_id=to_person_id)
                .execution_options(synchronize_session="evaluate")
            )


def move_records(
    session: Session, *, source_record_ids: Iterable[uuid.UUID], to_person_id: uuid.UUID
) -> None:
    """These source records (and their cases) now belong to this person."""
    ids = sorted(set(source_record_ids))
    for chunk in _chunks(ids):
        session.execute(
            update(SourceRecord)
            .where(SourceRecord.id.in_(chunk))
            .values(person_id=to_person_id)
            .execution_options(synchronize_session="evaluate")
        )
        session.execute(
            update(Case)
            .where(Case.source_record_id.in_(chunk))
            .values(person_id=to_person_id)
            .execution_options(synchronize_session="evaluate")
        )


def pin_records(session: Session, source_record_ids: Iterable[uuid.UUID]) -> None:
    """These records are where a person put them: automatic passes never move them."""
    ids = sorted(set(source_record_ids))
    for chunk in _chunks(ids):
        session.execute(
            update(SourceRecord)
            .where(SourceRecord.id.in_(chunk))
            .values(pinned=True)
            .execution_options(synchronize_session="evaluate")
        )


def survivor_of(session: Session, person_id: uuid.UUID) -> Person | None:
    """The person a (possibly merged) id now stands for, following merges to the end."""
    person = session.get(Person, person_id)
    seen: set[uuid.UUID] = set()
    while person is not None and person.merged_into_id is not None and person.id not in seen:
        seen.add(person.id)
        person = session.get(Person, person.merged_into_id)
    return person
