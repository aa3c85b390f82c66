"""Matcher re-runs: cluster every stored record again with the active model and apply the result.

A run is a row in `matcher_runs`, asked for by an admin (API or `crc-gateway matcher rerun`) and
carried out by one process: the server's background loop claims queued runs, and the CLI runs its
own in the foreground. The run reads every record once, clusters them all in memory
(`gateway.services.reresolve.cluster`), and then applies the differences group by group, a group
being the records of the clusters and persons that share records, in transactions of about
`RECORDS_PER_TRANSACTION` records, with progress committed after each:

* records move to the person their cluster keeps; survivors keep their ids;
* `person.split` for a cluster that becomes a new person, `person.merged` for one that absorbs an
  emptied person, `person.updated` for a person whose records changed;
* pending review items the clusters answer are closed; a pair of clusters the model puts in the
  review band (or that a strong identifier conflict kept apart) gets a review item if it has none.

Pinned records and "not the same person" pairs are never overridden (see `reresolve`). A group
whose records or persons changed since the run read them (a push arrived meanwhile) is left as
online resolution decided it and counted as skipped. A run is idempotent: running it again with the
same model changes nothing, and a run cut short by a crash is claimed again and starts over.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.errors import Conflict, NotFound
from gateway.matching import MatchModel, view_of
from gateway.models import MatchDecision, MatcherRun, MatchExclusion, Person, SourceRecord, utcnow
from gateway.repositories import matching as matching_repo
from gateway.services import audit
from gateway.services.clients import Principal
from gateway.services.identity import Matcher
from gateway.services.reresolve import (
    Applied,
    ClusterResult,
    Member,
    anchored,
    apply_plan,
    cluster,
    plan,
    settle_reviews,
)
from gateway.services.review import PENDING, PersonWork

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_STATUSES",
    "claim_next",
    "execute",
    "get_run",
    "list_runs",
    "request_run",
]

RECORDS_PER_TRANSACTION: Final = 1000
#: A running run whose process has not reported for this long is taken to have died.
STALE_AFTER: Final = timedelta(minutes=5)
ACTIVE_STATUSES: Final = ("queued", "running")
_READ_BATCH: Final = 2000

Progress = Callable[[str, int, int], None]


def request_run(session: Session, *, principal: Principal | None, now: datetime) -> MatcherRun:
    """Queue a run; Conflict while another is queued or running (one at a time)."""
    busy = session.scalar(
        select(MatcherRun).where(MatcherRun.status.in_(ACTIVE_STATUSES)).with_for_update()
    )
    if busy is not None and not _stale(busy, now):
        raise Conflict(f"matcher run {busy.id} is {busy.status}; wait for it to finish")
    if busy is not None:
        _fail(busy, now, "its process stopped reporting; superseded by a new run")
    run = MatcherRun(
        id=uuid.uuid4(),
        status="queued",
        records_total=0,
        records_done=0,
        groups_changed=0,
        records_moved=0,
        persons_merged=0,
        persons_split=0,
        reviews_closed=0,
        reviews_opened=0,
        requested_by=principal.client_id if principal else None,
        created_at=now,
    )
    session.add(run)
    session.flush()
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.ADMINISTER,
        resource="matcher-runs",
        person_ids=[],
        now=now,
        detail={"requested_run": str(run.id)},
    )
    return run


def get_run(session: Session, run_id: uuid.UUID) -> MatcherRun:
    run = session.get(MatcherRun, run_id)
    if run is None:
        raise NotFound("no matcher run with that id")
    return run


def list_runs(session: Session, *, limit: int = 50) -> list[MatcherRun]:
    return list(
        session.scalars(
            select(MatcherRun).order_by(MatcherRun.created_at.desc(), MatcherRun.id).limit(limit)
        )
    )


def _stale(run: MatcherRun, now: datetime) -> bool:
    seen = run.heartbeat_at or run.created_at
    return run.status == "running" and now - seen > STALE_AFTER


def _fail(run: MatcherRun, now: datetime, why: str) -> None:
    run.status = "failed"
    run.finished_at = now
    run.failure = why[:500]


def claim_next(session: Session, *, now: datetime) -> uuid.UUID | None:
    """Take a queued run (or one whose process died) for this process; its id, or None."""
    candidates = session.scalars(
        select(MatcherRun.id)
        .where(MatcherRun.status.in_(ACTIVE_STATUSES))
        .order_by(MatcherRun.created_at)
    ).all()
    for run_id in candidates:
        claimed = session.execute(
            update(MatcherRun)
            .where(
                MatcherRun.id == run_id,
                or_(
                    MatcherRun.status == "queued",
                    MatcherRun.heartbeat_at < now - STALE_AFTER,
                ),
            )
            .values(status="running", started_at=now, heartbeat_at=now)
        )
        if getattr(claimed, "rowcount", 0) == 1:
            return run_id
    return None


# ------------------------------------------------------------------------------------------------
# Carrying a run out.
# ------------------------------------------------------------------------------------------------


@dataclass
class _Snapshot:
    members: list[Member]
    result: ClusterResult
    ages: dict[uuid.UUID, tuple[datetime, uuid.UUID]]


def _read_members(db: Database, progress: Progress | None) -> list[Member]:
    def read(session: Session) -> list[Member]:
        total = session.query(SourceRecord.id).count()
        assigned = {
            row[0]: row[1]
            for row in session.execute(
                select(Person.id, Person.assigned_identifiers).where(
                    Person.assigned_identifiers.is_not(None)
                )
            )
        }
        statement = select(
            SourceRecord.id,
            SourceRecord.person_id,
            SourceRecord.pinned,
            SourceRecord.canonical["person"],
            SourceRecord.created_at,
        ).order_by(SourceRecord.id)
        members = []
        for row in session.execute(statement.execution_options(yield_per=_READ_BATCH)):
            view = view_of(row[3])
            members.append(
                Member(
                    record_id=row[0],
                    person_id=row[1],
                    pinned=row[2] or anchored(view, assigned.get(row[1])),
                    view=view,
                    created_at=row[4],
                )
            )
            if progress is not None and len(members) % _READ_BATCH == 0:
                progress("reading records", len(members), total)
        if progress is not None:
            progress("reading records", len(members), len(members))
        return members

    return db.read(read)


def _groups(members: Sequence[Member], result: ClusterResult) -> list[list[int]]:
    """Member indexes joined by a cluster or by a current person, in record-id order."""
    parent = list(range(len(members)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_of_person: dict[uuid.UUID, int] = {}
    for index, member in enumerate(members):
        held = first_of_person.setdefault(member.person_id, index)
        if held != index:
            parent[find(index)] = find(held)
    for indexes in result.clusters:
        for index in indexes[1:]:
            parent[find(index)] = find(indexes[0])
    grouped: dict[int, list[int]] = defaultdict(list)
    for index in range(len(members)):
        grouped[find(index)].append(index)
    return sorted(grouped.values(), key=lambda indexes: indexes[0])


def _snapshot(
    db: Database, matcher: Matcher, model: MatchModel, progress: Progress | None
) -> _Snapshot:
    members = _read_members(db, progress)
    exclusions = db.read(
        lambda session: [
            (row[0], row[1])
            for row in session.execute(select(MatchExclusion.record_a, MatchExclusion.record_b))
        ]
    )
    ages = db.read(
        lambda session: {
            row[0]: (row[1], row[0])
            for row in session.execute(
                select(Person.id, Person.created_at).where(Person.merged_into_id.is_(None))
            )
        }
    )
    result = cluster(
        members,
        model,
        exclusions=exclusions,
        max_key_records=matcher.max_key_records,
        progress=(lambda done, total: progress("scoring pairs", done, total)) if progress else None,
    )
    return _Snapshot(members=members, result=result, ages=ages)


def _sub(
    snapshot: _Snapshot, indexes: Sequence[int]
) -> tuple[list[Member], ClusterResult, dict[int, int]]:
    """One group's members and clusters, renumbered; and global cluster -> local cluster."""
    members = [snapshot.members[i] for i in indexes]
    local_of = {global_index: local for local, global_index in enumerate(indexes)}
    numbers: dict[int, int] = {}
    clusters: list[list[int]] = []
    for global_index in indexes:
        number = snapshot.result.cluster_of[global_index]
        if number not in numbers:
            numbers[number] = len(clusters)
            clusters.append([])
        clusters[numbers[number]].append(local_of[global_index])
    cluster_of = [0] * len(members)
    for number, local_indexes in enumerate(clusters):
        for local in local_indexes:
            cluster_of[local] = number
    return members, ClusterResult(clusters=clusters, cluster_of=cluster_of), numbers


