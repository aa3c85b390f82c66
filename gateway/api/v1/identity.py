"""Identity resolution for operators: the review queue, decisions, explanations, links, splits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import DatabaseDep, MatcherDep, SettingsDep, require
from gateway.api.v1.shapes import InputModel, PageLimit, page_size
from gateway.models import MatchDecision, Person, utcnow
from gateway.services import review
from gateway.services.clients import Principal, Role
from schemas import Person as CanonicalPerson

router = APIRouter(tags=["identity"])

OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]
ReaderDep = Annotated[Principal, Depends(require(Role.CENTRAL, Role.OPERATOR))]
Note = Annotated[str | None, Field(default=None, max_length=2000)]


class MatchDecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source_record_id: uuid.UUID
    kind: str = Field(description="automatic or human")
    method: str = Field(
        description="identifier, probabilistic, merge, new, rerun or reevaluated (automatic); "
        "review_link, review_reject, manual_link or split (human)"
    )
    band: str | None = Field(description="link, possible or new, for automatic decisions")
    model_version: str | None = Field(description="The model that decided (automatic only).")
    person_id: uuid.UUID = Field(description="The person the record was put under.")
    candidate_person_id: uuid.UUID | None = Field(description="The best candidate considered.")
    match_weight: float | None = Field(description="The best candidate's match weight in bits.")
    explanation: dict[str, Any] = Field(
        description="Per-field comparison levels and weights for the best candidate, and the "
        "runners-up: never names or values."
    )
    status: str = Field(description="decided, pending (review), linked, rejected or superseded")
    created_at: datetime
    decided_by: uuid.UUID | None
    reviewed_at: datetime | None
    reviewed_by: uuid.UUID | None
    note: str | None


class SourceRecordOut(BaseModel):
    id: uuid.UUID
    source: str
    external_id: str
    version: int
    received_at: datetime
    pinned: bool = Field(description="Linked by a person; automatic passes never move it.")
    person: CanonicalPerson = Field(description="The person as this source holds them.")
    decision: MatchDecisionOut | None = Field(description="Why it is linked to this person.")


class SourceRecordListOut(BaseModel):
    person_id: uuid.UUID
    items: list[SourceRecordOut]


class CandidateOut(BaseModel):
    person_id: uuid.UUID = Field(description="The candidate's current id (after any merge).")
    person: CanonicalPerson = Field(description="The candidate's golden record.")


class ReviewItemOut(BaseModel):
    decision: MatchDecisionOut
    record: SourceRecordOut
    candidate: CandidateOut | None


class ReviewPageOut(BaseModel):
    items: list[ReviewItemOut]
    next: str | None = Field(description="Pass as `after` for the next page; null at the end.")


class ReviewIn(InputModel):
    decision: Literal["link", "not_a_match"]
    note: Note


class LinkIn(InputModel):
    source_record_id: uuid.UUID
    note: Note


class SplitIn(InputModel):
    source_record_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)
    note: Note


class SplitOut(BaseModel):
    person_id: uuid.UUID = Field(description="The new person the records now belong to.")
    split_from_person_id: uuid.UUID


class ExplainIn(InputModel):
    left: CanonicalPerson
    right: CanonicalPerson


class FieldComparisonOut(BaseModel):
    field: str
    level: str
    weight: float = Field(description="Match weight in bits (0 for a missing value).")


class ExplainOut(BaseModel):
    model_version: str
    match_weight: float = Field(description="Prior weight plus every field's weight, in bits.")
    probability: float
    band: str = Field(description="link, possible or new")
    prior_weight: float
    guards: list[str] = Field(
        description="Rules that capped the band (twins, household, identifier conflicts and "
        "collisions), and `names_swapped` when "
        "forename and surname agreed only crosswise."
    )
    identifiers_agree: list[str]
    identifiers_conflict: list[str]
    comparisons: list[FieldComparisonOut]


def _record_out(linked: review.LinkedSourceRecord) -> SourceRecordOut:
    record = linked.record
    return SourceRecordOut(
        id=record.id,
        source=record.source,
        external_id=record.external_id,
        version=record.version,
        received_at=record.received_at,
        pinned=record.pinned,
        person=CanonicalPerson.model_validate(record.canonical["person"]),
        decision=MatchDecisionOut.model_validate(linked.decision) if linked.decision else None,
    )


def _candidate_out(person: Person | None) -> CandidateOut | None:
    if person is None:
        return None
    return CandidateOut(person_id=person.id, person=CanonicalPerson.model_validate(person.record))


@router.get("/v1/review", response_model=ReviewPageOut, summary="Possible matches to review")
def review_queue(
    db: DatabaseDep,
    settings: SettingsDep,
    principal: OperatorDep,
    after: Annotated[
        str | None,
        Query(
            max_length=120,
            pattern=r"^[0-9T:.+-]+\|[0-9a-fA-F-]{32,36}$",
            description="The `next` of the previous page",
        ),
    ] = None,
    limit: PageLimit = None,
) -> ReviewPageOut:
    size = page_size(limit, settings.limits)
    items, following = db.write(
        lambda session: review.review_queue(
            session, after=after, limit=size, principal=principal, now=utcnow()
        )
    )
    return ReviewPageOut(
        items=[
            ReviewItemOut(
                decision=MatchDecisionOut.model_validate(item.decision),
                record=_record_out(review.LinkedSourceRecord(item.record, None)),
                candidate=_candidate_out(item.candidate),
            )
            for item in items
        ],
        next=following,
    )


@router.post(
    "/v1/review/{decision_id}",
    response_model=MatchDecisionOut,
    summary="Settle a possible match: link, or not a match",
    responses={409: {"description": "Already settled"}},
)
def settle_review(
    decision_id: uuid.UUID,
    body: ReviewIn,
    db: DatabaseDep,
    matcher: MatcherDep,
    principal: OperatorDep,
) -> MatchDecision:
    return db.write(
        lambda session: review.decide_review(
            session,
            decision_id,
            verdict=review.ReviewVerdict(body.decision),
            note=body.note,
            principal=principal,
            policy=matcher.policy,
            now=utcnow(),
        )
    )


@router.get(
    "/v1/match-decisions/{decision_id}",
    response_model=MatchDecisionOut,
    summary="Why a record is linked where it is",
)
def get_match_decision(
    decision_id: uuid.UUID, db: DatabaseDep, principal: OperatorDep
) -> MatchDecision:
    return db.read(lambda session: review.get_decision(session, decision_id))


@router.post(
    "/v1/match/explain", response_model=ExplainOut, summary="Score two persons as the matcher would"
)
def explain_match(
    body: ExplainIn, db: DatabaseDep, matcher: MatcherDep, principal: OperatorDep
) -> ExplainOut:
    # The model ingest scores with now: the one an admin activated, else the configured one.
    model = db.read(lambda session: matcher.for_session(session).model)
    pair = review.explain(
        body.left.model_dump(mode="json"), body.right.model_dump(mode="json"), model
    )
    return ExplainOut.model_validate({"model_version": model.version, **pair.as_dict()})


@router.get(
    "/v1/persons/{person_id}/sources",
    response_model=SourceRecordListOut,
    summary="The source records linked to a person",
)
def person_sources(
    person_id: uuid.UUID, db: DatabaseDep, principal: ReaderDep
) -> SourceRecordListOut:
    linked = db.write(
        lambda session: review.linked_records(session, person_id, principal=principal, now=utcnow())
    )
    return SourceRecordListOut(person_id=person_id, items=[_record_out(item) for item in linked])


@router.post(
    "/v1/persons/{person_id}/links",
    response_model=MatchDecisionOut,
    summary="Link a source record to this person by hand",
)
def link_source_record(
    person_id: uuid.UUID,
    body: LinkIn,
    db: DatabaseDep,
    matcher: MatcherDep,
    principal: OperatorDep,
) -> MatchDecision:
    return db.write(
        lambda session: review.link_record(
            session,
            person_id,
            source_record_id=body.source_record_id,
            note=body.note,
            principal=principal,
            policy=matcher.policy,
            now=utcnow(),
        )
    )


@router.post(
    "/v1/persons/{person_id}/split",
    response_model=SplitOut,
    summary="Unlink source records into a new person",
)
def split_person(
    person_id: uuid.UUID,
    body: SplitIn,
    db: DatabaseDep,
    matcher: MatcherDep,
    principal: OperatorDep,
) -> SplitOut:
    new = db.write(
        lambda session: review.split_records(
            session,
            person_id,
            source_record_ids=body.source_record_ids,
            note=body.note,
            principal=principal,
            policy=matcher.policy,
            now=utcnow(),
        )
    )
    return SplitOut(person_id=new.id, split_from_person_id=person_id)
