from schemas import CaseRecord, RequirementCategory, RequirementUnit, RoshLevel, SentenceType
from schemas.identifiers import canonical_crn, canonical_noms, canonical_pnc
from tests.builders import (
    OMIT,
    make_case_record,
    make_identifiers,
    random_cro,
    random_nino,
)


def test_builder_output_validates_as_described() -> None:
    data = make_case_record()
    record = CaseRecord.model_validate(data)
    assert "source" not in data["provenance"]
    assert record.provenance.external_id.startswith("ext-")
    assert [a.status for a in record.person.addresses] == ["MAIN"]
    assert record.person.addresses[0].postcode == data["person"]["addresses"][0]["postcode"]
    assert record.case is not None
    (event,) = record.case.events
    assert event.sentence is not None
    assert event.sentence.type is SentenceType.COMMUNITY_ORDER
    assert [(r.category, r.amount, r.unit) for r in event.requirements] == [
        (RequirementCategory.UNPAID_WORK, 120, RequirementUnit.HOURS),
        (RequirementCategory.REHABILITATION_ACTIVITY, 20, RequirementUnit.DAYS),
    ]
    (registration,) = record.case.registrations
    assert registration.rosh_level is RoshLevel.MEDIUM
    assert record.case.tier is not None
    assert record.case.tier.value == "B2"
    assert record.case.offender_manager is not None


def test_builder_output_is_already_canonical() -> None:
    data = make_case_record()
    assert CaseRecord.model_validate(data).model_dump(mode="json", exclude_unset=True) == data


def test_each_record_is_fresh() -> None:
    first, second = make_case_record(), make_case_record()
    assert first["provenance"]["external_id"] != second["provenance"]["external_id"]
    for kind in ("crn", "pnc", "noms"):
        assert first["person"]["identifiers"][kind] != second["person"]["identifiers"][kind]


def test_overrides_deep_merge() -> None:
    data = make_case_record(person={"surname": "Okafor", "identifiers": {"cro": "65656/91H"}})
    assert data["person"]["surname"] == "Okafor"
    assert data["person"]["forenames"]
    assert data["person"]["identifiers"]["cro"] == "65656/91H"
    assert data["person"]["identifiers"]["crn"]
    assert CaseRecord.model_validate(data).person.identifiers.cro == "065656/91H"


def test_overrides_replace_lists_and_omit_keys() -> None:
    data = make_case_record(person={"addresses": [], "date_of_birth": OMIT}, case=None)
    assert data["person"]["addresses"] == []
    assert "date_of_birth" not in data["person"]
    assert data["case"] is None
    CaseRecord.model_validate(data)


def test_overrides_do_not_leak_between_calls() -> None:
    shared = {"lines": ["1 Imaginary Road"], "status": "MAIN"}
    data = make_case_record(person={"addresses": [shared]})
    data["person"]["addresses"][0]["lines"].append("mutated")
    assert shared["lines"] == ["1 Imaginary Road"]


def test_make_identifiers_are_canonical_and_valid() -> None:
    identifiers = make_identifiers()
    assert set(identifiers) == {"crn", "pnc", "noms"}
    assert canonical_crn(identifiers["crn"]) == identifiers["crn"]
    assert canonical_pnc(identifiers["pnc"]) == identifiers["pnc"]
    assert canonical_noms(identifiers["noms"]) == identifiers["noms"]
    extended = make_identifiers(cro=random_cro(), nino=random_nino())
    record = make_case_record(person={"identifiers": extended})
    assert CaseRecord.model_validate(record).person.identifiers.model_dump() == extended