def _unchanged(session: Session, members: Sequence[Member]) -> bool:
    """The records still belong where the snapshot saw them, and their persons hold no others."""
    ids = [member.record_id for member in members]
    where = {
        row[0]: (row[1], row[2])
        for start in range(0, len(ids), 500)
        for row in session.execute(
            select(SourceRecord.id, SourceRecord.person_id, SourceRecord.pinned).where(
                SourceRecord.id.in_(ids[start : start + 500])
            )
        )
    }
    if any(where.get(m.record_id, (None,))[0] != m.person_id for m in members):
        return False
    if any(pinned and not m.pinned for m in members if (pinned := where[m.record_id][1])):
        return False
    held = matching_repo.record_ids_of_persons(session, {m.person_id for m in members})
    return sum(len(records) for records in held.values()) == len(members)


def _batches(groups: Sequence[list[int]]) -> Iterator[list[list[int]]]:
    batch: list[list[int]] = []
    size = 0
    for group in groups:
        batch.append(group)
        size += len(group)
        if size >= RECORDS_PER_TRANSACTION:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def execute(
    db: Database,
    matcher: Matcher,
    run_id: uuid.UUID,
    *,
    progress: Progress | None = None,
    clock: Callable[[], datetime] = utcnow,
    should_stop: Callable[[], bool] | None = None,
) -> MatcherRun:
    """Carry out a claimed run to the end (see the module docstring); the finished row.

    When `should_stop` says so between transactions (the process is shutting down), the run is
    queued again as it stands and returned: the next process to claim it starts it over.
    """
    model = db.read(lambda session: matcher.for_session(session).model)

    def started(session: Session) -> None:
        run = get_run(session, run_id)
        run.model_version = model.version
        run.heartbeat_at = clock()

    db.write(started)
    try:
        snapshot = _snapshot(db, matcher, model, progress)
        groups = _groups(snapshot.members, snapshot.result)
        total = len(snapshot.members)

        def sized(session: Session) -> None:
            run = get_run(session, run_id)
            run.records_total = total
            run.heartbeat_at = clock()

        db.write(sized)
        person_of_cluster: dict[int, uuid.UUID] = {}
        done = 0
        for batch in _batches(groups):
            if should_stop is not None and should_stop():
                return db.write(lambda session: _requeue(session, run_id))
            outcome = db.write(
                lambda session, batch=batch: _apply_batch(  # type: ignore[misc]
                    session, snapshot, batch, matcher, model, run_id, clock()
                )
            )
            person_of_cluster.update(outcome)
            done += sum(len(group) for group in batch)
            if progress is not None:
                progress("applying", done, total)
        closed, opened = _settle_all_reviews(db, snapshot, person_of_cluster, model, clock)

        def finished(session: Session) -> MatcherRun:
            run = get_run(session, run_id)
            run.status = "succeeded"
            run.records_done = total
            run.reviews_closed += closed
            run.reviews_opened += opened
            run.finished_at = clock()
            run.heartbeat_at = run.finished_at
            return run

        return db.write(finished)
    except Exception as error:
        log.exception("matcher run failed", extra={"run_id": str(run_id)})
        why = f"{type(error).__name__}: the run stopped; see the server log"

        def failed(session: Session) -> MatcherRun:
            run = get_run(session, run_id)
            _fail(run, clock(), why)
            return run

        db.write(failed)
        raise


