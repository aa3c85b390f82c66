"""Identity resolution in the write path: links, merges, review, twins, human decisions."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.base import AdapterConfig
from adapters.canonical import CanonicalAdapter
from gateway.db import Database
from gateway.matching import match_keys, view_of
from gateway.models import (
    Change,
    MatchDecision,
    MatchExclusion,
    MatchKey,
    Person,
    SourceRecord,
    utcnow,
)
from gateway.repositories import matching as matching_repo
from gateway.services import review
from gateway.services.golden import DEFAULT_POLICY
from gateway.services.identity import Matcher, default_matcher
from gateway.services.ingest import BatchResult, Outcome
from gateway.settings import MatchingSettings
from schemas import CaseRecord
from tests.builders import (
    OMIT,
    ingest_records,
    make_case_record,
    random_cro,
    random_pnc,
)

ADAPTER = CanonicalAdapter(AdapterConfig())


def push(
    db: Database,
    records: Sequence[Any],
    *,
    source: str = "crc-north",
    matcher: Matcher | None = None,
) -> BatchResult:
    result: BatchResult = ingest_records(db, list(records), source=source, matcher=matcher)
    return result


def person_of(db: Database, source: str, external_id: str) -> uuid.UUID:
    return db.read(
        lambda s: s.scalar(
            select(SourceRecord.person_id).where(
                SourceRecord.source == source, SourceRecord.external_id == external_id
            )
        )
    )


def clusters(db: Database) -> dict[tuple[str, str], uuid.UUID]:
    rows = db.read(
        lambda s: s.execute(
            select(SourceRecord.source, SourceRecord.external_id, SourceRecord.person_id)
        ).all()
    )
    return {(source, external_id): person_id for source, external_id, person_id in rows}


def changes(db: Database) -> list[Change]:
    return list(db.read(lambda s: s.scalars(select(Change).order_by(Change.seq)).all()))


def decisions(db: Database) -> list[MatchDecision]:
    return list(
        db.read(lambda s: s.scalars(select(MatchDecision).order_by(MatchDecision.created_at)).all())
    )


def ext(record: dict[str, Any]) -> str:
    value: str = record["provenance"]["external_id"]
    return value


def fresh_id() -> dict[str, Any]:
    return {"external_id": f"ext-{uuid.uuid4().hex[:12]}"}


def same_person_elsewhere(record: dict[str, Any], **person: Any) -> dict[str, Any]:
    """Another source's copy of the same person: no shared identifiers, other changes given."""
    other = copy.deepcopy(record)
    other["provenance"].update(fresh_id())
    other["person"]["identifiers"] = {}
    ingest_person: dict[str, Any] = other["person"]
    ingest_person.update(person)
    return other


def test_a_copy_with_a_typo_and_no_identifiers_links_to_the_same_person(db: Database) -> None:
    original = make_case_record(person={"surname": "Fictionworth"})
    push(db, [original])
    copy_with_typo = same_person_elsewhere(original, surname="Fictionwroth")

    result = push(db, [copy_with_typo], source="crc-south")

    assert result.results[0].person_id == person_of(db, "crc-north", ext(original))
    assert db.read(lambda s: s.scalar(select(func.count()).select_from(Person))) == 1
    decision = decisions(db)[-1]
    assert decision.kind == "automatic"
    assert decision.method == "probabilistic"
    assert decision.band == "link"
    assert decision.model_version == default_matcher().model.version
    fields = {c["field"] for c in decision.explanation["best"]["comparisons"]}
    assert {"surname", "forename", "date_of_birth", "address"} <= fields
    assert result.match_seconds
    assert all(seconds >= 0 for seconds in result.match_seconds)


def test_an_exact_strong_identifier_links_through_a_change_of_name(db: Database) -> None:
    original = make_case_record()
    push(db, [original])
    renamed = make_case_record(
        person={
            "date_of_birth": original["person"]["date_of_birth"],
            "identifiers": {"pnc": original["person"]["identifiers"]["pnc"], "crn": OMIT},
        }
    )
    renamed["person"]["identifiers"].pop("noms")

    push(db, [renamed], source="crc-south")

    assert person_of(db, "crc-south", ext(renamed)) == person_of(db, "crc-north", ext(original))
    assert decisions(db)[-1].method == "identifier"


