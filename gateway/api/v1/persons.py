"""GET /v1/persons: golden person records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from gateway.api.deps import DatabaseDep, MatcherDep, SettingsDep, require
from gateway.api.v1.shapes import NO_NUL_PATTERN, InputModel, PageLimit, page_size
from gateway.models import utcnow
from gateway.services import persons, writeback
from gateway.services.clients import Principal, Role
from schemas import Case, Person

router = APIRouter(tags=["persons"])


class FieldProvenanceOut(BaseModel):
    source: str
    external_id: str
    received_at: datetime


class CaseOut(BaseModel):
    id: uuid.UUID
    source: str
    external_id: str
    version: int
    updated_at: datetime
    case: Case


class PersonOut(BaseModel):
    id: uuid.UUID = Field(description="The golden record's id; it never changes.")
    version: int
    person: Person
    provenance: dict[str, FieldProvenanceOut] = Field(
        description="For each field (identifiers as `identifiers.crn` etc.), where it came from."
    )
    cases: list[CaseOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_view(cls, view: persons.PersonView) -> PersonOut:
        person = view.person
        return cls(
            id=person.id,
            version=person.version,
            person=Person.model_validate(person.record),
            provenance={
                field: FieldProvenanceOut.model_validate(origin)
                for field, origin in person.provenance.items()
            },
            cases=[
                CaseOut(
                    id=item.case.id,
                    source=item.case.source,
                    external_id=item.external_id,
                    version=item.case.version,
                    updated_at=item.case.updated_at,
                    case=Case.model_validate(item.case.record),
                )
                for item in view.cases
            ],
            created_at=person.created_at,
            updated_at=person.updated_at,
        )


class PersonListOut(BaseModel):
    items: list[PersonOut]
    next_after: uuid.UUID | None = Field(
        None, description="Pass as `after` for the next page; null on the last."
    )


@router.get("/v1/persons/{person_id}", response_model=PersonOut, summary="Read a golden record")
def get_person(
    person_id: uuid.UUID,
    db: DatabaseDep,
    principal: Annotated[Principal, Depends(require(Role.CENTRAL))],
) -> PersonOut:
    view = db.write(
        lambda session: persons.get_person(session, person_id, principal=principal, now=utcnow())
    )
    return PersonOut.from_view(view)


@router.get(
    "/v1/persons",
    response_model=PersonListOut,
    summary="List persons, or find them by identifier",
    description="Live persons (merged ones redirect to their survivor) in pages ordered by id. "
    "Each identifier given narrows the list to persons holding it, in any form the gateway "
    "reads (`02/73319Z` finds `2002/0073319Z`); several narrow it further.",
)
def find_persons(
    db: DatabaseDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require(Role.CENTRAL))],
    crn: Annotated[str | None, Query(max_length=32, pattern=NO_NUL_PATTERN)] = None,
    pnc: Annotated[str | None, Query(max_length=32, pattern=NO_NUL_PATTERN)] = None,
    noms: Annotated[str | None, Query(max_length=32, pattern=NO_NUL_PATTERN)] = None,
    after: Annotated[uuid.UUID | None, Query(description="Continue after this person id")] = None,
    limit: PageLimit = None,
) -> PersonListOut:
    size = page_size(limit, settings.limits)
    given = {kind: value for kind, value in (("crn", crn), ("pnc", pnc), ("noms", noms)) if value}
    views = db.write(
        lambda session: persons.find_persons(
            session, identifiers=given, after=after, limit=size, principal=principal, now=utcnow()
        )
    )
    return PersonListOut(
        items=[PersonOut.from_view(view) for view in views],
        next_after=views[-1].person.id if len(views) == size else None,
    )


class IdentifiersIn(InputModel):
    crn: str = Field(
        pattern=r"^\s*[A-Za-z][0-9]{6}\s*$",
        description="The CRN the central case system assigned: a letter and six digits.",
    )


@router.put(
    "/v1/persons/{person_id}/identifiers",
    response_model=PersonOut,
    summary="Store the CRN the central system assigned",
    description="The CRN outranks every source's value on the golden record from now on. The "
    "resulting person.updated is not sent back to the caller (in its feed or its subscription's "
    "webhooks). The same CRN again changes nothing; one another person holds is a 409.",
)
def put_identifiers(
    person_id: uuid.UUID,
    body: IdentifiersIn,
    db: DatabaseDep,
    matcher: MatcherDep,
    principal: Annotated[Principal, Depends(require(Role.CENTRAL))],
) -> PersonOut:
    crn = writeback.parse_crn(body.crn)

    def work(session: Session) -> persons.PersonView:
        now = utcnow()
        person = persons.get_person_for_update(session, person_id, suffix="/identifiers")
        writeback.assign_crn(
            session,
            person.id,
            crn=crn,
            policy=matcher.policy,
            now=now,
            principal=principal,
            origin_client_id=principal.client_id,
        )
        return persons.get_person(session, person.id, principal=principal, now=now)

    return PersonOut.from_view(db.write(work))