def _requeue(session: Session, run_id: uuid.UUID) -> MatcherRun:
    run = get_run(session, run_id)
    run.status = "queued"
    return run


def _apply_batch(
    session: Session,
    snapshot: _Snapshot,
    batch: Sequence[Sequence[int]],
    matcher: Matcher,
    model: MatchModel,
    run_id: uuid.UUID,
    now: datetime,
) -> dict[int, uuid.UUID]:
    """Apply one transaction's groups; the person each (global) cluster now is."""
    work = PersonWork(session=session, policy=matcher.policy, now=now, touched={}, events=[])
    person_of_cluster: dict[int, uuid.UUID] = {}
    applied = Applied()
    changed_groups = 0
    for indexes in batch:
        members, result, numbers = _sub(snapshot, indexes)
        chosen = plan(members, result.clusters, age=lambda p: snapshot.ages.get(p, (now, p)))
        if not chosen.changes_anything:
            for number, local in numbers.items():
                target = chosen.target[local]
                if target is not None:
                    person_of_cluster[number] = target
            continue
        # Lock the persons first, then check nothing moved since the snapshot.
        for person_id in sorted({m.person_id for m in members}):
            work.person(person_id)
        if not _unchanged(session, members):
            continue
        changed_groups += 1
        done, final = apply_plan(work, members, result, chosen, model=model, method="rerun")
        applied.add(done)
        for number, local in numbers.items():
            person_of_cluster[number] = final[local]
    work.finish()
    run = get_run(session, run_id)
    run.records_done += sum(len(group) for group in batch)
    run.groups_changed += changed_groups
    run.records_moved += applied.records_moved
    run.persons_merged += applied.persons_merged
    run.persons_split += applied.persons_split
    run.heartbeat_at = now
    return person_of_cluster