@pytest.mark.parametrize(
    ("born", "identifiers", "guard"),
    [
        # The same PNC, but neither name nor the date of birth is close: a reused or mistyped
        # PNC on someone else's record.
        ("1930-01-02", {"crn": OMIT}, "identifier_collision"),
        # The same PNC and date of birth, another CRN and other names: the weights say new
        # person, the PNC says link, the CRN says no. Two live persons would hold one PNC.
        (None, {"noms": OMIT}, "identifier_conflict:crn"),
    ],
)
def test_a_shared_pnc_that_cannot_link_always_leaves_a_review_item(
    db: Database, born: str | None, identifiers: dict[str, Any], guard: str
) -> None:
    original = make_case_record(person={"forenames": ["Peregrine"], "surname": "Pretendley"})
    push(db, [original])
    other = make_case_record(
        person={
            "forenames": ["Wilhelmina"],
            "surname": "Inventedale",
            "date_of_birth": born or original["person"]["date_of_birth"],
            "identifiers": {"pnc": original["person"]["identifiers"]["pnc"], **identifiers},
        }
    )
    other["person"]["identifiers"].pop("noms", None)

    push(db, [other], source="crc-south")

    assert person_of(db, "crc-south", ext(other)) != person_of(db, "crc-north", ext(original))
    pending = [d for d in decisions(db) if d.status == "pending"]
    assert len(pending) == 1
    assert guard in pending[0].explanation["best"]["guards"]


def test_conflicting_strong_identifiers_never_link_and_go_to_review(db: Database) -> None:
    original = make_case_record()
    push(db, [original])
    # Everything agrees but the PNC, which is another valid one: never joined automatically.
    other = copy.deepcopy(original)
    other["provenance"].update(fresh_id())
    other["person"]["identifiers"] = {"pnc": random_pnc()}

    push(db, [other], source="crc-south")

    assert person_of(db, "crc-south", ext(other)) != person_of(db, "crc-north", ext(original))
    pending = [d for d in decisions(db) if d.status == "pending"]
    assert len(pending) == 1
    assert pending[0].candidate_person_id == person_of(db, "crc-north", ext(original))
    assert "identifier_conflict:pnc" in pending[0].explanation["best"]["guards"]


def test_twins_are_kept_apart(db: Database) -> None:
    first = make_case_record(person={"forenames": ["Zebedee"], "surname": "Madeupson"})
    twin = copy.deepcopy(first)
    twin["provenance"].update(fresh_id())
    twin["person"]["forenames"] = ["Araminta"]
    twin["person"]["sex"] = "FEMALE"
    twin["person"]["identifiers"] = {"pnc": random_pnc()}

    push(db, [first, twin])

    assert person_of(db, "crc-north", ext(first)) != person_of(db, "crc-north", ext(twin))


def _two_persons_and_a_bridge() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    pnc, cro = random_pnc(), random_cro()
    left = make_case_record(
        person={
            "forenames": ["Peregrine"],
            "surname": "Pretendley",
            "date_of_birth": "1971-03-04",
            "identifiers": {"pnc": pnc, "crn": OMIT, "noms": OMIT},
        }
    )
    right = make_case_record(
        person={
            "forenames": ["Wilhelmina"],
            "surname": "Inventedale",
            # Born the same day as the left-hand record: a shared CRO is then corroborated,
            # not an identifier on someone else's record (a collision, which goes to review).
            "date_of_birth": "1971-03-04",
            "identifiers": {"cro": cro, "pnc": OMIT, "crn": OMIT, "noms": OMIT},
        }
    )
    bridge = make_case_record(
        person={
            "forenames": ["Peregrine"],
            "surname": "Pretendley",
            "date_of_birth": "1971-03-04",
            "identifiers": {"pnc": pnc, "cro": cro, "crn": OMIT, "noms": OMIT},
        }
    )
    return left, right, bridge


def test_a_record_that_ties_two_persons_merges_them_and_the_merge_is_an_event(
    db: Database,
) -> None:
    left, right, bridge = _two_persons_and_a_bridge()
    push(db, [left])
    push(db, [right])
    survivor, loser = person_of(db, "crc-north", ext(left)), person_of(db, "crc-north", ext(right))
    assert survivor != loser

    result = push(db, [bridge], source="crc-south")

    assert result.results[0].person_id == survivor
    assert set(clusters(db).values()) == {survivor}
    merged = db.read(lambda s: s.get(Person, loser))
    assert merged is not None
    assert merged.merged_into_id == survivor
    [event] = [c for c in changes(db) if c.type == "person.merged"]
    assert event.person_id == survivor
    assert event.snapshot["merged_person_ids"] == [str(loser)]
    assert decisions(db)[-1].method == "merge"


