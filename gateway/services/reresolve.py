"""Re-resolution: cluster records again with a model, and move persons to follow the result.

`cluster` is the one rule, used by the full re-run (`rerun`) and by the online re-evaluation of
the persons an update touches: candidate pairs are the pairs of records sharing a key (a key
held by more than `max_key_records` records nominates none); a pair is an edge when a strong
identifier agrees with no guard against it, or its match weight is in the link band, and no strong
identifier conflicts. Edges are taken strongest first (identifier links, then by weight, then by
record ids) and join two clusters unless that would put apart records together:

* two records a person said are not the same (an exclusion);
* two different values of one strong identifier kind and none in common;
* pinned records of two different persons (a person's decision outranks the model).

Pinned records of one person always stay together. The result depends only on the records, the
model and those human decisions, never on the order records arrived in.

`plan` then maps clusters onto the persons that exist: each cluster keeps the id of the person
holding most of its records (a person's pinned records name it outright; ties go to the older
person), so survivors keep their ids; a cluster no person is left for is a new person split
from the one it held most records of; a person left with no records is merged into the cluster
that took most of them.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.matching import (
    STRONG_IDENTIFIER_KINDS,
    Band,
    MatchModel,
    MatchView,
    PairScore,
    key_cap,
    match_keys,
    score,
    view_of,
)
from gateway.models import MatchDecision, Person, SourceRecord
from gateway.repositories import matching as matching_repo
from gateway.repositories import persons as persons_repo
from gateway.services.ingest import redirect_merged
from gateway.services.review import PENDING, PersonWork

__all__ = [
    "MEMBER_COLUMNS",
    "ClusterResult",
    "Member",
    "Plan",
    "apply_plan",
    "cluster",
    "member_of",
    "plan",
    "settle_reviews",
]

#: A person with more records than this is not re-clustered inside a push (its pairs would grow
#: with the square of its records); a re-run takes care of it.
MAX_REEVALUATED_RECORDS: Final = 50
#: Status of a pending review item that new evidence answered (the record and the candidate
#: are now one person, or the model no longer thinks they might be).
SETTLED: Final = "superseded"


@dataclass(frozen=True, slots=True)
class Member:
    """A source record as the clustering sees it."""

    record_id: uuid.UUID
    person_id: uuid.UUID
    pinned: bool
    """A person put it there, or its person holds an identifier the central system assigned:
    either way the model does not move it."""
    view: MatchView
    created_at: datetime
    """When the record was first stored: of two clusters with an equal claim on a person, the
    one holding its oldest record keeps it."""


@dataclass(frozen=True, slots=True)
class Edge:
    left: int
    right: int
    pair: PairScore


@dataclass
class ClusterResult:
    """Clusters (member indexes, each sorted) and the evidence between clusters."""

    clusters: list[list[int]]
    cluster_of: list[int]
    # Best pair between two clusters that is worth a person's look: a possible match, or a link
    # a strong identifier conflict kept apart. Keyed by the two cluster numbers, smaller first.
    review: dict[tuple[int, int], Edge] = field(default_factory=dict)


class _Clusters:
    """Union-find over members, each root holding what decides whether two may join."""

    def __init__(self, members: Sequence[Member], exclusions: Mapping[uuid.UUID, set[uuid.UUID]]):
        n = len(members)
        self.parent = list(range(n))
        self.records: list[set[uuid.UUID]] = [{m.record_id} for m in members]
        self.forbidden: list[set[uuid.UUID]] = [
            set(exclusions.get(m.record_id, ())) for m in members
        ]
        self.strong: list[dict[str, set[str]]] = [
            {
                kind: {m.view.identifiers[kind]}
                for kind in STRONG_IDENTIFIER_KINDS
                if kind in m.view.identifiers
            }
            for m in members
        ]
        self.pinned: list[uuid.UUID | None] = [m.person_id if m.pinned else None for m in members]

    def find(self, index: int) -> int:
        root = index
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[index] != root:
            self.parent[index], index = root, self.parent[index]
        return root

    def refusal(self, a: int, b: int) -> str | None:
        """Why the clusters of roots a and b may not join (None if they may)."""
        if self.forbidden[a] & self.records[b] or self.forbidden[b] & self.records[a]:
            return "excluded"
        for kind, values in self.strong[a].items():
            other = self.strong[b].get(kind)
            if other and values.isdisjoint(other):
                return "conflict"
        if (
            self.pinned[a] is not None
            and self.pinned[b] is not None
            and self.pinned[a] != self.pinned[b]
        ):
            return "pinned"
        return None

    def join(self, a: int, b: int) -> int:
        if len(self.records[a]) < len(self.records[b]):
            a, b = b, a
        self.parent[b] = a
        self.records[a] |= self.records[b]
        self.forbidden[a] |= self.forbidden[b]
        for kind, values in self.strong[b].items():
            self.strong[a].setdefault(kind, set()).update(values)
        self.pinned[a] = self.pinned[a] or self.pinned[b]
        self.records[b], self.forbidden[b], self.strong[b] = set(), set(), {}
        return a


def _links(pair: PairScore) -> bool:
    return not pair.identifiers_conflict and (pair.links_on_identifier or pair.band is Band.LINK)


def _reviewable(pair: PairScore) -> bool:
    if pair.band is Band.POSSIBLE:
        return True
    return bool(pair.identifiers_conflict) and (pair.band is Band.LINK or pair.links_on_identifier)


def candidate_pairs(members: Sequence[Member], *, max_key_records: int) -> list[tuple[int, int]]:
    """Every pair of members sharing a key few enough members hold (`key_cap`)."""
    blocks: defaultdict[str, list[int]] = defaultdict(list)
    for index, member in enumerate(members):
        for key in match_keys(member.view):
            blocks[key].append(index)
    pairs: set[tuple[int, int]] = set()
    for key, indexes in blocks.items():
        if 1 < len(indexes) <= key_cap(key, max_key_records):
            pairs.update(itertools.combinations(indexes, 2))
    return sorted(pairs)


def cluster(
    members: Sequence[Member],
    model: MatchModel,
    *,
    exclusions: Iterable[tuple[uuid.UUID, uuid.UUID]] = (),
    max_key_records: int,
    progress: Callable[[int, int], None] | None = None,
) -> ClusterResult:
    """Cluster members by the model under the human constraints (see the module docstring)."""
    apart: defaultdict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for first, second in exclusions:
        apart[first].add(second)
        apart[second].add(first)
    state = _Clusters(members, apart)
    # A person's pinned records are that person's whatever the model says.
    pinned_first: dict[uuid.UUID, int] = {}
    for index, member in enumerate(members):
        if member.pinned:
            first_pinned = pinned_first.setdefault(member.person_id, index)
            if first_pinned != index:
                state.join(state.find(first_pinned), state.find(index))
    pairs = candidate_pairs(members, max_key_records=max_key_records)
    edges: list[Edge] = []
    considered: list[Edge] = []
    for done, (left, right) in enumerate(pairs):
        pair = score(members[left].view, members[right].view, model)
        if _links(pair):
            edges.append(Edge(left, right, pair))
        elif _reviewable(pair):
            considered.append(Edge(left, right, pair))
        if progress is not None and done % 10_000 == 0:
            progress(done, len(pairs))
    edges.sort(
        key=lambda edge: (
            not edge.pair.links_on_identifier,
            -edge.pair.match_weight,
            members[edge.left].record_id,
            members[edge.right].record_id,
        )
    )
    for edge in edges:
        a, b = state.find(edge.left), state.find(edge.right)
        if a == b:
            continue
        refusal = state.refusal(a, b)
        if refusal is None:
            state.join(a, b)
        elif refusal in ("conflict", "pinned"):
            # Kept apart by an identifier or by people's decisions, but the model would link
            # them: a person should look (pairs a person said differ are dropped below).
            considered.append(edge)
    roots: dict[int, list[int]] = defaultdict(list)
    for index in range(len(members)):
        roots[state.find(index)].append(index)
    ordered = sorted(roots.values(), key=lambda indexes: members[indexes[0]].record_id)
    cluster_of = [0] * len(members)
    for number, indexes in enumerate(ordered):
        for index in indexes:
            cluster_of[index] = number
    result = ClusterResult(clusters=ordered, cluster_of=cluster_of)
    for edge in considered:
        a, b = cluster_of[edge.left], cluster_of[edge.right]
        if a == b:
            continue
        # A pair a person already said are different never goes back to review.
        if members[edge.right].record_id in apart.get(members[edge.left].record_id, ()):
            continue
        key = (min(a, b), max(a, b))
        held = result.review.get(key)
        if held is None or edge.pair.match_weight > held.pair.match_weight:
            result.review[key] = edge
    return result


# ------------------------------------------------------------------------------------------------
# Mapping clusters onto persons.
# ------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What it takes to make the persons follow the clusters."""

    target: list[uuid.UUID | None]
    """Per cluster: the person it keeps, or None for a new person."""
    split_from: dict[int, uuid.UUID]
    """Per new-person cluster: the person most of its records came from."""
    merged_into: dict[uuid.UUID, int]
    """A person left with no records: the cluster it merges into."""
    moves: int
    """Records whose person changes."""

    @property
    def changes_anything(self) -> bool:
        return self.moves > 0


