"""Identity resolution inside the ingest transaction: which person a new source record is.

For each new record: candidates are the stored (and this batch's) source records sharing one of
its keys (identifiers, then blocking keys); each is scored by the match model; the record links
to every person it ties (an exact strong identifier with no conflict, or the LINK band), merging
them if there are several; a POSSIBLE best goes to the review queue under a new person; anything
else is a new person. Conflicting strong identifiers never link automatically, and pairs a person
said are different (exclusions) are never joined by a merge.
"""

from __future__ import annotations

import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from time import perf_counter
from typing import Any

from sqlalchemy.orm import Session

from gateway.matching import (
    STRONG_IDENTIFIER_KINDS,
    Band,
    MatchModel,
    MatchView,
    PairScore,
    load_model,
    match_keys,
    score,
    view_of,
)
from gateway.models import Person
from gateway.repositories import matching as matching_repo
from gateway.repositories import persons as persons_repo
from gateway.repositories import source_records as source_records_repo
from gateway.repositories.dialect import supports_row_locks
from gateway.services.golden import DEFAULT_POLICY, SurvivorshipPolicy
from gateway.services.match_models import ActiveModels
from gateway.settings import MatchingSettings, Settings

#: How many runners-up a decision's explanation lists beside the best candidate.
EXPLAINED_CANDIDATES = 5
#: Advisory-lock stripes keys are hashed into on PostgreSQL: few enough that a large batch's
#: locks fit the server's lock table, enough that small pushes rarely wait for each other.
KEY_LOCK_STRIPES = 64


@dataclass(frozen=True)
class Matcher:
    """The model and rules the ingest path resolves identities with; built once per process."""

    enabled: bool
    model: MatchModel
    policy: SurvivorshipPolicy
    max_candidates: int
    max_key_records: int
    #: Where an admin-activated model is looked up; None scores with `model` always.
    active: ActiveModels | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Matcher:
        return cls.build(settings.matching, SurvivorshipPolicy.from_settings(settings.survivorship))

    @classmethod
    def build(cls, matching: MatchingSettings, policy: SurvivorshipPolicy) -> Matcher:
        return cls(
            enabled=matching.enabled,
            model=load_model(matching.model_file),
            policy=policy,
            max_candidates=matching.max_candidates,
            max_key_records=matching.max_key_records,
            active=ActiveModels(),
        )

    def for_session(self, session: Session) -> Matcher:
        """This matcher with the model to score with in this transaction: the stored model an
        admin activated, else the configured one."""
        if self.active is None:
            return self
        model = self.active.current(session, fallback=self.model)
        return self if model is self.model else replace(self, model=model)


@lru_cache(maxsize=1)
def default_matcher() -> Matcher:
    """The packaged model with default settings (for callers given no matcher)."""
    return Matcher.build(MatchingSettings(), DEFAULT_POLICY)


def key_stripes(views: Iterable[MatchView]) -> list[int]:
    """The advisory-lock stripes these records' keys hash into, sorted (the order to take them)."""
    return sorted(
        {zlib.crc32(key.encode()) % KEY_LOCK_STRIPES for view in views for key in match_keys(view)}
    )


@dataclass(slots=True)
class _Known:
    """A source record the resolver can compare against: its view and its person."""

    view: MatchView
    person_id: uuid.UUID


@dataclass
class Resolution:
    """What to do with one new record."""

    person_id: uuid.UUID | None
    """The person to link to; None for a new person."""
    merge: list[uuid.UUID] = field(default_factory=list)
    """Other persons the record ties strongly: merged into `person_id`."""
    method: str = "new"
    band: str = Band.NEW.value
    candidate_person_id: uuid.UUID | None = None
    match_weight: float | None = None
    explanation: dict[str, Any] = field(default_factory=dict)
    pending_review: bool = False
    identifiers: tuple[str, ...] = ()
    """For an identifier link, the strong identifier kinds the record shares with its person."""


@dataclass(slots=True)
class _Scored:
    score: PairScore
    # None when scored against the golden record (a CRN the central system assigned).
    source_record_id: uuid.UUID | None


