"""Each pushed record says what identity resolution did with it, and by which method."""

from __future__ import annotations

import copy
from typing import Any

from gateway.db import Database
from gateway.services.golden import DEFAULT_POLICY
from gateway.services.identity import Matcher
from gateway.services.ingest import LinkMethod, Outcome, PersonResolution
from gateway.settings import MatchingSettings
from tests.builders import (
    OMIT,
    another_record_of,
    ingest_records,
    make_case_record,
    random_pnc,
)
from tests.services.test_identity import _two_persons_and_a_bridge


def resolutions(result: Any) -> list[tuple[PersonResolution | None, LinkMethod | None]]:
    return [(r.resolution, r.method) for r in result.results]


def test_a_record_with_no_match_makes_a_new_person(db: Database) -> None:
    result = ingest_records(db, [make_case_record()])

    assert resolutions(result) == [(PersonResolution.NEW_PERSON, None)]


def test_a_shared_strong_identifier_is_a_link_by_that_identifier(db: Database) -> None:
    original = make_case_record(person={"identifiers": {"crn": OMIT, "noms": OMIT}})
    ingest_records(db, [original])
    renamed = make_case_record(
        person={
            "date_of_birth": original["person"]["date_of_birth"],
            "identifiers": {
                "pnc": original["person"]["identifiers"]["pnc"],
                "crn": OMIT,
                "noms": OMIT,
            },
        }
    )

    result = ingest_records(db, [renamed], source="crc-south")

    assert resolutions(result) == [(PersonResolution.LINKED, LinkMethod.PNC)]


def test_the_strongest_shared_identifier_names_the_link(db: Database) -> None:
    original = make_case_record()
    ingest_records(db, [original])
    # The CRN and the PNC both agree: the CRN, the central system's own reference, is named.
    copied = another_record_of(original, identifiers=dict(original["person"]["identifiers"]))

    result = ingest_records(db, [copied], source="crc-south")

    assert resolutions(result) == [(PersonResolution.LINKED, LinkMethod.CRN)]


def test_a_close_copy_with_no_identifiers_is_a_probabilistic_link(db: Database) -> None:
    original = make_case_record(person={"surname": "Fictionworth"})
    ingest_records(db, [original])

    result = ingest_records(
        db, [another_record_of(original, surname="Fictionwroth")], source="crc-south"
    )

    assert resolutions(result) == [(PersonResolution.LINKED, LinkMethod.PROBABILISTIC)]


def test_a_possible_match_waits_for_review(db: Database) -> None:
    original = make_case_record()
    ingest_records(db, [original])
    # Everything agrees but the PNC, which is another valid one: never linked automatically.
    conflicting = another_record_of(original, identifiers={"pnc": random_pnc()})

    result = ingest_records(db, [conflicting], source="crc-south")

    assert resolutions(result) == [(PersonResolution.REVIEW, None)]
    assert result.results[0].person_id is not None


def test_a_record_that_ties_two_persons_is_linked_by_merging_them(db: Database) -> None:
    left, right, bridge = _two_persons_and_a_bridge()
    ingest_records(db, [left])
    ingest_records(db, [right])

    result = ingest_records(db, [bridge], source="crc-south")

    assert resolutions(result) == [(PersonResolution.LINKED, LinkMethod.MERGED)]


def test_an_update_is_resolved_only_when_it_ties_another_person(db: Database) -> None:
    left, right, _bridge = _two_persons_and_a_bridge()
    ingest_records(db, [left, right])
    moved = copy.deepcopy(left)
    moved["person"]["addresses"] = []
    learned = copy.deepcopy(right)
    learned["person"]["identifiers"]["pnc"] = left["person"]["identifiers"]["pnc"]

    plain = ingest_records(db, [moved])
    tying = ingest_records(db, [learned])

    assert [r.outcome for r in plain.results] == [Outcome.UPDATED]
    assert resolutions(plain) == [(None, None)]
    assert [r.outcome for r in tying.results] == [Outcome.UPDATED]
    assert resolutions(tying) == [(PersonResolution.LINKED, LinkMethod.MERGED)]


def test_unchanged_and_rejected_records_carry_no_resolution(db: Database) -> None:
    original = make_case_record()
    ingest_records(db, [original])
    # Nothing to identify or store it by: rejected under any data-quality rule.
    unidentifiable = {"nonsense": True}

    result = ingest_records(db, [copy.deepcopy(original), unidentifiable])

    assert [r.outcome for r in result.results] == [Outcome.UNCHANGED, Outcome.REJECTED]
    assert resolutions(result) == [(None, None), (None, None)]


def test_with_matching_off_a_crn_link_and_a_new_person_are_told_apart(db: Database) -> None:
    off = Matcher.build(MatchingSettings(enabled=False), DEFAULT_POLICY)
    original = make_case_record()
    same_crn = another_record_of(
        original, identifiers={"crn": original["person"]["identifiers"]["crn"]}
    )

    result = ingest_records(db, [original, same_crn], matcher=off)

    assert resolutions(result) == [
        (PersonResolution.NEW_PERSON, None),
        (PersonResolution.LINKED, LinkMethod.CRN),
    ]
