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
from typing import Any, Final

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.errors import Conflict, NotFound
from gateway.matching import MatchModel, match_keys
from gateway.models import MatchDecision, MatcherRun, MatchExclusion, Person, SourceRecord, utcnow
from gateway.repositories import matching as matching_repo
from gateway.repositories import persons as persons_repo
from gateway.repositories import source_records as source_records_repo
from gateway.services import audit
from gateway.services.clients import Principal
from gateway.services.identity import Matcher, key_stripes
from gateway.services.reresolve import (
    MEMBER_COLUMNS,
    Applied,
    ClusterResult,
    Edge,
    Member,
    Plan,
    apply_plan,
    cluster,
    member_of,
    plan,
    settle_reviews,
)
from gateway.services.review import PENDING, PersonWork

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_STATUSES",
    "Claim",
    "RunTakenOver",
    "any_waiting",
    "claim_next",
    "execute",
    "get_run",
    "list_runs",
    "request_run",
]

RECORDS_PER_TRANSACTION: Final = 1000
#: A running run whose process has not reported for this long is taken to have died.
STALE_AFTER: Final = timedelta(minutes=5)
#: How often a running run reports that its process is alive (well inside `STALE_AFTER`).
HEARTBEAT_EVERY: Final = timedelta(seconds=30)
ACTIVE_STATUSES: Final = ("queued", "running")
ACTIVE_SLOT: Final = "active"
_READ_BATCH: Final = 2000
_IN_CHUNK: Final = 500

Progress = Callable[[str, int, int], None]
#: A run's counters before it has done anything (a re-claimed run starts over from these).
_NO_PROGRESS: Final = {
    "records_total": 0,
    "records_done": 0,
    "groups_changed": 0,
    "records_moved": 0,
    "persons_merged": 0,
    "persons_split": 0,
    "reviews_closed": 0,
    "reviews_opened": 0,
}


class RunTakenOver(RuntimeError):
    """Another process claimed this run (this one was taken for dead): stop without writing."""


@dataclass(frozen=True)
class Claim:
    run_id: uuid.UUID
    token: uuid.UUID


def request_run(
    session: Session, *, principal: Principal | None, now: datetime, start: bool = False
) -> MatcherRun:
    """Queue a run (or, with `start`, claim it at once for the caller); Conflict while another
    is queued or running (one at a time)."""
    busy = session.scalar(
        select(MatcherRun).where(MatcherRun.status.in_(ACTIVE_STATUSES)).with_for_update()
    )
    if busy is not None and not _stale(busy, now):
        raise Conflict(f"matcher run {busy.id} is {busy.status}; wait for it to finish")
    if busy is not None:
        _fail(busy, now, "its process stopped reporting; superseded by a new run")
        session.flush()
    run = MatcherRun(
        id=uuid.uuid4(),
        status="running" if start else "queued",
        slot=ACTIVE_SLOT,
        claim=uuid.uuid4() if start else None,
        started_at=now if start else None,
        heartbeat_at=now if start else None,
        **_NO_PROGRESS,
        requested_by=principal.client_id if principal else None,
        created_at=now,
    )
    session.add(run)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Another request queued one between our look and our insert (the slot is unique).
        raise Conflict("another matcher run was just queued; wait for it to finish") from None
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
    run.slot = None
    run.claim = None
    run.finished_at = now
    run.failure = why[:500]


def any_waiting(session: Session) -> bool:
    """Whether a run is queued or running (a read: the idle check takes no write lock)."""
    return session.scalar(select(MatcherRun.id).where(MatcherRun.slot == ACTIVE_SLOT)) is not None