def _settle_all_reviews(
    db: Database,
    snapshot: _Snapshot,
    person_of_cluster: dict[int, uuid.UUID],
    model: MatchModel,
    clock: Callable[[], datetime],
) -> tuple[int, int]:
    """Close answered review items and open needed ones, over every cluster the run placed."""
    placed = [
        index
        for index in range(len(snapshot.members))
        if snapshot.result.cluster_of[index] in person_of_cluster
    ]
    members = [snapshot.members[i] for i in placed]
    local_of = {global_index: local for local, global_index in enumerate(placed)}
    review = {
        key: type(edge)(local_of[edge.left], local_of[edge.right], edge.pair)
        for key, edge in snapshot.result.review.items()
        if edge.left in local_of and edge.right in local_of
    }
    numbers = sorted(person_of_cluster)
    renumber = {number: local for local, number in enumerate(numbers)}
    result = ClusterResult(
        clusters=[],
        cluster_of=[renumber[snapshot.result.cluster_of[i]] for i in placed],
        review={
            (renumber[a], renumber[b]): edge
            for (a, b), edge in review.items()
            if a in renumber and b in renumber
        },
    )
    persons = [person_of_cluster[number] for number in numbers]

    placed_ids = {member.record_id for member in members}

    def settle(session: Session) -> tuple[int, int]:
        pending = [
            decision
            for decision in session.scalars(
                select(MatchDecision).where(MatchDecision.status == PENDING)
            )
            if decision.source_record_id in placed_ids
        ]
        return settle_reviews(
            session, members, result, persons, model=model, now=clock(), pending=pending
        )

    return db.write(settle)