def test_merges_in_one_batch_leave_no_person_behind(db: Database) -> None:
    left, right, bridge = _two_persons_and_a_bridge()

    result = push(db, [left, right, bridge])

    ids = {r.person_id for r in result.results}
    assert len(ids) == 1
    assert set(clusters(db).values()) == ids
    types = [c.type for c in changes(db)]
    # Nobody was told of the person created and merged within the batch.
    assert types.count("person.created") == 1
    assert "person.merged" not in types


def test_junk_placeholders_do_not_make_a_match(db: Database) -> None:
    base = {
        "date_of_birth": "1900-01-01",
        "addresses": [{"status": "MAIN", "postcode": "NF1 1NF", "no_fixed_abode": True}],
        "identifiers": {"cro": "000000/00Z", "crn": OMIT, "pnc": OMIT, "noms": OMIT},
    }
    first = make_case_record(person={**base, "forenames": ["Barnaby"], "surname": "Synthetica"})
    second = make_case_record(person={**base, "forenames": ["Ottoline"], "surname": "Imaginaire"})

    push(db, [first])
    push(db, [second], source="crc-south")

    assert person_of(db, "crc-north", ext(first)) != person_of(db, "crc-south", ext(second))


def test_an_identical_resend_never_changes_a_cluster(db: Database) -> None:
    original = make_case_record()
    push(db, [original, same_person_elsewhere(original)])
    before = clusters(db)
    keys_before = db.read(lambda s: s.scalar(select(func.count()).select_from(MatchKey)))

    result = push(db, [copy.deepcopy(original)])

    assert [r.outcome for r in result.results] == [Outcome.UNCHANGED]
    assert clusters(db) == before
    assert db.read(lambda s: s.scalar(select(func.count()).select_from(MatchKey))) == keys_before


def test_matching_off_links_on_crn_only_and_writes_no_keys(db: Database) -> None:
    off = Matcher.build(MatchingSettings(enabled=False), DEFAULT_POLICY)
    original = make_case_record()

    push(db, [original, same_person_elsewhere(original)], matcher=off)

    assert len(set(clusters(db).values())) == 2
    assert db.read(lambda s: s.scalar(select(func.count()).select_from(MatchKey))) == 0


def _settle(db: Database, decision_id: uuid.UUID, verdict: review.ReviewVerdict) -> None:
    db.write(
        lambda s: review.decide_review(
            s,
            decision_id,
            verdict=verdict,
            note="checked the files",
            principal=None,
            policy=DEFAULT_POLICY,
            now=utcnow(),
        )
    )


def _possible_match(db: Database) -> tuple[dict[str, Any], dict[str, Any], MatchDecision]:
    original = make_case_record()
    push(db, [original])
    other = copy.deepcopy(original)
    other["provenance"].update(fresh_id())
    other["person"]["identifiers"] = {"pnc": random_pnc()}
    push(db, [other], source="crc-south")
    [pending] = [d for d in decisions(db) if d.status == "pending"]
    return original, other, pending


def test_a_review_link_moves_the_record_and_its_emptied_person_redirects(db: Database) -> None:
    original, other, pending = _possible_match(db)
    emptied = person_of(db, "crc-south", ext(other))

    _settle(db, pending.id, review.ReviewVerdict.LINK)

    target = person_of(db, "crc-north", ext(original))
    assert person_of(db, "crc-south", ext(other)) == target
    assert db.read(lambda s: s.get(Person, emptied)).merged_into_id == target  # type: ignore[union-attr]
    settled = db.read(lambda s: s.get(MatchDecision, pending.id))
    assert settled is not None
    assert settled.status == "linked"
    assert changes(db)[-1].type == "person.merged"


def test_not_a_match_is_remembered_and_no_automatic_merge_undoes_it(db: Database) -> None:
    original, other, pending = _possible_match(db)
    _settle(db, pending.id, review.ReviewVerdict.NOT_A_MATCH)
    apart = (person_of(db, "crc-north", ext(original)), person_of(db, "crc-south", ext(other)))
    assert db.read(lambda s: s.scalar(select(func.count()).select_from(MatchExclusion))) == 1

    # A third copy with no identifiers ties both strongly: it must not merge them.
    third = same_person_elsewhere(original)
    push(db, [third], source="crc-east")

    assert (
        person_of(db, "crc-north", ext(original)),
        person_of(db, "crc-south", ext(other)),
    ) == apart
    assert person_of(db, "crc-east", ext(third)) in apart
    with pytest.raises(Exception, match="already settled"):
        _settle(db, pending.id, review.ReviewVerdict.LINK)