def plan(
    members: Sequence[Member],
    clusters: Sequence[Sequence[int]],
    *,
    age: Callable[[uuid.UUID], Any],
    movers: Collection[uuid.UUID] = (),
) -> Plan:
    """Which person each cluster is (see the module docstring); `age` orders persons, oldest
    first, for ties. Of two clusters with an equal claim, the one holding fewer of `movers` (the
    records whose change prompted this) keeps the person: the record that changed leaves."""
    claims: list[tuple[Any, ...]] = []
    for number, indexes in enumerate(clusters):
        held = Counter(members[i].person_id for i in indexes)
        pinned = {members[i].person_id for i in indexes if members[i].pinned}
        oldest: dict[uuid.UUID, datetime] = {}
        for i in indexes:
            member = members[i]
            if member.person_id not in oldest or member.created_at < oldest[member.person_id]:
                oldest[member.person_id] = member.created_at
        staying = Counter(
            members[i].person_id for i in indexes if members[i].record_id not in movers
        )
        for person_id, count in held.items():
            claims.append(
                (
                    person_id not in pinned,
                    -count,
                    -staying[person_id],
                    age(person_id),
                    oldest[person_id],
                    number,
                    person_id,
                )
            )
    claims.sort()
    target: list[uuid.UUID | None] = [None] * len(clusters)
    taken: set[uuid.UUID] = set()
    for _unpinned, _count, _staying, _age, _oldest, number, person_id in claims:
        if target[number] is None and person_id not in taken:
            target[number] = person_id
            taken.add(person_id)
    split_from: dict[int, uuid.UUID] = {}
    for number, indexes in enumerate(clusters):
        if target[number] is None:
            held = Counter(members[i].person_id for i in indexes)
            split_from[number] = min(held, key=lambda p: (-held[p], age(p)))
    merged_into: dict[uuid.UUID, int] = {}
    everyone = {member.person_id for member in members}
    for person_id in sorted(everyone - taken):
        where = Counter(
            number
            for number, indexes in enumerate(clusters)
            for i in indexes
            if members[i].person_id == person_id
        )
        merged_into[person_id] = min(where, key=lambda n: (-where[n], n))
    moves = sum(
        1
        for number, indexes in enumerate(clusters)
        for i in indexes
        if members[i].person_id != target[number]
    )
    return Plan(target=target, split_from=split_from, merged_into=merged_into, moves=moves)


