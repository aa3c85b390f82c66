"""Matcher re-runs and stored models: what a new model changes, and what it must never change."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.db import Database
from gateway.errors import Conflict
from gateway.matching import Bands, MatchModel, load_model, view_of
from gateway.matching.keys import COARSE_KEY_RECORDS
from gateway.models import Change, MatchDecision, MatcherRun, Person, SourceRecord, utcnow
from gateway.repositories import matching as matching_repo
from gateway.services import match_models, reruns, review, writeback
from gateway.services.golden import DEFAULT_POLICY
from gateway.services.identity import Matcher
from gateway.services.reresolve import Member, candidate_pairs
from gateway.settings import MatchingSettings
from tests.builders import another_record_of, ingest_records, make_case_record, random_crn

BASE = load_model()


def model_with(version: str, *, link: float, possible: float) -> MatchModel:
    return BASE.model_copy(
        update={"version": version, "bands": Bands(link=link, possible=possible)}
    )


#: Nothing links on weight (identifiers still do); a pair of copies is then a possible match.
STRICT = model_with("strict-test", link=200.0, possible=0.0)
#: Links far below the default band: a pair the default model reviews links here.
LENIENT = model_with("lenient-test", link=-20.0, possible=-40.0)


def matcher() -> Matcher:
    return Matcher.build(MatchingSettings(), DEFAULT_POLICY)


def activate(db: Database, model: MatchModel) -> None:
    def work(session: Any) -> None:
        match_models.add_model(session, model, principal=None, now=utcnow())
        match_models.activate(session, model.version, principal=None, now=utcnow())

    db.write(work)


def rerun(db: Database, with_matcher: Matcher | None = None) -> MatcherRun:
    run = db.write(lambda session: reruns.request_run(session, principal=None, now=utcnow()))
    claimed = db.write(lambda session: reruns.claim_next(session, now=utcnow()))
    assert claimed is not None
    assert claimed.run_id == run.id
    finished = reruns.execute(db, with_matcher or matcher(), claimed)
    assert finished is not None
    return finished


def person_of(db: Database, record: dict[str, Any]) -> uuid.UUID:
    external_id = record["provenance"]["external_id"]
    return db.read(
        lambda s: s.scalar(
            select(SourceRecord.person_id).where(SourceRecord.external_id == external_id)
        )
    )


def live_persons(db: Database) -> int:
    return db.read(
        lambda s: s.scalar(
            select(func.count()).select_from(Person).where(Person.merged_into_id.is_(None))
        )
    )


def change_types(db: Database) -> list[str]:
    return list(db.read(lambda s: s.scalars(select(Change.type).order_by(Change.seq)).all()))


def copies(count: int = 3) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Pairs of records of one person each, with no identifier in common."""
    pairs = []
    for _ in range(count):
        first = make_case_record()
        pairs.append((first, another_record_of(first)))
    return pairs


def test_a_rerun_with_the_model_that_resolved_everything_changes_nothing(db: Database) -> None:
    pairs = copies()
    ingest_records(db, [record for pair in pairs for record in pair], matcher=matcher())
    before = change_types(db)

    run = rerun(db)

    assert run.status == "succeeded"
    assert run.records_total == run.records_done == 6
    assert (run.records_moved, run.persons_merged, run.persons_split) == (0, 0, 0)
    assert change_types(db) == before
    assert live_persons(db) == 3


def test_a_stricter_model_splits_weight_links_and_a_laxer_one_merges_them_back(
    db: Database,
) -> None:
    pairs = copies()
    ingest_records(db, [first for first, _ in pairs], matcher=matcher())
    ingest_records(db, [second for _, second in pairs], matcher=matcher())
    kept = {person_of(db, first) for first, _ in pairs}

    activate(db, STRICT)
    split = rerun(db)

    assert split.model_version == STRICT.version
    assert split.persons_split == 3
    assert split.records_moved == 3
    assert live_persons(db) == 6
    # Survivors keep their ids: the person stays with its oldest record.
    assert {person_of(db, first) for first, _ in pairs} == kept
    assert change_types(db).count("person.split") == 3
    # Each split pair now waits for review under the strict model (possible band).
    pending = db.read(
        lambda s: s.scalar(select(func.count()).where(MatchDecision.status == "pending"))
    )
    assert pending == 3
    assert split.reviews_opened == 3

    activate(db, BASE.model_copy(update={"version": "default-again"}))
    merged = rerun(db)

    assert merged.persons_merged == 3
    assert live_persons(db) == 3
    assert {person_of(db, first) for first, _ in pairs} == kept
    assert all(person_of(db, first) == person_of(db, second) for first, second in pairs)
    assert change_types(db).count("person.merged") == 3
    # The review items the merge answered are closed.
    assert merged.reviews_closed == 3
    statuses = db.read(lambda s: s.scalars(select(MatchDecision.status)).all())
    assert "pending" not in statuses

    again = rerun(db)
    assert again.records_moved == 0