def test_a_split_makes_a_new_person_and_survives_later_automatic_passes(db: Database) -> None:
    original = make_case_record()
    copy_elsewhere = same_person_elsewhere(original)
    push(db, [original, copy_elsewhere])
    person = person_of(db, "crc-north", ext(original))
    moved = db.read(
        lambda s: s.scalar(
            select(SourceRecord.id).where(SourceRecord.external_id == ext(copy_elsewhere))
        )
    )

    new = db.write(
        lambda s: review.split_records(
            s,
            person,
            source_record_ids=[moved],
            note=None,
            principal=None,
            policy=DEFAULT_POLICY,
            now=utcnow(),
        )
    )

    assert person_of(db, "crc-north", ext(copy_elsewhere)) == new.id
    split = [c for c in changes(db) if c.type == "person.split"]
    assert split
    assert split[-1].snapshot["split_from_person_id"] == str(person)
    # Automatic passes afterwards: a changed re-send of each, and a new copy tying both.
    changed = copy.deepcopy(copy_elsewhere)
    changed["person"]["contact"] = {"mobile": "07700 900123"}
    push(db, [changed])
    push(db, [same_person_elsewhere(original)], source="crc-east")
    assert person_of(db, "crc-north", ext(copy_elsewhere)) == new.id
    assert person_of(db, "crc-north", ext(original)) == person


def test_a_manual_link_pins_the_record(db: Database) -> None:
    first, second = make_case_record(), make_case_record()
    push(db, [first])
    push(db, [second], source="crc-south")
    target = person_of(db, "crc-north", ext(first))
    record_id = db.read(
        lambda s: s.scalar(select(SourceRecord.id).where(SourceRecord.external_id == ext(second)))
    )

    decision = db.write(
        lambda s: review.link_record(
            s,
            target,
            source_record_id=record_id,
            note=None,
            principal=None,
            policy=DEFAULT_POLICY,
            now=utcnow(),
        )
    )

    assert decision.kind == "human"
    assert decision.method == "manual_link"
    record = db.read(lambda s: s.get(SourceRecord, record_id))
    assert record is not None
    assert record.pinned
    assert record.person_id == target


def test_a_possible_match_a_later_merge_settled_leaves_the_queue(db: Database) -> None:
    original, other, pending = _possible_match(db)
    # What an automatic merge does to the record's person, without touching the review item.
    db.write(
        lambda s: matching_repo.move_person_records(
            s,
            from_person_ids=[person_of(db, "crc-south", ext(other))],
            to_person_id=person_of(db, "crc-north", ext(original)),
        )
    )

    items, _next = db.write(
        lambda s: review.review_queue(s, after=None, limit=10, principal=None, now=utcnow())
    )

    assert items == []
    settled = db.read(lambda s: s.get(MatchDecision, pending.id))
    assert settled is not None
    assert settled.status == "superseded"


def test_a_record_sent_twice_in_one_batch_keeps_one_set_of_keys(db: Database) -> None:
    first = make_case_record()
    changed = copy.deepcopy(first)
    changed["person"]["surname"] = "Inventedale"
    changed["person"]["date_of_birth"] = "1966-06-16"

    push(db, [first, changed])

    keys = db.read(lambda s: s.scalars(select(MatchKey.key)).all())
    expected = match_keys(
        view_of(CaseRecord.model_validate(changed).person.model_dump(mode="json"))
    )
    assert sorted(keys) == sorted(expected)


def test_an_update_that_ties_another_person_merges_them(db: Database) -> None:
    left, right, _bridge = _two_persons_and_a_bridge()
    push(db, [left])
    push(db, [right])
    survivor, loser = person_of(db, "crc-north", ext(left)), person_of(db, "crc-north", ext(right))
    # The source learns the right-hand person's PNC, which is the left-hand one's.
    learned = copy.deepcopy(right)
    learned["person"]["identifiers"]["pnc"] = left["person"]["identifiers"]["pnc"]

    result = push(db, [learned])

    assert result.results[0].outcome is Outcome.UPDATED
    assert result.results[0].person_id == survivor
    assert set(clusters(db).values()) == {survivor}
    merged = [c for c in changes(db) if c.type == "person.merged"]
    assert merged
    assert merged[-1].snapshot["merged_person_ids"] == [str(loser)]
    assert decisions(db)[-1].method == "merge"