@dataclass
class Applied:
    records_moved: int = 0
    persons_merged: int = 0
    persons_split: int = 0
    reviews_closed: int = 0
    reviews_opened: int = 0

    def add(self, other: Applied) -> None:
        self.records_moved += other.records_moved
        self.persons_merged += other.persons_merged
        self.persons_split += other.persons_split
        self.reviews_closed += other.reviews_closed
        self.reviews_opened += other.reviews_opened


def apply_plan(
    work: PersonWork,
    members: Sequence[Member],
    result: ClusterResult,
    chosen: Plan,
    *,
    model: MatchModel,
    method: str,
) -> tuple[Applied, list[uuid.UUID]]:
    """Move records, create split persons, merge emptied ones, rebuild their golden records and
    emit person.split / person.merged / person.updated; one automatic decision per moved record.
    Returns the counts and the person each cluster now is."""
    session, now = work.session, work.now
    applied = Applied()
    persons: dict[uuid.UUID, Person] = {}
    for held_by in sorted({m.person_id for m in members}):
        persons[held_by] = work.person(held_by)
    final: list[uuid.UUID] = []
    for kept in chosen.target:
        if kept is None:
            new = Person(
                id=uuid.uuid4(), record={}, provenance={}, version=0, created_at=now, updated_at=now
            )
            persons_repo.add(session, new)
            work.touched[new.id] = new
            persons[new.id] = new
            final.append(new.id)
        else:
            final.append(kept)
    session.flush()
    moved: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    gained: set[uuid.UUID] = set()
    lost: set[uuid.UUID] = set()
    for number, indexes in enumerate(result.clusters):
        for index in indexes:
            member = members[index]
            if member.person_id != final[number]:
                moved[final[number]].append(member.record_id)
                gained.add(final[number])
                lost.add(member.person_id)
    for person_id, record_ids in moved.items():
        matching_repo.move_records(session, source_record_ids=record_ids, to_person_id=person_id)
    applied.records_moved = sum(len(ids) for ids in moved.values())
    merged: defaultdict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for loser_id, number in chosen.merged_into.items():
        loser, survivor = persons[loser_id], persons[final[number]]
        redirect_merged(session, loser=loser, survivor=survivor, now=now)
        loser.version += 1
        merged[survivor.id].append(loser_id)
    applied.persons_merged = len(chosen.merged_into)
    applied.persons_split = len(chosen.split_from)
    for number, person_id in enumerate(final):
        person = persons[person_id]
        if number in chosen.split_from:
            work.refresh(
                person, event="person.split", split_from_person_id=str(chosen.split_from[number])
            )
        elif person_id in merged:
            work.refresh(
                person,
                event="person.merged",
                merged_person_ids=[str(loser) for loser in sorted(merged[person_id])],
            )
        elif person_id in gained or person_id in lost:
            work.refresh(person)
    rows = []
    for number, indexes in enumerate(result.clusters):
        for index in indexes:
            member = members[index]
            if member.person_id == final[number]:
                continue
            rows.append(
                _automatic_decision(
                    record_id=member.record_id,
                    person_id=final[number],
                    candidate_person_id=member.person_id,
                    method=method,
                    band=Band.LINK if len(indexes) > 1 else Band.NEW,
                    model=model,
                    match_weight=None,
                    explanation={
                        "stage": method,
                        "model_version": model.version,
                        "moved_from_person_id": str(member.person_id),
                        "cluster_records": len(indexes),
                    },
                    status="decided",
                    now=now,
                )
            )
    matching_repo.add_decisions(session, rows)
    return applied, final


