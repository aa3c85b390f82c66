from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

import schemas
from schemas import (
    SCHEMA_VERSION,
    CanonicalModel,
    CaseRecord,
    Identifiers,
    LengthUnit,
    Person,
    Registration,
    RegistrationType,
    Requirement,
    RequirementCategory,
    RequirementUnit,
    RoshLevel,
    Sentence,
    SentenceType,
    Tier,
)
from tests.builders import OMIT, make_case_record

Loc = tuple[int | str, ...]


def validation_errors(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as excinfo:
        CaseRecord.model_validate(data)
    return [dict(error) for error in excinfo.value.errors()]


def only_error(data: dict[str, Any]) -> tuple[Loc, str]:
    errors = validation_errors(data)
    assert len(errors) == 1, errors
    return tuple(errors[0]["loc"]), errors[0]["msg"]


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = make_case_record()["case"]["events"][0]
    event.update(overrides)
    return event


def with_event(**overrides: Any) -> dict[str, Any]:
    return make_case_record(case={"events": [_event(**overrides)]})


EVENT: Loc = ("case", "events", 0)


# --- schema version ------------------------------------------------------------------------------


def test_schema_version_is_one_and_defaults() -> None:
    assert SCHEMA_VERSION == 1
    record = CaseRecord.model_validate(make_case_record(schema_version=OMIT))
    assert record.schema_version == SCHEMA_VERSION


def test_other_schema_version_rejected() -> None:
    loc, _ = only_error(make_case_record(schema_version=2))
    assert loc == ("schema_version",)


# --- unknown fields ------------------------------------------------------------------------------


def _object_paths(value: Any, path: Loc = ()) -> Iterator[Loc]:
    """Yield the path of every JSON object in ``value``."""
    if isinstance(value, dict):
        yield path
        for key, child in value.items():
            yield from _object_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _object_paths(child, (*path, index))


def _full_record() -> dict[str, Any]:
    """A builder record that also has every optional object (alias, contact details)."""
    return make_case_record(
        person={
            "aliases": [{"forenames": ["Alias"], "surname": "Otherwise"}],
            "contact": {"mobile": "07700 900000", "email": "someone@example.org"},
        }
    )


def _node(data: Any, path: Loc) -> Any:
    for step in path:
        data = data[step]
    return data


FULL_RECORD_OBJECT_PATHS = list(_object_paths(_full_record()))


def _model_classes(value: Any) -> set[type[CanonicalModel]]:
    if isinstance(value, CanonicalModel):
        found: set[type[CanonicalModel]] = {type(value)}
        for field in type(value).model_fields:
            found |= _model_classes(getattr(value, field))
        return found
    if isinstance(value, list):
        return set().union(*map(_model_classes, value)) if value else set()
    return set()


def test_full_record_reaches_every_model() -> None:
    # Guards the next test: it can only prove extra="forbid" on models the record contains.
    every_model = {
        cls for cls in vars(schemas).values() if isinstance(cls, type) and cls is not CanonicalModel
    } & set(_all_subclasses(CanonicalModel))
    reached = _model_classes(CaseRecord.model_validate(_full_record()))
    assert reached == every_model
    assert len(reached) == 15


def _all_subclasses(cls: type[CanonicalModel]) -> Iterator[type[CanonicalModel]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


@pytest.mark.parametrize(
    "path", FULL_RECORD_OBJECT_PATHS, ids=lambda p: ".".join(map(str, p)) or "root"
)
def test_unknown_field_rejected_at_every_level(path: Loc) -> None:
    data = _full_record()
    _node(data, path)["unexpected_field"] = "x"
    errors = validation_errors(data)
    assert [(tuple(e["loc"]), e["type"]) for e in errors] == [
        ((*path, "unexpected_field"), "extra_forbidden")
    ]


# --- provenance ----------------------------------------------------------------------------------


def test_provenance_source_filled_or_omitted() -> None:
    assert CaseRecord.model_validate(make_case_record()).provenance.source is None
    record = CaseRecord.model_validate(make_case_record(provenance={"source": "crc-c16"}))
    assert record.provenance.source == "crc-c16"


@pytest.mark.parametrize("source", ["CRC", "-crc", "crc_c16", "", "a" * 64])
def test_provenance_bad_source_slug_rejected(source: str) -> None:
    loc, _ = only_error(make_case_record(provenance={"source": source}))
    assert loc == ("provenance", "source")


def test_provenance_external_id_stripped_and_bounded() -> None:
    record = CaseRecord.model_validate(make_case_record(provenance={"external_id": "  ab-1 "}))
    assert record.provenance.external_id == "ab-1"
    for bad in ["   ", "x" * 129]:
        loc, _ = only_error(make_case_record(provenance={"external_id": bad}))
        assert loc == ("provenance", "external_id")
    loc, _ = only_error(make_case_record(provenance={"external_id": OMIT}))
    assert loc == ("provenance", "external_id")


def test_provenance_timestamps_must_be_aware() -> None:
    loc, _ = only_error(make_case_record(provenance={"source_updated_at": "2024-05-01T10:00:00"}))
    assert loc == ("provenance", "source_updated_at")
    record = CaseRecord.model_validate(
        make_case_record(provenance={"received_at": "2024-05-01T10:00:00+01:00"})
    )
    assert record.provenance.received_at is not None
    assert record.provenance.received_at.utcoffset() is not None


# --- person and identifiers ----------------------------------------------------------------------


def test_identifiers_canonicalised_on_the_way_in() -> None:
    data = make_case_record(
        person={
            "identifiers": {
                "crn": " x320741",
                "pnc": "02/73319z",
                "cro": "65656/91h",
                "noms": "a1234bc",
                "nino": "ab 12 34 56 c",
            }
        }
    )
    identifiers = CaseRecord.model_validate(data).person.identifiers
    assert identifiers == Identifiers(
        crn="X320741", pnc="2002/0073319Z", cro="065656/91H", noms="A1234BC", nino="AB123456C"
    )


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("pnc", "02/73319Q", "PNC check letter should be Z, got Q"),
        ("pnc", "not-a-pnc", "PNC ID should be"),
        ("cro", "65656/91A", "CRO check letter should be H, got A"),
        ("crn", "X32074", "CRN should be one letter followed by six digits"),
        ("noms", "A123BC", "NOMS number should be"),
        ("nino", "QQ123456C", "prefix QQ is never issued"),
    ],
)
def test_invalid_identifier_reported_on_its_field_path(field: str, raw: str, message: str) -> None:
    loc, msg = only_error(make_case_record(person={"identifiers": {field: raw}}))
    assert loc == ("person", "identifiers", field)
    assert message in msg


