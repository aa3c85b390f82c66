"""Human identity decisions: the review queue, manual links and splits, and explanations.

A human decision pins the records it moves (no automatic pass moves them again), and a link
also pins the records of the person it joins them to (the person saw them together and agreed);
"not the same person" is kept as exclusions between records, which automatic passes respect.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.matching import MatchModel, PairScore, score, view_of
from gateway.models import MatchDecision, Person, SourceRecord
from gateway.repositories import matching as matching_repo
from gateway.repositories import persons as persons_repo
from gateway.repositories import source_records as source_records_repo
from gateway.services import audit, changes
from gateway.services.clients import Principal
from gateway.services.golden import SurvivorshipPolicy
from gateway.services.ingest import change_row, person_snapshot, redirect_merged, refresh_golden
from gateway.services.persons import redirect_if_merged

PENDING = "pending"


class ReviewVerdict(StrEnum):
    LINK = "link"
    NOT_A_MATCH = "not_a_match"


@dataclass(frozen=True)
class ReviewItem:
    decision: MatchDecision
    record: SourceRecord
    candidate: Person | None


@dataclass(frozen=True)
class LinkedSourceRecord:
    record: SourceRecord
    decision: MatchDecision | None


def _cursor_of(decision: MatchDecision) -> str:
    return f"{decision.created_at.isoformat()}|{decision.id}"


def parse_review_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        moment, _, decision_id = cursor.partition("|")
        return datetime.fromisoformat(moment), uuid.UUID(decision_id)
    except ValueError:
        raise InvalidRequest(
            "after is not a cursor this API gave out",
            errors=[{"path": "after", "message": "not a review cursor", "type": "value_error"}],
        ) from None


def review_queue(
    session: Session,
    *,
    after: str | None,
    limit: int,
    principal: Principal | None,
    now: datetime,
) -> tuple[list[ReviewItem], str | None]:
    """Possible matches waiting for a person, oldest first; and the cursor of the next page."""
    decisions = matching_repo.pending_reviews(
        session, after=parse_review_cursor(after), limit=limit
    )
    items = []
    for decision in decisions:
        record = session.get(SourceRecord, decision.source_record_id)
        if record is None:  # pragma: no cover - a decision's record is never deleted
            continue
        candidate = (
            matching_repo.survivor_of(session, decision.candidate_person_id)
            if decision.candidate_person_id
            else None
        )
        if candidate is not None and candidate.id == record.person_id:
            # A later merge already joined them: nothing is left to decide.
            decision.status = "superseded"
            decision.reviewed_at = now
            continue
        items.append(ReviewItem(decision=decision, record=record, candidate=candidate))
    persons = {item.record.person_id for item in items} | {
        item.candidate.id for item in items if item.candidate is not None
    }
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CONSULT,
        resource="match-review",
        person_ids=persons,
        now=now,
        detail={"items": len(items)},
    )
    following = _cursor_of(decisions[-1]) if len(decisions) == limit else None
    return items, following


def get_decision(session: Session, decision_id: uuid.UUID) -> MatchDecision:
    decision = matching_repo.get_decision(session, decision_id)
    if decision is None:
        raise NotFound("no match decision with that id")
    return decision


def explain(left: dict[str, Any], right: dict[str, Any], model: MatchModel) -> PairScore:
    """Score two canonical persons as the matcher would (nothing is stored or read)."""
    return score(view_of(left), view_of(right), model)


@dataclass
class PersonWork:
    """What one human decision changed, for the golden records, the feed and the audit."""

    session: Session
    policy: SurvivorshipPolicy
    now: datetime
    touched: dict[uuid.UUID, Person]
    events: list[dict[str, Any]]

    def person(self, person_id: uuid.UUID) -> Person:
        found = self.touched.get(person_id)
        if found is None:
            person = matching_repo.survivor_of(self.session, person_id)
            if person is None:
                raise NotFound("no person with that id")
            locked = persons_repo.get_many_for_update(self.session, [person.id])
            found = locked.get(person.id, person)
            self.touched[found.id] = found
        return found

    def refresh(self, person: Person, *, event: str | None = None, **extra: Any) -> None:
        """Rebuild a person's golden record and emit its change (`event` or person.updated)."""
        self.session.flush()
        records = source_records_repo.list_for_person(self.session, person.id)
        changed = refresh_golden(person, records, self.policy)
        if event is None and not changed:
            return
        person.version += 1
        person.updated_at = self.now
        self.events.append(
            change_row(
                event or "person.updated",
                self.now,
                person_id=person.id,
                snapshot={**person_snapshot(person), **extra},
            )
        )

    def finish(self) -> None:
        changes.publish(self.session, self.events, now=self.now)