def test_identifier_links_survive_a_model_that_links_nothing_on_weight(db: Database) -> None:
    first = make_case_record()
    second = another_record_of(first, identifiers={"pnc": first["person"]["identifiers"]["pnc"]})
    ingest_records(db, [first, second], matcher=matcher())
    activate(db, STRICT)

    run = rerun(db)

    assert run.records_moved == 0
    assert person_of(db, first) == person_of(db, second)


def test_human_decisions_outrank_any_model(db: Database) -> None:
    a_first = make_case_record()
    a_second = another_record_of(a_first)
    b_first = make_case_record()
    b_second = another_record_of(b_first)
    ingest_records(db, [a_first, a_second, b_first, b_second], matcher=matcher())
    a_person, b_person = person_of(db, a_first), person_of(db, b_first)
    a_second_id = db.read(
        lambda s: s.scalar(
            select(SourceRecord.id).where(
                SourceRecord.external_id == a_second["provenance"]["external_id"]
            )
        )
    )
    # A person says a_second is not a_first's person (split), and links b_second by hand.
    db.write(
        lambda s: review.split_records(
            s,
            a_person,
            source_record_ids=[a_second_id],
            note=None,
            principal=None,
            policy=DEFAULT_POLICY,
            now=utcnow(),
        )
    )
    b_second_id = db.read(
        lambda s: s.scalar(
            select(SourceRecord.id).where(
                SourceRecord.external_id == b_second["provenance"]["external_id"]
            )
        )
    )
    db.write(
        lambda s: review.link_record(
            s,
            b_person,
            source_record_id=b_second_id,
            note=None,
            principal=None,
            policy=DEFAULT_POLICY,
            now=utcnow(),
        )
    )

    activate(db, LENIENT)
    lenient = rerun(db)
    assert person_of(db, a_first) != person_of(db, a_second)  # the split stands
    assert lenient.persons_merged == 0

    activate(db, STRICT)
    rerun(db)
    assert person_of(db, b_first) == person_of(db, b_second)  # the link stands
    assert person_of(db, a_first) != person_of(db, a_second)


def test_ingest_scores_with_the_activated_model(db: Database) -> None:
    first = make_case_record()
    activate(db, STRICT)

    ingest_records(db, [first, another_record_of(first)], matcher=matcher())

    versions = db.read(lambda s: s.scalars(select(MatchDecision.model_version)).all())
    assert set(versions) == {STRICT.version}
    assert live_persons(db) == 2


def test_one_run_at_a_time(db: Database) -> None:
    db.write(lambda session: reruns.request_run(session, principal=None, now=utcnow()))
    with pytest.raises(Conflict):
        db.write(lambda session: reruns.request_run(session, principal=None, now=utcnow()))


def test_a_stored_version_names_one_model(db: Database) -> None:
    db.write(lambda s: match_models.add_model(s, STRICT, principal=None, now=utcnow()))
    # The same model again is fine; another under its version is not.
    db.write(lambda s: match_models.add_model(s, STRICT, principal=None, now=utcnow()))
    other = model_with(STRICT.version, link=30.0, possible=1.0)
    with pytest.raises(Conflict):
        db.write(lambda s: match_models.add_model(s, other, principal=None, now=utcnow()))


def test_only_one_model_is_active(db: Database) -> None:
    activate(db, STRICT)
    activate(db, LENIENT)

    rows = db.read(lambda s: match_models.list_models(s))

    assert [row.version for row in rows if row.active] == [LENIENT.version]


def test_a_person_the_central_system_gave_a_crn_keeps_its_records(db: Database) -> None:
    first = make_case_record()
    second = another_record_of(first)
    ingest_records(db, [first, second], matcher=matcher())
    person = person_of(db, first)
    db.write(
        lambda s: writeback.assign_crn(
            s, person, crn=random_crn(), policy=DEFAULT_POLICY, now=utcnow()
        )
    )
    activate(db, STRICT)

    run = rerun(db)

    assert run.records_moved == 0
    assert person_of(db, second) == person


def test_persons_people_decided_on_that_the_model_would_join_go_to_review(db: Database) -> None:
    first = make_case_record()
    second = another_record_of(first)
    activate(db, STRICT)
    ingest_records(db, [first], matcher=matcher())
    ingest_records(db, [second], matcher=matcher())
    pending = db.read(
        lambda s: s.scalars(select(MatchDecision).where(MatchDecision.status == "pending")).all()
    )
    assert len(pending) == 1
    # A person decides each record is right where it is (pinned apart, no exclusion).
    for record in (first, second):
        record_id = record_id_of(db, record)
        db.write(
            lambda s, record_id=record_id, record=record: review.link_record(
                s,
                person_of(db, record),
                source_record_id=record_id,
                note=None,
                principal=None,
                policy=DEFAULT_POLICY,
                now=utcnow(),
            )
        )
    activate(db, BASE.model_copy(update={"version": "default-pinned"}))

    run = rerun(db)

    assert run.records_moved == 0
    assert person_of(db, first) != person_of(db, second)
    still = db.read(
        lambda s: s.scalars(select(MatchDecision).where(MatchDecision.status == "pending")).all()
    )
    assert len(still) == 1


