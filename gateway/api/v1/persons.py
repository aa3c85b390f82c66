"""GET /v1/persons: golden person records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway.api.deps import DatabaseDep, MatcherDep, require
from gateway.errors import InvalidRequest
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


@router.get("/v1/persons", response_model=PersonListOut, summary="Find persons by identifier")
def find_persons(
    db: DatabaseDep,
    principal: Annotated[Principal, Depends(require(Role.CENTRAL))],
    crn: Annotated[str | None, Query(max_length=32)] = None,
    pnc: Annotated[str | None, Query(max_length=32)] = None,
    noms: Annotated[str | None, Query(max_length=32)] = None,
) -> PersonListOut:
    given = {kind: value for kind, value in (("crn", crn), ("pnc", pnc), ("noms", noms)) if value}
    if len(given) != 1:
        raise InvalidRequest("give exactly one of crn, pnc or noms")
    [(kind, value)] = given.items()
    views = db.write(
        lambda session: persons.find_persons(
            session, kind=kind, value=value, principal=principal, now=utcnow()
        )
    )
    return PersonListOut(items=[PersonOut.from_view(view) for view in views])


class IdentifiersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crn: str = Field(max_length=32, description="The CRN the central case system assigned.")


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