def _human_decision(
    work: PersonWork,
    *,
    record: SourceRecord,
    method: str,
    person_id: uuid.UUID,
    principal: Principal | None,
    note: str | None,
    candidate_person_id: uuid.UUID | None = None,
) -> MatchDecision:
    decision = MatchDecision(
        id=uuid.uuid4(),
        source_record_id=record.id,
        kind="human",
        method=method,
        band=None,
        model_version=None,
        person_id=person_id,
        candidate_person_id=candidate_person_id,
        match_weight=None,
        explanation={},
        status="decided",
        created_at=work.now,
        decided_by=principal.client_id if principal else None,
        note=note,
    )
    matching_repo.add_decision(work.session, decision)
    return decision


def _supersede_pending(session: Session, record_id: uuid.UUID, *, now: datetime) -> None:
    for decision in matching_repo.pending_for_record(session, record_id):
        decision.status = "superseded"
        decision.reviewed_at = now


def _move_record(work: PersonWork, record: SourceRecord, target: Person) -> None:
    """Put a record under `target`, pinned with the target's records; an old person left with no
    records merges into it."""
    old = work.person(record.person_id)
    others = matching_repo.record_ids_of_persons(work.session, [target.id])[target.id]
    # The human now says these are the same: earlier "not the same" pairs between them go.
    matching_repo.remove_exclusions(work.session, record.id, others)
    record.pinned = True
    matching_repo.pin_records(work.session, others)
    if old.id == target.id:
        return
    work.session.flush()
    matching_repo.move_records(work.session, source_record_ids=[record.id], to_person_id=target.id)
    remaining = matching_repo.record_ids_of_persons(work.session, [old.id])[old.id]
    if remaining:
        work.refresh(old)
        work.refresh(target)
        return
    redirect_merged(work.session, loser=old, survivor=target, now=work.now)
    old.version += 1
    work.refresh(target, event="person.merged", merged_person_ids=[str(old.id)])


def decide_review(
    session: Session,
    decision_id: uuid.UUID,
    *,
    verdict: ReviewVerdict,
    note: str | None,
    principal: Principal | None,
    policy: SurvivorshipPolicy,
    now: datetime,
) -> MatchDecision:
    """Settle a possible match: link the record to the candidate, or record they differ."""
    pending = matching_repo.get_decision(session, decision_id, for_update=True)
    if pending is None:
        raise NotFound("no match decision with that id")
    if pending.status != PENDING:
        raise Conflict(f"this possible match was already settled ({pending.status})")
    record = session.get(SourceRecord, pending.source_record_id)
    if record is None or pending.candidate_person_id is None:  # pragma: no cover
        raise Conflict("this decision has no candidate to settle")
    work = PersonWork(session=session, policy=policy, now=now, touched={}, events=[])
    candidate = work.person(pending.candidate_person_id)
    linking = verdict is ReviewVerdict.LINK
    decision = _human_decision(
        work,
        record=record,
        method="review_link" if linking else "review_reject",
        person_id=candidate.id if linking else work.person(record.person_id).id,
        principal=principal,
        note=note,
        candidate_person_id=candidate.id,
    )
    if linking:
        _move_record(work, record, candidate)
        pending.status = "linked"
    else:
        others = matching_repo.record_ids_of_persons(session, [candidate.id])[candidate.id]
        session.flush()
        matching_repo.add_exclusions(
            session, ((record.id, other) for other in others), decision_id=decision.id, now=now
        )
        record.pinned = True
        pending.status = "rejected"
    pending.reviewed_at = now
    pending.reviewed_by = principal.client_id if principal else None
    pending.note = note
    work.finish()
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.ALTER,
        resource="match-review",
        person_ids=work.touched,
        now=now,
        detail={"verdict": verdict.value},
    )
    return decision


