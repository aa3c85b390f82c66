"""Reading golden person records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.errors import InvalidRequest, Moved, NotFound
from gateway.models import Case, Person
from gateway.repositories import matching as matching_repo
from gateway.repositories import persons as persons_repo
from gateway.repositories import source_records as source_records_repo
from gateway.services import audit
from gateway.services.clients import Principal
from schemas.identifiers import canonical_crn, canonical_noms, canonical_pnc

IDENTIFIER_LOOKUPS = {"crn": canonical_crn, "pnc": canonical_pnc, "noms": canonical_noms}


@dataclass(frozen=True)
class CaseView:
    case: Case
    external_id: str


@dataclass(frozen=True)
class PersonView:
    person: Person
    cases: Sequence[CaseView]


def get_person(
    session: Session, person_id: uuid.UUID, *, principal: Principal | None, now: datetime
) -> PersonView:
    person = persons_repo.get(session, person_id)
    if person is None:
        raise NotFound("no person with that id")
    redirect_if_merged(session, person)
    view = _view(session, person)
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CONSULT,
        resource="persons",
        person_ids=[person.id],
        now=now,
    )
    return view


def get_person_for_update(session: Session, person_id: uuid.UUID, *, suffix: str = "") -> Person:
    """The person about to be changed; a merged one answers with where the survivor is."""
    person = persons_repo.get(session, person_id)
    if person is None:
        raise NotFound("no person with that id")
    redirect_if_merged(session, person, suffix=suffix)
    return person


def redirect_if_merged(session: Session, person: Person, *, suffix: str = "") -> None:
    """A merged person's reads answer with where the survivor is (Moved, 308)."""
    if person.merged_into_id is None:
        return
    survivor = matching_repo.survivor_of(session, person.id)
    target = survivor.id if survivor is not None else person.merged_into_id
    raise Moved(f"merged into {target}", location=f"/v1/persons/{target}{suffix}")


def find_persons(
    session: Session,
    *,
    identifiers: dict[str, str],
    after: uuid.UUID | None,
    limit: int,
    principal: Principal | None,
    now: datetime,
) -> list[PersonView]:
    """Live persons holding every given identifier (by its canonical form), a page at a time;
    with none given, every live person."""
    canonical: dict[str, str] = {}
    for kind, value in identifiers.items():
        try:
            canonical[kind] = IDENTIFIER_LOOKUPS[kind](value)
        except ValueError as error:
            raise InvalidRequest(
                f"{kind} is not valid",
                errors=[{"path": kind, "message": str(error), "type": "value_error"}],
            ) from None
    views = [
        _view(session, person)
        for person in persons_repo.page(session, identifiers=canonical, after=after, limit=limit)
    ]
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.CONSULT,
        resource="persons",
        person_ids=[view.person.id for view in views],
        now=now,
        detail={"lookup": sorted(canonical), "found": len(views)},
    )
    return views


def _view(session: Session, person: Person) -> PersonView:
    external_ids = {
        record.id: record.external_id
        for record in source_records_repo.list_for_person(session, person.id)
    }
    cases = [
        CaseView(case=case, external_id=external_ids.get(case.source_record_id, ""))
        for case in persons_repo.cases_for_person(session, person.id)
    ]
    return PersonView(person=person, cases=cases)
