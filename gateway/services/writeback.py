"""Write-back: identifiers the central system assigns (its CRN) kept on the golden record."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.models import Person
from gateway.repositories import matching as matching_repo
from gateway.repositories import persons as persons_repo
from gateway.repositories import source_records as source_records_repo
from gateway.services import audit, changes
from gateway.services.clients import Principal
from gateway.services.golden import SurvivorshipPolicy
from gateway.services.ingest import change_row, person_snapshot, refresh_golden
from schemas.identifiers import canonical_crn


@dataclass(frozen=True)
class WriteBack:
    person: Person
    changed: bool


def parse_crn(raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidRequest(
            "crn must be a string",
            errors=[{"path": "crn", "message": "must be a string", "type": "string_type"}],
        )
    try:
        return canonical_crn(raw)
    except ValueError as error:
        raise InvalidRequest(
            "crn is not valid",
            errors=[{"path": "crn", "message": str(error), "type": "value_error"}],
        ) from None


def assign_crn(
    session: Session,
    person_id: uuid.UUID,
    *,
    crn: str,
    policy: SurvivorshipPolicy,
    now: datetime,
    principal: Principal | None = None,
    origin_client_id: uuid.UUID | None = None,
    origin_subscription_id: uuid.UUID | None = None,
) -> WriteBack:
    """Store the CRN the central system assigned; emit person.updated unless it was already so.

    The change is marked with who sent it, so it is not sent back to them. A merged person's
    CRN goes to the survivor. A CRN another person already holds is a conflict.
    """
    survivor = matching_repo.survivor_of(session, person_id)
    if survivor is None:
        raise NotFound("no person with that id")
    person = persons_repo.get_many_for_update(session, [survivor.id]).get(survivor.id, survivor)
    holder = persons_repo.first_by_crns(session, [crn]).get(crn)
    if holder is not None and holder.id != person.id:
        raise Conflict("that CRN is already held by another person")
    by = (
        f"subscription:{origin_subscription_id}"
        if origin_subscription_id
        else f"client:{origin_client_id}"
        if origin_client_id
        else "operator"
    )
    current = (person.assigned_identifiers or {}).get("crn")
    if current is not None and current["value"] == crn:
        return WriteBack(person=person, changed=False)
    person.assigned_identifiers = {
        **(person.assigned_identifiers or {}),
        "crn": {"value": crn, "assigned_at": now.isoformat(), "by": by},
    }
    changed = refresh_golden(
        person, source_records_repo.list_for_person(session, person.id), policy
    )
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.ALTER,
        resource="persons",
        person_ids=[person.id],
        now=now,
        detail={"write_back": "crn", "by": by.partition(":")[0]},
    )
    if changed:
        person.version += 1
        person.updated_at = now
        changes.publish(
            session,
            [
                change_row(
                    "person.updated",
                    now,
                    person_id=person.id,
                    snapshot=person_snapshot(person),
                    origin_client_id=origin_client_id,
                    origin_subscription_id=origin_subscription_id,
                )
            ],
            now=now,
        )
    return WriteBack(person=person, changed=changed)
