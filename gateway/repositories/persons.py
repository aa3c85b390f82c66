"""Golden person records and cases."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Case, Person
from gateway.repositories.dialect import supports_row_locks

IDENTIFIER_COLUMNS = {
    "crn": Person.crn,
    "pnc": Person.pnc,
    "cro": Person.cro,
    "noms": Person.noms,
    "nino": Person.nino,
}


def get(session: Session, person_id: uuid.UUID) -> Person | None:
    return session.get(Person, person_id)


def get_many_for_update(
    session: Session, person_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Person]:
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    statement = select(Person).where(Person.id.in_(ids)).order_by(Person.id)
    if supports_row_locks(session):
        statement = statement.with_for_update()
    return {person.id: person for person in session.scalars(statement)}


def find_by_identifier(session: Session, kind: str, value: str) -> Sequence[Person]:
    column = IDENTIFIER_COLUMNS[kind]
    return session.scalars(
        select(Person)
        .where(column == value, Person.merged_into_id.is_(None))
        .order_by(Person.created_at)
    ).all()


def page(
    session: Session,
    *,
    identifiers: dict[str, str],
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Person]:
    """Live persons holding every given identifier, in id order from after `after`."""
    statement = select(Person).where(Person.merged_into_id.is_(None))
    for kind, value in identifiers.items():
        statement = statement.where(IDENTIFIER_COLUMNS[kind] == value)
    if after is not None:
        statement = statement.where(Person.id > after)
    return session.scalars(statement.order_by(Person.id).limit(limit)).all()


def first_by_crns(session: Session, crns: Iterable[str]) -> dict[str, Person]:
    """For each CRN, the earliest person holding it."""
    values = sorted(set(crns))
    found: dict[str, Person] = {}
    if not values:
        return found
    rows = session.scalars(
        select(Person)
        .where(Person.crn.in_(values), Person.merged_into_id.is_(None))
        .order_by(Person.created_at, Person.id)
    )
    for person in rows:
        if person.crn is not None:
            found.setdefault(person.crn, person)
    return found


def add(session: Session, person: Person) -> None:
    session.add(person)


def add_case(session: Session, case: Case) -> None:
    session.add(case)


def cases_by_source_record(
    session: Session, source_record_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Case]:
    ids = set(source_record_ids)
    if not ids:
        return {}
    rows = session.scalars(select(Case).where(Case.source_record_id.in_(ids)))
    return {case.source_record_id: case for case in rows}


def cases_for_person(session: Session, person_id: uuid.UUID) -> Sequence[Case]:
    return session.scalars(
        select(Case).where(Case.person_id == person_id).order_by(Case.created_at, Case.id)
    ).all()


def holders_of_assigned_crns(session: Session, crns: Iterable[str]) -> dict[str, uuid.UUID]:
    """For each CRN the central system assigned to a (surviving) person, that person."""
    values = sorted(set(crns))
    if not values:
        return {}
    rows = session.execute(
        select(Person.id, Person.crn, Person.assigned_identifiers).where(
            Person.crn.in_(values),
            Person.merged_into_id.is_(None),
            Person.assigned_identifiers.is_not(None),
        )
    ).all()
    return {
        crn: person_id
        for person_id, crn, assigned in rows
        if (assigned or {}).get("crn", {}).get("value") == crn
    }