def test_identifier_must_be_a_string() -> None:
    loc, _ = only_error(make_case_record(person={"identifiers": {"crn": 320741}}))
    assert loc == ("person", "identifiers", "crn")


def test_person_minimal_defaults() -> None:
    person = Person(surname="Fictionworth")
    assert person.forenames == []
    assert person.identifiers == Identifiers()
    assert person.addresses == []
    assert person.aliases == []


def test_names_stripped_and_blank_rejected() -> None:
    data = make_case_record(person={"surname": "  Madeupson ", "forenames": [" Zebedee"]})
    person = CaseRecord.model_validate(data).person
    assert (person.surname, person.forenames) == ("Madeupson", ["Zebedee"])
    loc, _ = only_error(make_case_record(person={"surname": "   "}))
    assert loc == ("person", "surname")


def test_at_most_ten_forenames() -> None:
    CaseRecord.model_validate(make_case_record(person={"forenames": ["Zebedee"] * 10}))
    loc, _ = only_error(make_case_record(person={"forenames": ["Zebedee"] * 11}))
    assert loc == ("person", "forenames")


def test_postcode_canonicalised() -> None:
    data = make_case_record(person={"addresses": [{"status": "MAIN", "postcode": " sw1a1aa"}]})
    assert CaseRecord.model_validate(data).person.addresses[0].postcode == "SW1A 1AA"


def test_invalid_postcode_reported_on_its_field_path() -> None:
    data = make_case_record(person={"addresses": [{"status": "MAIN", "postcode": "SW1A 1CI"}]})
    loc, msg = only_error(data)
    assert loc == ("person", "addresses", 0, "postcode")
    assert "postcode should be a UK postcode" in msg


def test_no_fixed_abode_postcode_valid() -> None:
    data = make_case_record(
        person={"addresses": [{"status": "MAIN", "postcode": "nf1 1nf", "no_fixed_abode": True}]}
    )
    assert CaseRecord.model_validate(data).person.addresses[0].postcode == "NF1 1NF"


