"""Write-back: a CRN the central system assigns outranks the sources and identifies the person."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from gateway.db import Database
from gateway.errors import Conflict
from gateway.models import Person, utcnow
from gateway.services import writeback
from gateway.services.golden import DEFAULT_POLICY
from tests.builders import OMIT, ingest_records, make_case_record, random_crn, random_pnc


def assign(db: Database, person_id: uuid.UUID, crn: str) -> writeback.WriteBack:
    return db.write(
        lambda session: writeback.assign_crn(
            session, person_id, crn=crn, policy=DEFAULT_POLICY, now=utcnow()
        )
    )


def same_person_elsewhere(original: dict[str, Any], **identifiers: Any) -> dict[str, Any]:
    """The same person as another source holds them: its own external id, only these ids."""
    person = copy.deepcopy(original["person"])
    person["identifiers"] = {"crn": OMIT, "pnc": OMIT, "noms": OMIT, **identifiers}
    return make_case_record(person=person)


def person(db: Database, person_id: uuid.UUID) -> Person:
    found = db.read(lambda session: session.get(Person, person_id))
    assert found is not None
    return found


def test_a_record_carrying_the_assigned_crn_links_to_its_person(db: Database) -> None:
    original = make_case_record()
    [first] = ingest_records(db, [original]).results
    assigned = random_crn()
    assign(db, first.person_id, assigned)
    # Another CRC knows the person by the central CRN only (the first source's CRN is older).
    later = same_person_elsewhere(original, crn=assigned)
    [second] = ingest_records(db, [later], source="crc-south").results
    assert second.person_id == first.person_id
    assert person(db, first.person_id).crn == assigned


def test_the_assigned_crn_identifies_the_person_even_under_another_name(db: Database) -> None:
    [first] = ingest_records(db, [make_case_record()]).results
    assigned = random_crn()
    assign(db, first.person_id, assigned)
    stranger = make_case_record(
        person={"identifiers": {"crn": assigned, "pnc": OMIT, "noms": OMIT}}
    )
    [second] = ingest_records(db, [stranger], source="crc-south").results
    assert second.person_id == first.person_id


def test_the_assigned_crn_does_not_override_a_conflicting_pnc(db: Database) -> None:
    original = make_case_record()
    [first] = ingest_records(db, [original]).results
    assigned = random_crn()
    assign(db, first.person_id, assigned)
    clash = same_person_elsewhere(original, crn=assigned, pnc=random_pnc())
    [second] = ingest_records(db, [clash], source="crc-south").results
    assert second.person_id != first.person_id


def test_assigning_is_idempotent_and_a_taken_crn_is_refused(db: Database) -> None:
    [first, other] = ingest_records(db, [make_case_record(), make_case_record()]).results
    assigned = random_crn()
    assert assign(db, first.person_id, assigned).changed
    assert not assign(db, first.person_id, assigned).changed
    with pytest.raises(Conflict):
        assign(db, other.person_id, assigned)


def test_a_merged_persons_assigned_crn_goes_to_the_survivor(db: Database) -> None:
    from gateway.services import review

    [kept, gone] = ingest_records(db, [make_case_record(), make_case_record()]).results
    assigned = random_crn()
    assign(db, gone.person_id, assigned)
    # An operator links the second person's only record to the first: the second is merged.
    db.write(
        lambda session: review.link_record(
            session,
            kept.person_id,
            source_record_id=gone.source_record_id,
            note=None,
            principal=None,
            policy=DEFAULT_POLICY,
            now=utcnow(),
        )
    )
    survivor = person(db, kept.person_id)
    assert survivor.assigned_identifiers is not None
    assert survivor.assigned_identifiers["crn"]["value"] == assigned
    assert survivor.crn == assigned
