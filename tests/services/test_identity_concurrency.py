"""Concurrent writers holding copies of the same persons still make one person each (PostgreSQL).

SQLite runs one writer at a time; on PostgreSQL, writers whose records share a key take turns
(advisory stripe locks), so each sees what the other committed before it matches.
"""

from __future__ import annotations

import copy
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from adapters.base import AdapterConfig
from adapters.canonical import CanonicalAdapter
from gateway.db import Database
from gateway.models import Person, SourceRecord, utcnow
from gateway.repositories import matching as matching_repo
from gateway.services import ingest
from tests.builders import as_raw_records, ingest_records, make_case_record

WRITERS = 6
PERSONS = 15


def copies(people: list[dict[str, Any]], writer: int) -> list[dict[str, Any]]:
    """Each writer's own copy of every person: its own external ids, no identifiers in common."""
    batch = []
    for number, person in enumerate(people):
        record = copy.deepcopy(person)
        record["provenance"]["external_id"] = f"w{writer}-p{number}-{uuid.uuid4().hex[:6]}"
        record["person"]["identifiers"] = {}
        batch.append(record)
    return batch


@pytest.mark.postgres_only
def test_concurrent_copies_of_one_person_make_one_person(db: Database) -> None:
    people = [make_case_record() for _ in range(PERSONS)]
    batches = [copies(people, writer) for writer in range(WRITERS)]
    start = threading.Barrier(WRITERS, timeout=30)
    errors: list[BaseException] = []
    adapter = CanonicalAdapter(AdapterConfig())

    def write(writer: int) -> None:
        try:
            start.wait()
            db.write(
                lambda session: ingest.ingest_batch(
                    session,
                    source=f"crc-{writer}",
                    adapter=adapter,
                    raw_records=as_raw_records(batches[writer]),
                    principal=None,
                    received_at=utcnow(),
                )
            )
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    rows = db.read(
        lambda s: s.execute(select(SourceRecord.external_id, SourceRecord.person_id)).all()
    )
    persons: dict[str, set[uuid.UUID]] = {}
    for external_id, person_id in rows:
        persons.setdefault(external_id.split("-")[1], set()).add(person_id)
    assert len(rows) == WRITERS * PERSONS
    assert all(len(ids) == 1 for ids in persons.values()), persons
    assert len({next(iter(ids)) for ids in persons.values()}) == PERSONS


@pytest.mark.postgres_only
def test_a_candidate_moved_after_it_was_read_is_found_where_it_went(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A record's person as read, then split off by another writer before its person was locked:
    # the resolver must link to where the record is now, not to the person it left.
    first = make_case_record()
    second = copy.deepcopy(first)
    second["provenance"]["external_id"] = f"moved-{uuid.uuid4().hex[:6]}"
    second["person"]["identifiers"] = {}
    ingest_records(db, [first])
    old_person = db.read(lambda s: s.scalar(select(SourceRecord.person_id)))
    new_person = Person(
        id=uuid.uuid4(),
        record={},
        provenance={},
        version=0,
        created_at=utcnow(),
        updated_at=utcnow(),
    )

    def split_off(session: Any) -> None:
        session.add(new_person)
        session.flush()
        matching_repo.move_records(
            session,
            source_record_ids=[session.scalar(select(SourceRecord.id))],
            to_person_id=new_person.id,
        )

    read = matching_repo.candidates_by_keys

    def read_then_move(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        db.write(split_off)  # another writer commits between our read and our lock
        return found

    monkeypatch.setattr(matching_repo, "candidates_by_keys", read_then_move)
    result = ingest_records(db, [second])

    assert result.results[0].person_id == new_person.id != old_person