def claim_next(session: Session, *, now: datetime) -> Claim | None:
    """Take a queued run (or one whose process died) for this process; None if there is none.
    The run starts over: its counters go back to zero."""
    candidates = session.scalars(
        select(MatcherRun.id)
        .where(MatcherRun.status.in_(ACTIVE_STATUSES))
        .order_by(MatcherRun.created_at)
    ).all()
    for run_id in candidates:
        token = uuid.uuid4()
        claimed = session.execute(
            update(MatcherRun)
            .where(
                MatcherRun.id == run_id,
                MatcherRun.status.in_(ACTIVE_STATUSES),
                or_(
                    MatcherRun.status == "queued",
                    MatcherRun.heartbeat_at < now - STALE_AFTER,
                ),
            )
            .values(
                status="running",
                claim=token,
                started_at=now,
                heartbeat_at=now,
                **_NO_PROGRESS,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) == 1:
            return Claim(run_id=run_id, token=token)
    return None


def _held(session: Session, claim: Claim) -> MatcherRun:
    """The run, still this process's; RunTakenOver if another process claimed it since."""
    run = session.get(MatcherRun, claim.run_id, with_for_update=True)
    if run is None or run.claim != claim.token or run.status != "running":
        raise RunTakenOver(str(claim.run_id))
    return run


# ------------------------------------------------------------------------------------------------
# Carrying a run out.
# ------------------------------------------------------------------------------------------------


@dataclass
class _Snapshot:
    members: list[Member]
    result: ClusterResult
    ages: dict[uuid.UUID, tuple[datetime, uuid.UUID]]
    versions: dict[uuid.UUID, int]
    exclusions: set[tuple[uuid.UUID, uuid.UUID]]
    assigned: dict[uuid.UUID, Any]


def _read_members(
    db: Database, progress: Progress | None
) -> tuple[list[Member], dict[uuid.UUID, int], dict[uuid.UUID, Any]]:
    def read(session: Session) -> tuple[list[Member], dict[uuid.UUID, int], dict[uuid.UUID, Any]]:
        total = session.scalar(select(func.count()).select_from(SourceRecord)) or 0
        assigned = {
            row[0]: row[1]
            for row in session.execute(
                select(Person.id, Person.assigned_identifiers).where(
                    Person.assigned_identifiers.is_not(None)
                )
            )
            if row[1]
        }
        statement = select(*MEMBER_COLUMNS, SourceRecord.version).order_by(SourceRecord.id)
        members = []
        versions: dict[uuid.UUID, int] = {}
        for row in session.execute(statement.execution_options(yield_per=_READ_BATCH)):
            members.append(member_of(row, assigned))
            versions[row[0]] = row[5]
            if progress is not None and len(members) % _READ_BATCH == 0:
                progress("reading records", len(members), total)
        if progress is not None:
            progress("reading records", len(members), len(members))
        return members, versions, assigned

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
    members, versions, assigned = _read_members(db, progress)
    exclusions = db.read(
        lambda session: {
            (row[0], row[1])
            for row in session.execute(select(MatchExclusion.record_a, MatchExclusion.record_b))
        }
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
    return _Snapshot(
        members=members,
        result=result,
        ages=ages,
        versions=versions,
        exclusions=exclusions,
        assigned=assigned,
    )


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


def _unchanged(session: Session, snapshot: _Snapshot, members: Sequence[Member]) -> bool:
    """Nothing the group's clusters rest on changed since the snapshot: each record's person,
    pin and version, the persons' other records and assigned identifiers, and the "not the same
    person" pairs among the records."""
    ids = [member.record_id for member in members]
    where = {
        row[0]: (row[1], row[2], row[3])
        for start in range(0, len(ids), _IN_CHUNK)
        for row in session.execute(
            select(
                SourceRecord.id, SourceRecord.person_id, SourceRecord.pinned, SourceRecord.version
            ).where(SourceRecord.id.in_(ids[start : start + _IN_CHUNK]))
        )
    }
    persons = {member.person_id for member in members}
    assigned = {
        row[0]: row[1]
        for row in session.execute(
            select(Person.id, Person.assigned_identifiers).where(Person.id.in_(sorted(persons)))
        )
        if row[1]
    }
    for member in members:
        found = where.get(member.record_id)
        if found is None:
            return False
        person_id, pinned, version = found
        if person_id != member.person_id or version != snapshot.versions[member.record_id]:
            return False
        if (pinned or person_id in assigned) != member.pinned:
            return False
    if assigned != {p: snapshot.assigned[p] for p in persons if p in snapshot.assigned}:
        return False
    held = matching_repo.record_ids_of_persons(session, persons)
    if sum(len(records) for records in held.values()) != len(members):
        return False
    inside = set(ids)
    before = {pair for pair in snapshot.exclusions if pair[0] in inside and pair[1] in inside}
    return matching_repo.exclusions_among(session, ids) == before


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


class _Heartbeat:
    """Reports progress to the caller, and to the run's row now and then (and so notices, at
    the latest then, that another process took the run over)."""

    def __init__(
        self,
        db: Database,
        claim: Claim,
        progress: Progress | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.db, self.claim, self.progress, self.clock = db, claim, progress, clock
        self.last = clock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)
        now = self.clock()
        if now - self.last >= HEARTBEAT_EVERY:
            self.last = now
            self.db.write(self._beat)

    def _beat(self, session: Session) -> None:
        _held(session, self.claim).heartbeat_at = self.clock()


def execute(
    db: Database,
    matcher: Matcher,
    claim: Claim,
    *,
    progress: Progress | None = None,
    clock: Callable[[], datetime] = utcnow,
    should_stop: Callable[[], bool] | None = None,
    rekey: bool = False,
) -> MatcherRun | None:
    """Carry out a claimed run to the end (see the module docstring); the finished row, or None
    when another process took the run over (this one then stops without writing more).

    When `should_stop` says so between transactions (the process is shutting down), the run is
    queued again as it stands and returned: the next process to claim it starts it over. With
    `rekey`, every record's stored blocking keys are written again as the current key rules make
    them (after an upgrade that changed the rules, so new records find old ones by new keys).
    """
    model = db.read(lambda session: matcher.for_session(session).model)

    def started(session: Session) -> None:
        run = _held(session, claim)
        run.model_version = model.version
        run.heartbeat_at = clock()

    beat = _Heartbeat(db, claim, progress, clock)
    try:
        db.write(started)
        snapshot = _snapshot(db, matcher, model, beat)
        groups = _groups(snapshot.members, snapshot.result)
        total = len(snapshot.members)

        def sized(session: Session) -> None:
            run = _held(session, claim)
            run.records_total = total
            run.heartbeat_at = clock()

        db.write(sized)
        person_of_cluster: dict[int, uuid.UUID] = {}
        done = 0
        for batch in _batches(groups):
            if should_stop is not None and should_stop():
                return db.write(lambda session: _requeue(session, claim))
            outcome = db.write(
                lambda session, batch=batch: _apply_batch(  # type: ignore[misc]
                    session, snapshot, batch, matcher, model, claim, clock(), rekey=rekey
                )
            )
            person_of_cluster.update(outcome)
            done += sum(len(group) for group in batch)
            if progress is not None:
                progress("applying", done, total)
        closed, opened = _settle_all_reviews(db, snapshot, person_of_cluster, model, clock)

        def finished(session: Session) -> MatcherRun:
            run = _held(session, claim)
            run.status = "succeeded"
            run.slot = None
            run.claim = None
            run.records_done = total
            run.reviews_closed += closed
            run.reviews_opened += opened
            run.finished_at = clock()
            run.heartbeat_at = run.finished_at
            return run

        return db.write(finished)
    except RunTakenOver:
        log.warning(
            "matcher run taken over by another process", extra={"run_id": str(claim.run_id)}
        )
        return None
    except Exception:
        log.exception("matcher run failed", extra={"run_id": str(claim.run_id)})

        def failed(session: Session) -> None:
            run = session.get(MatcherRun, claim.run_id, with_for_update=True)
            if run is not None and run.claim == claim.token:
                _fail(run, clock(), "the run stopped on an error; see the server log")

        db.write(failed)
        raise


def _requeue(session: Session, claim: Claim) -> MatcherRun:
    run = _held(session, claim)
    run.status = "queued"
    run.claim = None
    return run


def _apply_batch(
    session: Session,
    snapshot: _Snapshot,
    batch: Sequence[Sequence[int]],
    matcher: Matcher,
    model: MatchModel,
    claim: Claim,
    now: datetime,
    *,
    rekey: bool = False,
) -> dict[int, uuid.UUID]:
    """Apply one transaction's groups; the person each (global) cluster now is."""
    run = _held(session, claim)
    if rekey:
        rewritten = [snapshot.members[i] for group in batch for i in group]
        matching_repo.delete_keys(session, (m.record_id for m in rewritten))
        matching_repo.add_keys(
            session,
            [
                {"key": key, "source_record_id": m.record_id}
                for m in rewritten
                for key in match_keys(m.view)
            ],
        )
    work = PersonWork(session=session, policy=matcher.policy, now=now, touched={}, events=[])
    person_of_cluster: dict[int, uuid.UUID] = {}
    applied = Applied()
    changed_groups = 0
    pending: list[tuple[list[Member], ClusterResult, dict[int, int], Plan]] = []
    for indexes in batch:
        members, result, numbers = _sub(snapshot, indexes)
        chosen = plan(members, result.clusters, age=lambda p: snapshot.ages.get(p, (now, p)))
        if chosen.changes_anything:
            pending.append((members, result, numbers, chosen))
            continue
        for number, local in numbers.items():
            target = chosen.target[local]
            if target is not None:
                person_of_cluster[number] = target
    if pending:
        # Ingest's order: the key stripes first, then the persons (one sorted statement).
        everyone = [member for members, *_rest in pending for member in members]
        matching_repo.lock_key_stripes(session, key_stripes(m.view for m in everyone))
        work.touched.update(
            persons_repo.get_many_for_update(session, {m.person_id for m in everyone})
        )
    for members, result, numbers, chosen in pending:
        if not _unchanged(session, snapshot, members):
            continue
        changed_groups += 1
        done, final = apply_plan(work, members, result, chosen, model=model, method="rerun")
        applied.add(done)
        for number, local in numbers.items():
            person_of_cluster[number] = final[local]
    work.finish()
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
    """Close answered review items and open needed ones, over every cluster the run placed
    whose records are still where the run left them."""

    def settle(session: Session) -> tuple[int, int]:
        placed = [
            index
            for index in range(len(snapshot.members))
            if snapshot.result.cluster_of[index] in person_of_cluster
        ]
        ids = [snapshot.members[i].record_id for i in placed]
        now_under = source_records_repo.person_ids_of(session, ids)
        moved_since = {
            snapshot.result.cluster_of[i]
            for i in placed
            if now_under.get(snapshot.members[i].record_id)
            != person_of_cluster[snapshot.result.cluster_of[i]]
        }
        placed = [i for i in placed if snapshot.result.cluster_of[i] not in moved_since]
        members = [snapshot.members[i] for i in placed]
        local_of = {global_index: local for local, global_index in enumerate(placed)}
        numbers = sorted({snapshot.result.cluster_of[i] for i in placed})
        renumber = {number: local for local, number in enumerate(numbers)}
        result = ClusterResult(
            clusters=[],
            cluster_of=[renumber[snapshot.result.cluster_of[i]] for i in placed],
            review={
                (renumber[a], renumber[b]): Edge(
                    local_of[edge.left], local_of[edge.right], edge.pair
                )
                for (a, b), edge in snapshot.result.review.items()
                if a in renumber and b in renumber
            },
        )
        persons = [person_of_cluster[number] for number in numbers]
        placed_ids = {member.record_id for member in members}
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