def _automatic_decision(
    *,
    record_id: uuid.UUID,
    person_id: uuid.UUID,
    candidate_person_id: uuid.UUID | None,
    method: str,
    band: Band,
    model: MatchModel,
    match_weight: float | None,
    explanation: dict[str, Any],
    status: str,
    now: datetime,
) -> dict[str, Any]:
    """A match-decision row the re-resolution wrote (no person decided it)."""
    return {
        "id": uuid.uuid4(),
        "source_record_id": record_id,
        "kind": "automatic",
        "method": method,
        "band": band.value,
        "model_version": model.version,
        "person_id": person_id,
        "candidate_person_id": candidate_person_id,
        "match_weight": match_weight,
        "explanation": explanation,
        "status": status,
        "created_at": now,
        "decided_by": None,
        "reviewed_at": None,
        "reviewed_by": None,
        "note": None,
    }


def settle_reviews(
    session: Session,
    members: Sequence[Member],
    result: ClusterResult,
    person_of_cluster: Sequence[uuid.UUID],
    *,
    model: MatchModel,
    now: datetime,
    pending: Sequence[MatchDecision] | None = None,
) -> tuple[int, int]:
    """Close the pending review items the clusters answer; open one per pair of clusters that
    needs a person's look and has none. (closed, opened)."""
    index_of = {member.record_id: i for i, member in enumerate(members)}
    if pending is None:
        pending = list(
            session.scalars(
                select(MatchDecision).where(
                    MatchDecision.status == PENDING,
                    MatchDecision.source_record_id.in_(sorted(index_of)),
                )
            )
        )
    cluster_of_person = {person_id: n for n, person_id in enumerate(person_of_cluster)}
    covered: set[tuple[int, int]] = set()
    closed = 0
    for decision in pending:
        own = result.cluster_of[index_of[decision.source_record_id]]
        candidate = decision.candidate_person_id
        survivor = matching_repo.survivor_of(session, candidate) if candidate else None
        other = cluster_of_person.get(survivor.id) if survivor is not None else None
        if other is None:
            continue  # its candidate is not among these records: nothing here answers it
        key = (min(own, other), max(own, other))
        if own == other or key not in result.review:
            decision.status = SETTLED
            decision.reviewed_at = now
            decision.note = f"settled by the matcher (model {model.version})"
            closed += 1
        else:
            covered.add(key)
    rows = []
    for key, edge in sorted(result.review.items()):
        if key in covered:
            continue
        left, right = members[edge.left], members[edge.right]
        # The item is about the newer record's person joining the older one's.
        asking, answer = (right, left) if right.record_id > left.record_id else (left, right)
        candidate_person = person_of_cluster[result.cluster_of[index_of[answer.record_id]]]
        rows.append(
            _automatic_decision(
                record_id=asking.record_id,
                person_id=person_of_cluster[result.cluster_of[index_of[asking.record_id]]],
                candidate_person_id=candidate_person,
                method="new",
                band=Band.POSSIBLE,
                model=model,
                match_weight=edge.pair.match_weight,
                explanation={
                    "stage": "rerun",
                    "model_version": model.version,
                    "best": {
                        "person_id": str(candidate_person),
                        "source_record_id": str(answer.record_id),
                        **edge.pair.as_dict(),
                    },
                    "candidates": [],
                },
                status=PENDING,
                now=now,
            )
        )
    matching_repo.add_decisions(session, rows)
    return closed, len(rows)