def test_a_run_another_process_took_over_stops_without_writing(db: Database) -> None:
    ingest_records(db, [make_case_record()], matcher=matcher())
    run = db.write(lambda session: reruns.request_run(session, principal=None, now=utcnow()))
    first = db.write(lambda session: reruns.claim_next(session, now=utcnow()))
    assert first is not None
    # The first process is taken for dead: a later claim takes the run over.
    later = utcnow() + reruns.STALE_AFTER * 2
    second = db.write(lambda session: reruns.claim_next(session, now=later))
    assert second is not None
    assert second.run_id == run.id

    assert reruns.execute(db, matcher(), first) is None
    finished = reruns.execute(db, matcher(), second)
    assert finished is not None
    assert finished.status == "succeeded"


def test_a_group_is_left_alone_when_a_person_decided_on_it_after_the_run_read_it(
    db: Database,
) -> None:
    first = make_case_record()
    second = another_record_of(first)
    ingest_records(db, [first, second], matcher=matcher())
    snapshot = reruns._snapshot(db, matcher(), BASE, None)
    members = snapshot.members
    assert db.read(lambda s: reruns._unchanged(s, snapshot, members))

    db.write(
        lambda s: matching_repo.add_exclusions(
            s,
            [(record_id_of(db, first), record_id_of(db, second))],
            decision_id=decision_id(db),
            now=utcnow(),
        )
    )

    assert not db.read(lambda s: reruns._unchanged(s, snapshot, members))


def record_id_of(db: Database, record: dict[str, Any]) -> uuid.UUID:
    external_id = record["provenance"]["external_id"]
    return db.read(
        lambda s: s.scalar(select(SourceRecord.id).where(SourceRecord.external_id == external_id))
    )


def decision_id(db: Database) -> uuid.UUID:
    return db.read(lambda s: s.scalars(select(MatchDecision.id)).first())


def test_a_run_taken_over_while_it_reads_stops_at_its_next_heartbeat(db: Database) -> None:
    first, second = copies(1)[0]
    ingest_records(db, [first, second], matcher=matcher())
    db.write(lambda session: reruns.request_run(session, principal=None, now=utcnow()))
    mine = db.write(lambda session: reruns.claim_next(session, now=utcnow()))
    assert mine is not None
    ticks = itertools.count()
    start = utcnow()

    def clock() -> Any:
        # Each look at the clock is a minute later: every report is due a heartbeat.
        return start + timedelta(minutes=next(ticks))

    stages: list[str] = []

    def taken_over(stage: str, done: int, total: int) -> None:
        stages.append(stage)
        later = start + reruns.STALE_AFTER * 10
        db.write(lambda session: reruns.claim_next(session, now=later))

    activate(db, STRICT)

    assert reruns.execute(db, matcher(), mine, progress=taken_over, clock=clock) is None
    # The heartbeat after the first report noticed: it never went on to score pairs.
    assert stages == ["reading records"]
    # It stopped before applying anything: the copies are still one person.
    assert person_of(db, first) == person_of(db, second)


def test_a_run_stopped_by_shutdown_is_queued_again_and_starts_over(db: Database) -> None:
    ingest_records(db, [make_case_record()], matcher=matcher())
    run = db.write(lambda session: reruns.request_run(session, principal=None, now=utcnow()))
    claim = db.write(lambda session: reruns.claim_next(session, now=utcnow()))
    assert claim is not None

    stopped = reruns.execute(db, matcher(), claim, should_stop=lambda: True)

    assert stopped is not None
    assert (stopped.status, stopped.claim) == ("queued", None)
    again = db.write(lambda session: reruns.claim_next(session, now=utcnow()))
    assert again is not None
    assert again.run_id == run.id
    finished = reruns.execute(db, matcher(), again)
    assert finished is not None
    assert (finished.status, finished.records_done) == ("succeeded", 1)


def test_a_coarse_key_held_by_more_than_its_cap_nominates_no_one(db: Database) -> None:
    records = [make_case_record() for _ in range(COARSE_KEY_RECORDS + 1)]
    ingest_records(db, records, matcher=matcher())
    ids = db.read(lambda s: list(s.scalars(select(SourceRecord.id))))
    coarse, fine = "names:ZQX|QZX", "sn_dob:ZQX:1980-01-01"
    db.write(
        lambda s: matching_repo.add_keys(
            s, [{"key": key, "source_record_id": i} for i in ids for key in (coarse, fine)]
        )
    )

    by_key, _records = db.read(
        lambda s: matching_repo.candidates_by_keys(s, [coarse, fine], max_key_records=500)
    )

    assert set(by_key) == {fine}
    # The re-run's pairs follow the same cap.
    same_names = [
        Member(uuid.UUID(int=i + 1), uuid.UUID(int=i + 1), False, view, utcnow())
        for i, view in enumerate(
            [view_of({"forenames": ["Quorra"], "surname": "Zanzibarre"})] * (COARSE_KEY_RECORDS + 1)
        )
    ]
    assert candidate_pairs(same_names, max_key_records=500) == []
    assert len(candidate_pairs(same_names[:COARSE_KEY_RECORDS], max_key_records=500)) == (
        COARSE_KEY_RECORDS * (COARSE_KEY_RECORDS - 1) // 2
    )