def link_record(
    session: Session,
    person_id: uuid.UUID,
    *,
    source_record_id: uuid.UUID,
    note: str | None,
    principal: Principal | None,
    policy: SurvivorshipPolicy,
    now: datetime,
) -> MatchDecision:
    """Link a source record to a person by hand (it is pinned there)."""
    work = PersonWork(session=session, policy=policy, now=now, touched={}, events=[])
    target = work.person(person_id)
    record = _record_for_update(session, source_record_id)
    decision = _human_decision(
        work,
        record=record,
        method="manual_link",
        person_id=target.id,
        principal=principal,
        note=note,
    )
    _supersede_pending(session, record.id, now=now)
    _move_record(work, record, target)
    work.finish()
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.ALTER,
        resource="persons",
        person_ids=work.touched,
        now=now,
        detail={"operation": "link"},
    )
    return decision


def split_records(
    session: Session,
    person_id: uuid.UUID,
    *,
    source_record_ids: Sequence[uuid.UUID],
    note: str | None,
    principal: Principal | None,
    policy: SurvivorshipPolicy,
    now: datetime,
) -> Person:
    """Unlink source records from a person into a new person of their own; returns it."""
    work = PersonWork(session=session, policy=policy, now=now, touched={}, events=[])
    person = work.person(person_id)
    if person.id != person_id:
        raise Conflict(f"that person was merged into {person.id}; split from it instead")
    wanted = set(source_record_ids)
    held = set(matching_repo.record_ids_of_persons(session, [person.id])[person.id])
    strangers = sorted(str(record_id) for record_id in wanted - held)
    if strangers:
        raise InvalidRequest(
            "those source records are not linked to this person",
            errors=[
                {"path": "source_record_ids", "message": f"not linked: {r}", "type": "not_linked"}
                for r in strangers
            ],
        )
    if wanted == held:
        raise InvalidRequest("a split must leave the person at least one source record")
    new = Person(
        id=uuid.uuid4(), record={}, provenance={}, version=0, created_at=now, updated_at=now
    )
    persons_repo.add(session, new)
    work.touched[new.id] = new
    records = [_record_for_update(session, record_id) for record_id in sorted(wanted)]
    decision_ids = []
    for record in records:
        record.pinned = True
        _supersede_pending(session, record.id, now=now)
        decision_ids.append(
            _human_decision(
                work,
                record=record,
                method="split",
                person_id=new.id,
                principal=principal,
                note=note,
                candidate_person_id=person.id,
            ).id
        )
    session.flush()
    matching_repo.move_records(session, source_record_ids=wanted, to_person_id=new.id)
    matching_repo.add_exclusions(
        session,
        ((moved, kept) for moved in wanted for kept in held - wanted),
        decision_id=decision_ids[0],
        now=now,
    )
    work.refresh(new, event="person.split", split_from_person_id=str(person.id))
    work.refresh(person)
    work.finish()
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.ALTER,
        resource="persons",
        person_ids=work.touched,
        now=now,
        detail={"operation": "split", "records": len(wanted)},
    )
    return new


def _record_for_update(session: Session, source_record_id: uuid.UUID) -> SourceRecord:
    record = source_records_repo.get_for_update(session, source_record_id)
    if record is None:
        raise NotFound("no source record with that id")
    return record


def linked_records(
    session: Session, person_id: uuid.UUID, *, principal: Principal | None, now: datetime
) -> list[LinkedSourceRecord]:
    """The source records linked to a person, each with the decision that put it there."""
    person = persons_repo.get(session, person_id)
    if person is None:
        raise NotFound("no person with that id")
    redirect_if_merged(session, person, suffix="/sources")
    records = source_records_repo.list_for_person(session, person_id)
    decisions = matching_repo.decisions_for_records(session, (r.id for r in records))
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CONSULT,
        resource="persons",
        person_ids=[person_id],
        now=now,
        detail={"view": "sources"},
    )
    return [LinkedSourceRecord(record=r, decision=decisions.get(r.id)) for r in records]