def test_address_rules() -> None:
    too_many_lines = {"status": "MAIN", "lines": ["1 Imaginary Road"] * 7}
    loc, _ = only_error(make_case_record(person={"addresses": [too_many_lines]}))
    assert loc == ("person", "addresses", 0, "lines")
    backwards = {"status": "PREVIOUS", "start_date": "2020-05-01", "end_date": "2020-04-30"}
    loc, msg = only_error(make_case_record(person={"addresses": [backwards]}))
    assert loc == ("person", "addresses", 0)
    assert "end_date is before start_date" in msg
    loc, _ = only_error(make_case_record(person={"addresses": [{"status": "HOME"}]}))
    assert loc == ("person", "addresses", 0, "status")


@pytest.mark.parametrize("email", ["someone", "some one@example.org", "a@b", "a@@b.org"])
def test_implausible_email_rejected(email: str) -> None:
    loc, _ = only_error(make_case_record(person={"contact": {"email": email}}))
    assert loc == ("person", "contact", "email")


# --- events, sentences, requirements -------------------------------------------------------------


def test_sentence_length_and_unit_come_together() -> None:
    sentence = {"type": "CUSTODY", "length": 6}
    loc, msg = only_error(with_event(sentence=sentence))
    assert loc == (*EVENT, "sentence")
    assert "length and length_unit must be given together" in msg
    with pytest.raises(ValidationError, match="given together"):
        Sentence(type=SentenceType.CUSTODY, length_unit=LengthUnit.MONTHS)
    Sentence(type=SentenceType.CUSTODY)


def test_sentence_length_positive() -> None:
    loc, _ = only_error(
        with_event(sentence={"type": "LICENCE", "length": 0, "length_unit": "DAYS"})
    )
    assert loc == (*EVENT, "sentence", "length")


def test_sentence_expected_end_before_start_rejected() -> None:
    sentence = {
        "type": "COMMUNITY_ORDER",
        "start_date": "2024-03-01",
        "expected_end_date": "2024-02-29",
    }
    loc, msg = only_error(with_event(sentence=sentence))
    assert loc == (*EVENT, "sentence")
    assert "expected_end_date is before start_date" in msg


def test_sentence_termination_before_start_rejected() -> None:
    sentence = {"type": "CUSTODY", "start_date": "2024-03-01", "termination_date": "2024-01-01"}
    loc, msg = only_error(with_event(sentence=sentence))
    assert loc == (*EVENT, "sentence")
    assert "termination_date is before start_date" in msg


@pytest.mark.parametrize(
    ("category", "unit", "expected"),
    [
        ("UNPAID_WORK", "DAYS", "UNPAID_WORK requirement unit should be HOURS, got DAYS"),
        (
            "REHABILITATION_ACTIVITY",
            "HOURS",
            "REHABILITATION_ACTIVITY requirement unit should be DAYS, got HOURS",
        ),
    ],
)
def test_requirement_unit_fixed_by_category(category: str, unit: str, expected: str) -> None:
    requirement = {"category": category, "amount": 10, "unit": unit}
    loc, msg = only_error(with_event(requirements=[requirement]))
    assert loc == (*EVENT, "requirements", 0)
    assert expected in msg


def test_requirement_unit_free_where_category_does_not_fix_it() -> None:
    for unit in RequirementUnit:
        Requirement(category=RequirementCategory.CURFEW, amount=3, unit=unit)


def test_requirement_amount_and_unit_come_together() -> None:
    loc, msg = only_error(with_event(requirements=[{"category": "UNPAID_WORK", "amount": 120}]))
    assert loc == (*EVENT, "requirements", 0)
    assert "amount and unit must be given together" in msg
    with pytest.raises(ValidationError, match="given together"):
        Requirement(category=RequirementCategory.CURFEW, unit=RequirementUnit.HOURS)


def test_requirement_amount_not_negative_and_dates_in_order() -> None:
    negative = {"category": "UNPAID_WORK", "amount": -1, "unit": "HOURS"}
    loc, _ = only_error(with_event(requirements=[negative]))
    assert loc == (*EVENT, "requirements", 0, "amount")
    backwards = {"category": "CURFEW", "start_date": "2024-01-02", "end_date": "2024-01-01"}
    loc, msg = only_error(with_event(requirements=[backwards]))
    assert "end_date is before start_date" in msg