@dataclass
class _Candidates:
    """One record's scored candidates, by person."""

    best: dict[uuid.UUID, _Scored] = field(default_factory=dict)
    agree: set[uuid.UUID] = field(default_factory=set)
    # Which strong identifier kinds agreed, per person in `agree`: says how a link was made.
    agreed_kinds: dict[uuid.UUID, set[str]] = field(default_factory=dict)
    conflict: set[uuid.UUID] = field(default_factory=set)
    ranked: list[tuple[uuid.UUID, _Scored]] = field(default_factory=list)
    linkable: list[uuid.UUID] = field(default_factory=list)


def _id_or_none(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def _strong_conflict(a: MatchView, b: MatchView) -> bool:
    """Both hold a strong identifier of some kind, and the values differ."""
    return any(
        kind in a.identifiers
        and kind in b.identifiers
        and a.identifiers[kind] != b.identifiers[kind]
        for kind in STRONG_IDENTIFIER_KINDS
    )


class BatchResolver:
    """Resolves one batch's new records; candidates are fetched and locked once for the batch."""

    def __init__(self, session: Session, matcher: Matcher, *, now: datetime) -> None:
        self.session = session
        self.matcher = matcher
        self.now = now
        self.redirect: dict[uuid.UUID, uuid.UUID] = {}
        self.persons: dict[uuid.UUID, Person] = {}
        self._golden_views: dict[uuid.UUID, MatchView | None] = {}
        self._by_key: dict[str, list[uuid.UUID]] = {}
        self._known: dict[uuid.UUID, _Known] = {}
        self._batch_keys: dict[str, list[uuid.UUID]] = {}
        self._keys: dict[uuid.UUID, list[str]] = {}
        self._decisions: list[tuple[uuid.UUID, Resolution, uuid.UUID]] = []
        self._rekeyed: list[uuid.UUID] = []
        self._assigned_crns: dict[str, uuid.UUID] = {}
        self.prefetch_seconds = 0.0

    # -- candidates ---------------------------------------------------------------------------

    def lock_keys(self, views: Iterable[MatchView]) -> None:
        """Serialise writers whose records share a key, so each sees what the other stored.

        Without this, two transactions holding copies of one person would each miss the other's
        uncommitted record and make two persons. SQLite already runs one writer at a time.
        """
        matching_repo.lock_key_stripes(self.session, key_stripes(views))

    def prefetch(self, views: Sequence[MatchView]) -> None:
        """Fetch every stored record sharing a key with any of these, and lock their persons."""
        started = perf_counter()
        keys = {key for view in views for key in match_keys(view)}
        by_key, found = matching_repo.candidates_by_keys(
            self.session, keys, max_key_records=self.matcher.max_key_records
        )
        self._by_key = by_key
        for record_id, candidate in found.items():
            self._known[record_id] = _Known(view_of(candidate.person), candidate.person_id)
        # Persons holding a CRN the central system assigned, which no source record may carry.
        self._assigned_crns = persons_repo.holders_of_assigned_crns(
            self.session, {crn for view in views if (crn := view.identifiers.get("crn"))}
        )
        self.lock(
            {candidate.person_id for candidate in found.values()}
            | set(self._assigned_crns.values())
        )
        self._follow_moves(found)
        self.prefetch_seconds = perf_counter() - started

    def _follow_moves(self, found: Mapping[uuid.UUID, matching_repo.CandidateRecord]) -> None:
        """Candidates a concurrent writer moved to another person (a split, a re-run) after we
        read them and before we held their persons: read them again and lock where they are."""
        if not supports_row_locks(self.session) or not found:
            return  # SQLite runs one writer at a time: nothing moves under us.
        now_under = source_records_repo.person_ids_of(self.session, sorted(found))
        moved = [
            record_id
            for record_id, person_id in now_under.items()
            if person_id != found[record_id].person_id
        ]
        while moved:
            fresh = matching_repo.candidate_records(self.session, moved)
            for record_id, candidate in fresh.items():
                self._known[record_id] = _Known(view_of(candidate.person), candidate.person_id)
            self.lock({candidate.person_id for candidate in fresh.values()})
            # Moved again before we held the new persons? Rare; read once more until still.
            again = source_records_repo.person_ids_of(self.session, sorted(fresh))
            moved = [r for r, p in again.items() if p != fresh[r].person_id]

    def lock(self, person_ids: Iterable[uuid.UUID]) -> None:
        """Lock these persons (in id order), following merges a concurrent writer committed."""
        wanted = set(person_ids) - set(self.persons)
        while wanted:
            locked = persons_repo.get_many_for_update(self.session, wanted)
            wanted = set()
            for person in locked.values():
                self.persons[person.id] = person
                if person.merged_into_id is not None:
                    self.redirect[person.id] = person.merged_into_id
                    if person.merged_into_id not in self.persons:
                        wanted.add(person.merged_into_id)

    def person_of(self, person_id: uuid.UUID) -> uuid.UUID:
        """The surviving person for an id, after merges in this batch or committed before it."""
        seen = set()
        while person_id in self.redirect and person_id not in seen:
            seen.add(person_id)
            person_id = self.redirect[person_id]
        return person_id

    def _golden_view(self, person_id: uuid.UUID) -> MatchView | None:
        if person_id not in self._golden_views:
            person = self.persons.get(person_id)
            record = person.record if person is not None else None
            self._golden_views[person_id] = view_of(record) if record else None
        return self._golden_views[person_id]

    # -- deciding -----------------------------------------------------------------------------

    def _candidates(self, view: MatchView, *, itself: uuid.UUID | None = None) -> _Candidates:
        """Score every candidate record sharing a key with `view`; the best per person."""
        shared: Counter[uuid.UUID] = Counter()
        for key in match_keys(view):
            shared.update(self._by_key.get(key, ()))
            shared.update(self._batch_keys.get(key, ()))
        if itself is not None:
            shared.pop(itself, None)  # its own earlier version is no evidence
        found = _Candidates()
        model = self.matcher.model
        for record_id, _count in shared.most_common(self.matcher.max_candidates):
            known = self._known[record_id]
            person_id = self.person_of(known.person_id)
            pair = score(view, known.view, model)
            if pair.identifiers_conflict:
                found.conflict.add(person_id)
            strong = [kind for kind in pair.identifiers_agree if kind in STRONG_IDENTIFIER_KINDS]
            if pair.links_on_identifier:
                found.agree.add(person_id)
                found.agreed_kinds.setdefault(person_id, set()).update(strong)
            held = found.best.get(person_id)
            if held is None or pair.match_weight > held.score.match_weight:
                found.best[person_id] = _Scored(pair, record_id)
        for person_id in found.best:
            if self._conflicts_with_golden(view, person_id):
                found.conflict.add(person_id)
        self._assigned_crn_holder(view, found)
        found.ranked = sorted(found.best.items(), key=lambda item: -item[1].score.match_weight)
        found.linkable = [
            person_id
            for person_id, scored in found.ranked
            if person_id not in found.conflict
            and (scored.score.band is Band.LINK or person_id in found.agree)
        ]
        return found

    def _assigned_crn_holder(self, view: MatchView, found: _Candidates) -> None:
        """The person the central system gave this record's CRN is that person: it agrees
        outright, whatever older CRNs its source records hold, unless the golden record's
        other strong identifiers conflict with the record's."""
        crn = view.identifiers.get("crn")
        holder = self._assigned_crns.get(crn) if crn else None
        if holder is None:
            return
        person_id = self.person_of(holder)
        golden = self._golden_view(person_id)
        if golden is None or _strong_conflict(view, golden):
            return
        found.conflict.discard(person_id)
        found.agree.add(person_id)
        found.agreed_kinds.setdefault(person_id, set()).add("crn")
        if person_id not in found.best:
            found.best[person_id] = _Scored(score(view, golden, self.matcher.model), None)

    def resolve(self, view: MatchView) -> Resolution:
        """Decide which person a new record is (nothing is written yet)."""
        found = self._candidates(view)
        best, agree, conflict = found.best, found.agree, found.conflict
        ranked, linkable = found.ranked, found.linkable
        if not best:
            return Resolution(person_id=None, explanation={"stage": "new", "candidates": []})
        explanation = self._explain(ranked, agree)
        if linkable:
            chosen = self._joinable(linkable)
            top = best[chosen[0]]
            survivor = min(chosen, key=self._age)
            return Resolution(
                person_id=survivor,
                merge=[person_id for person_id in chosen if person_id != survivor],
                method="merge"
                if len(chosen) > 1
                else ("identifier" if chosen[0] in agree else "probabilistic"),
                band=Band.LINK.value,
                candidate_person_id=chosen[0],
                match_weight=top.score.match_weight,
                explanation=explanation,
                identifiers=tuple(
                    kind
                    for kind in STRONG_IDENTIFIER_KINDS
                    if kind in found.agreed_kinds.get(chosen[0], ())
                ),
            )
        # A person a conflict kept this record from (which would have linked on its weight or
        # on an agreeing identifier) is always put to a person, never passed over in silence.
        possible = [
            person_id
            for person_id, scored in ranked
            if scored.score.band is Band.POSSIBLE
            or (person_id in conflict and (scored.score.band is Band.LINK or person_id in agree))
        ]
        if possible:
            top = best[possible[0]]
            return Resolution(
                person_id=None,
                method="new",
                band=Band.POSSIBLE.value,
                candidate_person_id=possible[0],
                match_weight=top.score.match_weight,
                explanation=explanation,
                pending_review=True,
            )
        top = ranked[0][1]
        return Resolution(
            person_id=None,
            candidate_person_id=ranked[0][0],
            match_weight=top.score.match_weight,
            explanation=explanation,
        )

    def resolve_update(
        self, record_id: uuid.UUID, view: MatchView, *, person_id: uuid.UUID
    ) -> Resolution | None:
        """A changed record that now ties other persons strongly: merge them into its own.

        An update can join persons but never splits one (that is a person's decision); None
        when the change ties no one else.
        """
        self.lock([person_id])
        own = self.person_of(person_id)
        found = self._candidates(view, itself=record_id)
        others = [candidate for candidate in found.linkable if candidate != own]
        if not others or own in found.conflict:
            return None
        chosen = self._joinable([own, *others])
        if len(chosen) == 1:
            return None
        survivor = min(chosen, key=self._age)
        top = found.best[chosen[1]]
        return Resolution(
            person_id=survivor,
            merge=[candidate for candidate in chosen if candidate != survivor],
            method="merge",
            band=Band.LINK.value,
            candidate_person_id=chosen[1],
            match_weight=top.score.match_weight,
            explanation=self._explain(found.ranked, found.agree),
        )

    def _explain(
        self, ranked: list[tuple[uuid.UUID, _Scored]], agree: set[uuid.UUID]
    ) -> dict[str, Any]:
        person_id, top = ranked[0]
        return {
            "stage": "identifier" if person_id in agree else "probabilistic",
            "model_version": self.matcher.model.version,
            "best": {
                "person_id": str(person_id),
                "source_record_id": _id_or_none(top.source_record_id),
                **top.score.as_dict(),
            },
            "candidates": [
                {
                    "person_id": str(candidate),
                    "source_record_id": _id_or_none(scored.source_record_id),
                    "match_weight": round(scored.score.match_weight, 3),
                    "band": scored.score.band.value,
                }
                for candidate, scored in ranked[: EXPLAINED_CANDIDATES + 1]
            ],
        }

    def _conflicts_with_golden(self, view: MatchView, person_id: uuid.UUID) -> bool:
        golden = self._golden_view(person_id)
        return golden is not None and _strong_conflict(view, golden)

    def _age(self, person_id: uuid.UUID) -> tuple[datetime, bool, uuid.UUID]:
        person = self.persons.get(person_id)
        # A person new in this batch is younger than any stored one.
        if person is None:
            return (self.now, True, person_id)
        return (person.created_at, False, person_id)

    def _joinable(self, linkable: list[uuid.UUID]) -> list[uuid.UUID]:
        """The best person and every other that may be merged with it (best first)."""
        if len(linkable) == 1:
            return linkable
        # Stored records of these persons, plus this batch's (not flushed yet).
        owner = {
            record_id: person_id
            for person_id, ids in matching_repo.record_ids_of_persons(
                self.session, linkable
            ).items()
            for record_id in ids
        }
        for record_id, known in self._known.items():
            person_id = self.person_of(known.person_id)
            if person_id in linkable:
                owner.setdefault(record_id, person_id)
        excluded = matching_repo.exclusions_among(self.session, owner)
        apart = {frozenset((owner[a], owner[b])) for a, b in excluded}
        chosen: list[uuid.UUID] = []
        for person_id in linkable:
            if any(frozenset((person_id, kept)) in apart for kept in chosen):
                continue
            if any(self._persons_conflict(person_id, kept) for kept in chosen):
                continue
            chosen.append(person_id)
        return chosen

    def _persons_conflict(self, left: uuid.UUID, right: uuid.UUID) -> bool:
        a, b = self._golden_view(left), self._golden_view(right)
        return a is not None and b is not None and _strong_conflict(a, b)

    # -- recording ----------------------------------------------------------------------------

    def added(
        self,
        record_id: uuid.UUID,
        view: MatchView,
        *,
        person: Person,
        resolution: Resolution,
    ) -> None:
        """A new record was stored under `person`: index it for the rest of the batch."""
        self.persons.setdefault(person.id, person)
        self._known[record_id] = _Known(view, person.id)
        keys = match_keys(view)
        for key in keys:
            self._batch_keys.setdefault(key, []).append(record_id)
        self._keys[record_id] = keys
        self._decisions.append((record_id, resolution, person.id))

    def merged(self, losers: Iterable[uuid.UUID], survivor: uuid.UUID) -> None:
        for loser in losers:
            self.redirect[loser] = survivor
        self._golden_views.pop(survivor, None)

    def rekey(self, record_id: uuid.UUID, view: MatchView, *, person_id: uuid.UUID) -> None:
        """An existing record changed: later records compare against, and find, what it says now."""
        self._rekeyed.append(record_id)
        self._known[record_id] = _Known(view, person_id)
        keys = match_keys(view)
        for key in keys:
            self._batch_keys.setdefault(key, []).append(record_id)
        # The latest version's keys only, even if the batch held the record twice.
        self._keys[record_id] = keys

    def decided(self, record_id: uuid.UUID, resolution: Resolution, person_id: uuid.UUID) -> None:
        """Keep a decision made about an existing record (a merge its update caused)."""
        self._decisions.append((record_id, resolution, person_id))

    def finish(self) -> None:
        """Write the batch's keys and decisions; call after the source records are flushed."""
        self.session.flush()
        matching_repo.delete_keys(self.session, self._rekeyed)
        matching_repo.add_keys(
            self.session,
            [
                {"key": key, "source_record_id": record_id}
                for record_id, keys in self._keys.items()
                for key in keys
            ],
        )
        version = self.matcher.model.version
        rows = []
        for record_id, resolution, person_id in self._decisions:
            candidate = resolution.candidate_person_id
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "source_record_id": record_id,
                    "kind": "automatic",
                    "method": resolution.method,
                    "band": resolution.band,
                    "model_version": version,
                    "person_id": self.person_of(person_id),
                    "candidate_person_id": self.person_of(candidate) if candidate else None,
                    "match_weight": resolution.match_weight,
                    "explanation": resolution.explanation,
                    "status": "pending" if resolution.pending_review else "decided",
                    "created_at": self.now,
                    "decided_by": None,
                    "reviewed_at": None,
                    "reviewed_by": None,
                    "note": None,
                }
            )
        matching_repo.add_decisions(self.session, rows)