def test_an_update_that_takes_the_evidence_away_splits_and_a_pinned_record_stays(
    db: Database,
) -> None:
    left, right, _bridge = _two_persons_and_a_bridge()
    copy_of_left = same_person_elsewhere(left)
    push(db, [left, copy_of_left])
    push(db, [right])
    person = person_of(db, "crc-north", ext(left))
    # Its details change beyond recognition: it leaves, and the copy keeps the person.
    changed = copy.deepcopy(left)
    changed["person"]["surname"] = "Madeupson"
    changed["person"]["date_of_birth"] = "1999-09-09"
    result = push(db, [changed])
    assert person_of(db, "crc-north", ext(copy_of_left)) == person
    assert person_of(db, "crc-north", ext(left)) != person
    assert result.results[0].person_id == person_of(db, "crc-north", ext(left))
    split = [c for c in changes(db) if c.type == "person.split"]
    assert [c.person_id for c in split] == [person_of(db, "crc-north", ext(left))]
    assert split[0].snapshot["split_from_person_id"] == str(person)

    # A pinned record that comes to carry another person's identifier merges nothing.
    record_id = db.read(
        lambda s: s.scalar(select(SourceRecord.id).where(SourceRecord.external_id == ext(right)))
    )
    db.write(
        lambda s: review.link_record(
            s,
            person_of(db, "crc-north", ext(right)),
            source_record_id=record_id,
            note=None,
            principal=None,
            policy=DEFAULT_POLICY,
            now=utcnow(),
        )
    )
    pinned = copy.deepcopy(right)
    pinned["person"]["identifiers"]["pnc"] = left["person"]["identifiers"]["pnc"]
    push(db, [pinned])
    assert person_of(db, "crc-north", ext(right)) != person
    # A pinned record whose details change beyond recognition stays where a person put it.
    unrecognisable = copy.deepcopy(pinned)
    unrecognisable["person"]["surname"] = "Otherwiseson"
    unrecognisable["person"]["date_of_birth"] = "1998-08-08"
    before = person_of(db, "crc-north", ext(right))
    push(db, [unrecognisable])
    assert person_of(db, "crc-north", ext(right)) == before


def test_an_update_that_drops_the_identifier_tying_two_records_splits_them(db: Database) -> None:
    first = make_case_record()
    pnc = first["person"]["identifiers"]["pnc"]
    # Surname and date of birth agree, little else: the shared PNC is what ties them.
    second = same_person_elsewhere(
        first,
        identifiers={"pnc": pnc},
        forenames=["Quillon"],
        addresses=[
            {
                "status": "MAIN",
                "lines": ["77 Otherplace Avenue"],
                "town": "Elsewhere",
                "postcode": "ZZ9 9ZZ",
                "no_fixed_abode": False,
            }
        ],
    )
    push(db, [first])
    push(db, [second], source="crc-south")
    person = person_of(db, "crc-north", ext(first))
    assert person_of(db, "crc-south", ext(second)) == person

    dropped = copy.deepcopy(second)
    dropped["person"]["identifiers"] = {}
    result = push(db, [dropped], source="crc-south")

    assert person_of(db, "crc-north", ext(first)) == person
    moved_to = person_of(db, "crc-south", ext(second))
    assert moved_to != person
    assert result.results[0].person_id == moved_to
    moved = [d for d in decisions(db) if d.method == "reevaluated"]
    assert [d.person_id for d in moved] == [moved_to]
    # Surname and date of birth still agree: the pair waits for a person's look.
    pending = [d for d in decisions(db) if d.status == "pending"]
    assert len(pending) == 1
    assert {pending[0].person_id, pending[0].candidate_person_id} == {person, moved_to}
    # Sent again unchanged, nothing moves.
    push(db, [dropped], source="crc-south")
    assert person_of(db, "crc-south", ext(second)) == moved_to


def test_a_new_record_that_bridges_two_persons_merges_them(db: Database) -> None:
    left, right, bridge = _two_persons_and_a_bridge()
    push(db, [left])
    push(db, [right], source="crc-south")
    assert person_of(db, "crc-north", ext(left)) != person_of(db, "crc-south", ext(right))

    push(db, [bridge], source="crc-east")

    assert person_of(db, "crc-north", ext(left)) == person_of(db, "crc-south", ext(right))
    assert "person.merged" in [c.type for c in changes(db)]