def test_event_has_at_most_one_main_offence() -> None:
    offence = {"code": "02800", "main": True}
    loc, msg = only_error(with_event(offences=[offence, offence]))
    assert loc == EVENT
    assert "at most one main offence" in msg


@pytest.mark.parametrize("code", ["2800", "028000", "0280A", "TH68010"])
def test_offence_code_is_five_digits(code: str) -> None:
    loc, _ = only_error(with_event(offences=[{"code": code, "main": True}]))
    assert loc == (*EVENT, "offences", 0, "code")


def test_event_numbers_unique_within_case() -> None:
    data = make_case_record(case={"events": [_event(), _event()]})
    loc, msg = only_error(data)
    assert loc == ("case",)
    assert "event_number is repeated" in msg


# --- registrations -------------------------------------------------------------------------------


def with_registration(**registration: Any) -> dict[str, Any]:
    return make_case_record(case={"registrations": [registration]})


REGISTRATION: Loc = ("case", "registrations", 0)


def test_rosh_requires_level() -> None:
    loc, msg = only_error(with_registration(type="ROSH"))
    assert loc == REGISTRATION
    assert "rosh_level is required" in msg


def test_rosh_level_forbidden_on_other_types() -> None:
    loc, msg = only_error(with_registration(type="DOMESTIC_ABUSE", rosh_level="HIGH"))
    assert loc == REGISTRATION
    assert "rosh_level is only allowed on a ROSH registration" in msg


@pytest.mark.parametrize(
    "mappa", [{}, {"mappa_category": 1}, {"mappa_level": 2}], ids=["none", "category", "level"]
)
def test_mappa_requires_category_and_level(mappa: dict[str, int]) -> None:
    loc, msg = only_error(with_registration(type="MAPPA", **mappa))
    assert loc == REGISTRATION
    assert "mappa_category and mappa_level are required" in msg


def test_mappa_fields_forbidden_on_other_types() -> None:
    loc, msg = only_error(with_registration(type="ROSH", rosh_level="LOW", mappa_level=1))
    assert loc == REGISTRATION
    assert "only allowed on a MAPPA registration" in msg


@pytest.mark.parametrize("field", ["mappa_category", "mappa_level"])
@pytest.mark.parametrize("value", [0, 4])
def test_mappa_numbers_between_one_and_three(field: str, value: int) -> None:
    registration = {"type": "MAPPA", "mappa_category": 2, "mappa_level": 2, field: value}
    loc, _ = only_error(with_registration(**registration))
    assert loc == (*REGISTRATION, field)


def test_valid_mappa_registration() -> None:
    registration = Registration(type=RegistrationType.MAPPA, mappa_category=1, mappa_level=3)
    assert (registration.mappa_category, registration.mappa_level) == (1, 3)


def test_rosh_delius_code_must_agree_with_level() -> None:
    loc, msg = only_error(with_registration(type="ROSH", rosh_level="HIGH", code="RMRH"))
    assert loc == REGISTRATION
    assert "does not agree with rosh_level" in msg
    # A source's own code is not second-guessed.
    Registration(type=RegistrationType.ROSH, rosh_level=RoshLevel.HIGH, code="CRC-RISK-H")


# --- tier and offender manager -------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value"), [("b2", "B2"), (" A3 ", "A3"), ("d0", "D0")])
def test_tier_canonicalised(raw: str, value: str) -> None:
    assert Tier(value=raw).value == value


@pytest.mark.parametrize("raw", ["E1", "A4", "B", "2B", "B22", ""])
def test_invalid_tier_rejected(raw: str) -> None:
    loc, _ = only_error(make_case_record(case={"tier": {"value": raw}}))
    assert loc == ("case", "tier", "value")


def test_tier_levels_derived_and_not_serialised() -> None:
    tier = Tier(value="c1")
    assert (tier.protect_level, tier.change_level) == ("C", 1)
    assert tier.model_dump(mode="json") == {"value": "C1", "assessed_on": None}


def test_offender_manager_requires_provider_code() -> None:
    loc, _ = only_error(make_case_record(case={"offender_manager": {"provider_code": OMIT}}))
    assert loc == ("case", "offender_manager", "provider_code")


def test_record_without_case_is_valid() -> None:
    assert CaseRecord.model_validate(make_case_record(case=None)).case is None
    assert CaseRecord.model_validate(make_case_record(case=OMIT)).case is None
