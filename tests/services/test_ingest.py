"""The write path: outcomes, linking, golden records, versions, rejects and change rows."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.base import AdapterConfig
from adapters.canonical import CanonicalAdapter
from gateway.db import Database
from gateway.models import Change, Person, RejectedRecord, SourceRecord, SourceRecordVersion, utcnow
from gateway.services import ingest
from gateway.services.ingest import BatchResult, Outcome
from tests.builders import OMIT, ingest_records, make_case_record

ADAPTER = CanonicalAdapter(AdapterConfig())


def push(db: Database, records: Sequence[Any], *, source: str = "crc-north") -> BatchResult:
    result: BatchResult = ingest_records(db, list(records), source=source)
    return result


def change_types(db: Database) -> list[str]:
    return list(db.read(lambda s: s.scalars(select(Change.type).order_by(Change.seq)).all()))


def count(db: Database, model: type[Any]) -> int:
    return int(db.read(lambda s: s.scalar(select(func.count()).select_from(model))))


def test_a_new_record_creates_a_person_and_a_case_and_emits_both(db: Database) -> None:
    result = push(db, [make_case_record()])

    assert [r.outcome for r in result.results] == [Outcome.CREATED]
    assert change_types(db) == ["person.created", "case.created"]
    assert count(db, Person) == 1
    assert count(db, SourceRecordVersion) == 1


def test_an_identical_resend_changes_nothing_and_emits_nothing(db: Database) -> None:
    record = make_case_record()
    push(db, [record])
    before = change_types(db)

    result = push(db, [copy.deepcopy(record)])

    assert [r.outcome for r in result.results] == [Outcome.UNCHANGED]
    assert change_types(db) == before
    assert count(db, SourceRecordVersion) == 1


def test_a_changed_record_updates_the_golden_record_and_keeps_every_version(db: Database) -> None:
    record = make_case_record()
    first = push(db, [record])
    changed = copy.deepcopy(record)
    changed["person"]["surname"] = "Quillfeather"

    result = push(db, [changed])

    assert [r.outcome for r in result.results] == [Outcome.UPDATED]
    assert result.results[0].person_id == first.results[0].person_id
    assert change_types(db) == ["person.created", "case.created", "person.updated"]
    person = db.read(lambda s: s.get(Person, first.results[0].person_id))
    assert person is not None
    assert person.record["surname"] == "Quillfeather"
    assert person.version == 2
    versions = db.read(
        lambda s: s.scalars(select(SourceRecordVersion.version).order_by("version")).all()
    )
    assert list(versions) == [1, 2]


def test_a_case_only_change_emits_case_updated_and_no_person_change(db: Database) -> None:
    record = make_case_record()
    push(db, [record])
    changed = copy.deepcopy(record)
    changed["case"]["tier"] = {"value": "C3"}

    push(db, [changed])

    assert change_types(db) == ["person.created", "case.created", "case.updated"]


def test_records_sharing_a_crn_across_sources_link_to_one_person(db: Database) -> None:
    north = make_case_record()
    # Only the CRN in common: other identifiers of their own would conflict and never auto-link.
    # The same forenames and date of birth under a new surname: a CRN on a record whose names
    # and date of birth all differ would be a collision for review instead.
    south = make_case_record(
        person={
            "forenames": north["person"]["forenames"],
            "date_of_birth": north["person"]["date_of_birth"],
            "identifiers": {
                "crn": north["person"]["identifiers"]["crn"],
                "pnc": OMIT,
                "noms": OMIT,
            },
        }
    )

    first = push(db, [north], source="crc-north")
    second = push(db, [south], source="crc-south")

    assert second.results[0].outcome is Outcome.CREATED
    assert second.results[0].person_id == first.results[0].person_id
    assert count(db, Person) == 1
    person = db.read(lambda s: s.get(Person, first.results[0].person_id))
    assert person is not None
    # The newer record wins field by field, and provenance names where each field came from.
    assert person.record["surname"] == south["person"]["surname"]
    assert person.provenance["surname"]["source"] == "crc-south"
    assert person.provenance["identifiers.crn"]["source"] == "crc-south"


def test_two_records_with_one_crn_in_one_batch_make_one_person(db: Database) -> None:
    first = make_case_record()
    second = make_case_record(
        person={
            "date_of_birth": first["person"]["date_of_birth"],
            "identifiers": {
                "crn": first["person"]["identifiers"]["crn"],
                "pnc": OMIT,
                "noms": OMIT,
            },
        }
    )

    result = push(db, [first, second])

    assert result.results[0].person_id == result.results[1].person_id
    assert change_types(db).count("person.created") == 1


def test_the_same_external_id_twice_in_a_batch_is_created_then_updated(db: Database) -> None:
    record = make_case_record()
    newer = copy.deepcopy(record)
    newer["person"]["surname"] = "Brightwater"

    result = push(db, [record, newer])

    assert [r.outcome for r in result.results] == [Outcome.CREATED, Outcome.UPDATED]
    stored = db.read(lambda s: s.scalars(select(SourceRecord)).one())
    assert stored.version == 2
    assert stored.canonical["person"]["surname"] == "Brightwater"


def test_rejected_records_are_kept_raw_with_field_errors_and_the_rest_stored(db: Database) -> None:
    good = make_case_record()
    bad = make_case_record(person={"identifiers": {"pnc": "2002/0073319Q"}, "nickname": "x"})

    result = push(db, [good, bad, "not a record"])

    assert [r.outcome for r in result.results] == [
        Outcome.CREATED,
        Outcome.REJECTED,
        Outcome.REJECTED,
    ]
    paths = {error["path"] for error in result.results[1].errors}
    assert paths == {"person.identifiers.pnc", "person.nickname"}
    assert result.results[1].external_id == bad["provenance"]["external_id"]
    rejected = db.read(
        lambda s: s.scalars(select(RejectedRecord).order_by(RejectedRecord.id)).all()
    )
    assert [r.payload for r in rejected] == [bad, "not a record"]
    assert rejected[0].adapter == "canonical"
    assert {e["path"] for e in rejected[0].errors} == paths
    assert count(db, SourceRecord) == 1


def test_a_record_claiming_another_source_is_rejected(db: Database) -> None:
    record = make_case_record(provenance={"source": "crc-south"})

    result = push(db, [record], source="crc-north")

    assert result.results[0].outcome is Outcome.REJECTED
    assert result.results[0].errors[0]["path"] == "provenance.source"


def test_identifiers_are_stored_canonical_for_lookup(db: Database) -> None:
    record = make_case_record(person={"identifiers": {"pnc": "02/73319Z", "crn": "x320741"}})

    result = push(db, [record])

    person = db.read(lambda s: s.get(Person, result.results[0].person_id))
    assert person is not None
    assert (person.pnc, person.crn) == ("2002/0073319Z", "X320741")


def test_source_stats_count_every_outcome(db: Database) -> None:
    from gateway.repositories import source_stats

    record = make_case_record()
    push(db, [record, make_case_record(person={"sex": "SOMETIMES"})])
    push(db, [record])
    changed = copy.deepcopy(record)
    changed["person"]["surname"] = "Fernsby"
    push(db, [changed])

    stats = db.read(lambda s: source_stats.get(s, "crc-north"))
    assert stats is not None
    assert (stats.received, stats.created, stats.updated, stats.unchanged, stats.rejected) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert stats.last_received_at is not None


@pytest.mark.parametrize("field", ["received_at"])
def test_the_content_hash_ignores_the_receipt_time(field: str) -> None:
    from schemas import CaseRecord

    record = CaseRecord.model_validate(make_case_record())
    later = record.model_copy(
        update={"provenance": record.provenance.model_copy(update={field: utcnow()})}
    )

    assert ingest.content_hash(record.model_dump(mode="json")) == ingest.content_hash(
        later.model_dump(mode="json")
    )


def test_a_unique_violation_from_a_concurrent_writer_is_retried() -> None:
    from psycopg import errors as pg_errors
    from sqlalchemy.exc import IntegrityError

    from gateway.db import _is_retryable

    error = IntegrityError("INSERT", {}, pg_errors.UniqueViolation())

    assert _is_retryable(error)


def test_two_writers_creating_the_same_record_at_once_both_succeed(db: Database) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    record = make_case_record()
    barrier = threading.Barrier(2, timeout=10)

    def push_after_barrier() -> Outcome:
        barrier.wait()
        return push(db, [copy.deepcopy(record)]).results[0].outcome

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(lambda _: push_after_barrier(), range(2)))

    assert outcomes == sorted([Outcome.CREATED, Outcome.UNCHANGED])
    assert count(db, SourceRecord) == 1
    assert change_types(db) == ["person.created", "case.created"]


def test_an_over_long_id_from_an_adapter_does_not_stop_the_record_being_quarantined(
    db: Database,
) -> None:
    from adapters.base import RawRecord

    raw = RawRecord(data={"not": "valid"}, external_id="X" * 500, position="line 1")

    result = db.write(
        lambda session: ingest.ingest_batch(
            session,
            source="crc-north",
            adapter=ADAPTER,
            raw_records=[raw],
            principal=None,
            received_at=utcnow(),
        )
    )

    assert result.results[0].outcome is Outcome.REJECTED
    assert result.results[0].external_id is None
    assert count(db, RejectedRecord) == 1