#: What a member is read from, in the order `member_of` takes it.
MEMBER_COLUMNS: Final = (
    SourceRecord.id,
    SourceRecord.person_id,
    SourceRecord.pinned,
    SourceRecord.canonical["person"],
    SourceRecord.created_at,
)


def member_of(row: Sequence[Any], assigned: Mapping[uuid.UUID, Any]) -> Member:
    """A row of `MEMBER_COLUMNS` as a member; a record whose person holds centrally assigned
    identifiers (`assigned`: person -> them) counts as pinned."""
    return Member(
        record_id=row[0],
        person_id=row[1],
        pinned=row[2] or bool(assigned.get(row[1])),
        view=view_of(row[3]),
        created_at=row[4],
    )


def load_members(
    session: Session,
    record_ids: Iterable[uuid.UUID],
    assigned: Mapping[uuid.UUID, Any],
) -> list[Member]:
    """These records as members (under their current person), in record-id order; `assigned`
    holds each person's centrally assigned identifiers."""
    ids = sorted(set(record_ids))
    members: list[Member] = []
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(*MEMBER_COLUMNS).where(SourceRecord.id.in_(ids[start : start + 500]))
        )
        members.extend(member_of(row, assigned) for row in rows)
    members.sort(key=lambda member: member.record_id)
    return members


def reevaluate(
    work: PersonWork,
    person_ids: Iterable[uuid.UUID],
    *,
    model: MatchModel,
    max_key_records: int,
    method: str,
    movers: Collection[uuid.UUID] = (),
) -> Applied:
    """Cluster the records of these persons again and apply the result (nothing if it agrees);
    `movers` are the records whose change prompted it (see `plan`)."""
    session = work.session
    session.flush()
    # A person with one record cannot split; joining persons is the resolver's (it merges).
    held = {
        person_id: records
        for person_id, records in matching_repo.record_ids_of_persons(session, person_ids).items()
        if 1 < len(records) <= MAX_REEVALUATED_RECORDS
    }
    if not held:
        return Applied()
    # One statement locks them all; `work.person` then finds each in hand.
    work.touched.update(persons_repo.get_many_for_update(session, held))
    persons = {person_id: work.person(person_id) for person_id in held}
    members = load_members(
        session,
        (r for ids in held.values() for r in ids),
        {p: person.assigned_identifiers for p, person in persons.items()},
    )
    if len(members) < 2:
        return Applied()
    exclusions = matching_repo.exclusions_among(session, (m.record_id for m in members))
    result = cluster(members, model, exclusions=exclusions, max_key_records=max_key_records)
    ages = {p: (persons[p].created_at, p) for p in {m.person_id for m in members}}
    chosen = plan(members, result.clusters, age=ages.__getitem__, movers=movers)
    if not chosen.changes_anything:
        return Applied()
    applied, final = apply_plan(work, members, result, chosen, model=model, method=method)
    applied.reviews_closed, applied.reviews_opened = settle_reviews(
        session, members, result, final, model=model, now=work.now
    )
    return applied
