"""Reads one serialised ``<Case>`` into a canonical CaseRecord, naming source elements in errors.

Error paths are relative to the ``<Case>`` element: local names joined by ``/`` (no prefixes),
repeatable elements with a 1-based index even when there is one (``Events/Event[1]``), attributes
as ``@name`` (``Events/Event[2]/@number``, ``@lastModified`` for the case's own). The empty path
is the case as a whole. Canonical validation errors are mapped back onto the element the value
came from, so ``case.events.1.sentence.type`` is reported as ``Events/Event[2]/Sentence/Type``.

Elements in the export and contact namespaces must be ones the format defines (an unknown one is
an error, so a misspelt element is not silently lost); elements and attributes in any other
namespace are another vendor's extensions and are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from pydantic import ValidationError

from adapters.base import FieldError, RecordRejected
from adapters.xml_case_export.codes import (
    ADDRESS_STATUS,
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
from adapters.xml_case_export.format import qualified, split_qualified
from adapters.xml_case_export.values import (
    external_id,
    read_date,
    read_timestamp,
    read_whole_number,
    split_name,
)
from schemas import CaseRecord

if TYPE_CHECKING:
    from adapters.xml_case_export.adapter import XmlCaseExportConfig

__all__ = ["CaseReader"]

Loc = tuple[str | int, ...]
CodeT = TypeVar("CodeT")

_EXPORT, _CONTACT = "export", "contact"


@dataclass(frozen=True)
class _Shape:
    """The children (local name: namespace, repeatable) and attributes an element may have."""

    children: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    attributes: frozenset[str] = frozenset()


def _shape(
    export: tuple[str, ...] = (),
    contact: tuple[str, ...] = (),
    *,
    repeated: tuple[str, ...] = (),
    attributes: tuple[str, ...] = (),
) -> _Shape:
    children = {name: (_EXPORT, name in repeated) for name in export}
    children.update({name: (_CONTACT, name in repeated) for name in contact})
    return _Shape(children, frozenset(attributes))


_LEAF: Final = _shape()
_CASE: Final = _shape(
    ("Person", "Events", "Registrations", "Tier", "OffenderManager"),
    attributes=("id", "lastModified", "version"),
)
_PERSON: Final = _shape(
    ("Name", "Aliases", "DateOfBirth", "Gender", "Identifiers"), ("Addresses", "Contact")
)
_ALIASES: Final = _shape(("Alias",), repeated=("Alias",))
_ALIAS: Final = _shape(attributes=("dateOfBirth",))
_IDENTIFIERS: Final = _shape(("CRN", "PNC", "CRO", "NOMS", "NINO"))
_ADDRESSES: Final = _shape(contact=("Address",), repeated=("Address",))
_ADDRESS: Final = _shape(
    contact=("Line", "Town", "County", "Postcode", "From", "To"),
    repeated=("Line",),
    attributes=("status", "noFixedAbode"),
)
_CONTACT_DETAILS: Final = _shape(contact=("Telephone", "Mobile", "Email"))
_EVENTS: Final = _shape(("Event",), repeated=("Event",))
_EVENT: Final = _shape(
    ("ReferralDate", "ConvictionDate", "Court", "Offences", "Sentence", "Requirements"),
    attributes=("number", "active"),
)
_OFFENCES: Final = _shape(("Offence",), repeated=("Offence",))
_OFFENCE: Final = _shape(("Description", "OffenceDate"), attributes=("code", "main"))
_SENTENCE: Final = _shape(("Type", "Length", "StartDate", "ExpectedEndDate", "TerminationDate"))
_REQUIREMENTS: Final = _shape(("Requirement",), repeated=("Requirement",))
_REQUIREMENT: Final = _shape(
    ("Category", "SubCategory", "Amount", "StartDate", "EndDate", "Programme")
)
_REGISTRATIONS: Final = _shape(("Registration",), repeated=("Registration",))
_REGISTRATION: Final = _shape(
    (
        "Type",
        "RiskLevel",
        "MappaCategory",
        "MappaLevel",
        "Code",
        "Description",
        "StartDate",
        "ReviewDate",
    ),
    attributes=("active",),
)
_TIER: Final = _shape(attributes=("assessedOn",))
_AMOUNT: Final = _shape(attributes=("unit",))
_OFFENDER_MANAGER: Final = _shape(("Provider", "Team", "StaffCode", "StaffName"))

# A reader of one text value, and the error type when the text does not read.
_Reader = tuple[Callable[[str], Any], str]
_DATE: Final[_Reader] = (read_date, "date_parsing")
_TIMESTAMP: Final[_Reader] = (read_timestamp, "datetime_parsing")
_NUMBER: Final[_Reader] = (read_whole_number, "int_parsing")


def _code(table: CodeTable[CodeT]) -> _Reader:
    def read(word: str) -> CodeT:
        code = table.lookup(word)
        if code is None:
            raise ValueError(f"unknown {table.what}; expected one of: {table.expected()}")
        return code

    return read, "unknown_code"


_FLAG: Final = _code(FLAG)
_GENDER: Final = _code(GENDER)
_ADDRESS_STATUS: Final = _code(ADDRESS_STATUS)
_SENTENCE_TYPE: Final = _code(SENTENCE_TYPE)
_LENGTH_UNIT: Final = _code(LENGTH_UNIT)
_REQUIREMENT_CATEGORY: Final = _code(REQUIREMENT_CATEGORY)
_REQUIREMENT_UNIT: Final = _code(REQUIREMENT_UNIT)
_REGISTRATION_TYPE: Final = _code(REGISTRATION_TYPE)
_RISK_LEVEL: Final = _code(RISK_LEVEL)


def _join(path: str, step: str) -> str:
    return f"{path}/{step}" if path else step


def _within(path: str, ancestor: str) -> bool:
    """Whether `path` is `ancestor` or lies beneath it."""
    return not ancestor or path == ancestor or path.startswith(f"{ancestor}/")


def _attribute(element: Element, name: str) -> str | None:
    value = element.get(name)
    if value is None:
        return None
    return value.strip() or None


def _own_text(element: Element) -> str | None:
    """The element's own text (not its children's), trimmed; None when blank."""
    if len(element):
        text = "".join([element.text or "", *(child.tail or "" for child in element)])
    else:
        text = element.text or ""
    return text.strip() or None


class _NestedTooDeeply(Exception):
    pass


class _DepthLimitedBuilder:
    """An ElementTree builder that refuses elements nested deeper than a limit."""

    def __init__(self, max_depth: int) -> None:
        self._builder = TreeBuilder()
        self._depth = 0
        self._max_depth = max_depth

    def start(self, tag: str, attrib: dict[str, str]) -> Element:
        self._depth += 1
        if self._depth > self._max_depth:
            raise _NestedTooDeeply
        return self._builder.start(tag, attrib)

    def end(self, tag: str) -> Element:
        self._depth -= 1
        return self._builder.end(tag)

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> Element:
        return self._builder.close()


def _rejected(message: str, type_: str, external_id: str | None = None) -> RecordRejected:
    return RecordRejected(
        [FieldError(path="", message=message, type=type_)], external_id=external_id
    )


class CaseReader:
    """Turns the ``{"xml": "<Case>...</Case>"}`` data of a raw record into a CaseRecord."""

    def __init__(self, config: XmlCaseExportConfig) -> None:
        self._namespaces = {_EXPORT: config.namespace, _CONTACT: config.contact_namespace}
        self._own_namespaces = frozenset({"", config.namespace, config.contact_namespace})
        self._record = qualified(config.namespace, config.record_element)
        self._record_name = config.record_element
        self._max_depth = config.max_depth

    def read(self, raw: Any) -> CaseRecord:
        text = raw.get("xml") if isinstance(raw, dict) else None
        if not isinstance(text, str):
            raise _rejected(
                'a raw record of this adapter is {"xml": "<Case ...>...</Case>"}', "dict_type"
            )
        case = self._parse(text)
        case_id = external_id(case.get("id"))
        reading = _Reading(self._namespaces, self._own_namespaces)
        document = reading.record(case)
        try:
            record = CaseRecord.model_validate(document)
        except ValidationError as error:
            if not reading.errors:
                raise RecordRejected(
                    reading.source_errors(error), external_id=case_id, document=document
                ) from None
            errors = reading.errors + reading.source_errors(error)
        else:
            if not reading.errors:
                return record
            errors = reading.errors
        raise RecordRejected(errors, external_id=case_id)

    def _parse(self, text: str) -> Element:
        parser = DefusedXMLParser(
            target=_DepthLimitedBuilder(self._max_depth),
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        try:
            parser.feed(text)
            case: Element = parser.close()
        except ParseError as error:
            raise _rejected(f"the case XML cannot be read: {error}", "xml_syntax") from None
        except DefusedXmlException:
            raise _rejected(
                "the case XML holds a DTD, an entity or an external reference", "xml_forbidden"
            ) from None
        except _NestedTooDeeply:
            raise _rejected(
                f"the case XML nests more than {self._max_depth} levels deep", "xml_too_deep"
            ) from None
        if case.tag != self._record:
            namespace, local = split_qualified(case.tag)
            raise _rejected(
                f"expected a {self._record_name} element in namespace "
                f"{self._namespaces[_EXPORT]}, found {local} in {namespace or 'no namespace'}",
                "unexpected_element",
            )
        return case


class _Reading:
    """One translation: the canonical dict being built, errors, and where each value came from."""

    def __init__(self, namespaces: Mapping[str, str], own_namespaces: frozenset[str]) -> None:
        self._namespaces = namespaces
        self._own_namespaces = own_namespaces
        self.errors: list[FieldError] = []
        self._paths: dict[Loc, str] = {(): ""}

    # Building blocks.

    def fail(self, path: str, message: str, type_: str) -> None:
        self.errors.append(FieldError(path=path, message=message, type=type_))

    def children(self, element: Element, path: str, shape: _Shape) -> dict[str, list[Element]]:
        """The element's children by local name; reports unknown and repeated ones."""
        found: dict[str, list[Element]] = {}
        if not element.attrib and not len(element):
            return found  # most elements: a leaf with text only
        for child in element:
            namespace, local = split_qualified(child.tag)
            expected = shape.children.get(local)
            if expected is not None and self._namespaces[expected[0]] == namespace:
                found.setdefault(local, []).append(child)
            elif namespace in self._own_namespaces:
                self.fail(_join(path, local), f"unexpected element {local}", "unexpected_element")
        for local, items in found.items():
            if len(items) > 1 and not shape.children[local][1]:
                self.fail(
                    _join(path, f"{local}[2]"), f"{local} appears more than once", "duplicate"
                )
        for name in element.attrib:
            if name[:1] != "{" and name not in shape.attributes:
                self.fail(_join(path, f"@{name}"), f"unexpected attribute {name}", "unexpected")
        return found

    def leaf(
        self, found: Mapping[str, list[Element]], local: str, path: str, shape: _Shape = _LEAF
    ) -> tuple[Element | None, str | None]:
        """A text-only child: the element and its trimmed text (None when absent or blank)."""
        items = found.get(local)
        if not items:
            return None, None
        element = items[0]
        self.children(element, _join(path, local), shape)
        return element, _own_text(element)

    def text(self, found: Mapping[str, list[Element]], local: str, path: str) -> str | None:
        return self.leaf(found, local, path)[1]

    def put(
        self,
        target: dict[str, Any],
        key: str,
        loc: Loc,
        path: str,
        text: str | None,
        reader: _Reader | None = None,
    ) -> None:
        """Set target[key] from text (read if a reader is given); remember where it came from."""
        self._paths[loc] = path
        if text is None:
            return
        if reader is None:
            target[key] = text
            return
        read, error_type = reader
        try:
            target[key] = read(text)
        except ValueError as error:
            self.fail(path, str(error), error_type)

    def items(
        self, found: Mapping[str, list[Element]], container: str, item: str, path: str, loc: Loc
    ) -> list[tuple[Element, str, Loc]]:
        """The items of a list container (``Events/Event``), each with its path and loc."""
        self._paths[loc] = _join(path, container)
        containers = found.get(container)
        if not containers:
            return []
        container_path = _join(path, container)
        shape = self._list_shape(containers[0], item)
        listed = self.children(containers[0], container_path, shape).get(item, [])
        return [
            (element, f"{container_path}/{item}[{index + 1}]", (*loc, index))
            for index, element in enumerate(listed)
        ]

    def _list_shape(self, container: Element, item: str) -> _Shape:
        namespace = split_qualified(container.tag)[0]
        role = _CONTACT if namespace == self._namespaces[_CONTACT] else _EXPORT
        return _Shape({item: (role, True)})

    def source_errors(self, error: ValidationError) -> list[FieldError]:
        """Canonical validation errors, each on the source element its value came from.

        A value the adapter could not read was left out of the record, so the canonical errors
        on that element or above it (a required field missing, a unit without its amount) are
        consequences of an error already reported, and are dropped.
        """
        reported = {known["path"] for known in self.errors}
        errors: list[FieldError] = []
        for item in error.errors(include_url=False, include_input=False):
            loc = tuple(item["loc"])
            path = ""
            for end in range(len(loc), -1, -1):
                known = self._paths.get(loc[:end])
                if known is not None:
                    path = known
                    break
            if any(_within(earlier, path) for earlier in reported):
                continue
            errors.append(FieldError(path=path, message=item["msg"], type=item["type"]))
        return errors

    # The record.

    def record(self, case: Element) -> dict[str, Any]:
        found = self.children(case, "", _CASE)
        provenance: dict[str, Any] = {}
        loc: Loc = ("provenance",)
        self._paths[loc] = ""
        self.put(provenance, "external_id", (*loc, "external_id"), "@id", _attribute(case, "id"))
        self.put(
            provenance,
            "source_version",
            (*loc, "source_version"),
            "@version",
            _attribute(case, "version"),
        )
        self.put(
            provenance,
            "source_updated_at",
            (*loc, "source_updated_at"),
            "@lastModified",
            _attribute(case, "lastModified"),
            _TIMESTAMP,
        )
        document: dict[str, Any] = {"provenance": provenance}
        self._paths[("person",)] = "Person"
        people = found.get("Person")
        if people:
            document["person"] = self.person(people[0], "Person")
        if any(found.get(name) for name in ("Events", "Registrations", "Tier", "OffenderManager")):
            document["case"] = self.case(found)
        return document

    def person(self, element: Element, path: str) -> dict[str, Any]:
        found = self.children(element, path, _PERSON)
        loc: Loc = ("person",)
        person: dict[str, Any] = {}
        name_path = _join(path, "Name")
        self._paths[(*loc, "surname")] = self._paths[(*loc, "forenames")] = name_path
        self.name_into(person, self.text(found, "Name", path), name_path)
        self.put(
            person,
            "date_of_birth",
            (*loc, "date_of_birth"),
            _join(path, "DateOfBirth"),
            self.text(found, "DateOfBirth", path),
            _DATE,
        )
        self.put(
            person,
            "sex",
            (*loc, "sex"),
            _join(path, "Gender"),
            self.text(found, "Gender", path),
            _GENDER,
        )
        person["aliases"] = [
            self.alias(alias, alias_path, alias_loc)
            for alias, alias_path, alias_loc in self.items(
                found, "Aliases", "Alias", path, (*loc, "aliases")
            )
        ]
        identifiers = found.get("Identifiers")
        if identifiers:
            person["identifiers"] = self.identifiers(
                identifiers[0], _join(path, "Identifiers"), (*loc, "identifiers")
            )
        person["addresses"] = [
            self.address(address, address_path, address_loc)
            for address, address_path, address_loc in self.items(
                found, "Addresses", "Address", path, (*loc, "addresses")
            )
        ]
        contact = found.get("Contact")
        if contact:
            person["contact"] = self.contact(contact[0], _join(path, "Contact"), (*loc, "contact"))
        return person

    def name_into(self, target: dict[str, Any], text: str | None, path: str) -> None:
        if text is None:
            self.fail(path, "name is empty; expected SURNAME, Forenames", "missing")
            return
        try:
            target["surname"], target["forenames"] = split_name(text)
        except ValueError as error:
            self.fail(path, str(error), "name_format")

    def alias(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        self.children(element, path, _ALIAS)
        self._paths[loc] = path
        alias: dict[str, Any] = {}
        self.name_into(alias, _own_text(element), path)
        self.put(
            alias,
            "date_of_birth",
            (*loc, "date_of_birth"),
            f"{path}/@dateOfBirth",
            _attribute(element, "dateOfBirth"),
            _DATE,
        )
        return alias

    def identifiers(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        found = self.children(element, path, _IDENTIFIERS)
        self._paths[loc] = path
        identifiers: dict[str, Any] = {}
        for local in ("CRN", "PNC", "CRO", "NOMS", "NINO"):
            key = local.lower()
            self.put(
                identifiers, key, (*loc, key), _join(path, local), self.text(found, local, path)
            )
        return identifiers

    def address(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        found = self.children(element, path, _ADDRESS)
        self._paths[loc] = path
        address: dict[str, Any] = {}
        self.put(
            address,
            "status",
            (*loc, "status"),
            f"{path}/@status",
            _attribute(element, "status"),
            _ADDRESS_STATUS,
        )
        self.put(
            address,
            "no_fixed_abode",
            (*loc, "no_fixed_abode"),
            f"{path}/@noFixedAbode",
            _attribute(element, "noFixedAbode"),
            _FLAG,
        )
        lines: list[str] = []
        self._paths[(*loc, "lines")] = f"{path}/Line"
        for index, line in enumerate(found.get("Line", [])):
            line_path = f"{path}/Line[{index + 1}]"
            self.children(line, line_path, _LEAF)
            self._paths[(*loc, "lines", len(lines))] = line_path
            text = _own_text(line)
            if text is not None:
                lines.append(text)
        address["lines"] = lines
        for local, key, reader in (
            ("Town", "town", None),
            ("County", "county", None),
            ("Postcode", "postcode", None),
            ("From", "start_date", _DATE),
            ("To", "end_date", _DATE),
        ):
            self.put(
                address, key, (*loc, key), _join(path, local), self.text(found, local, path), reader
            )
        return address

    def contact(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        found = self.children(element, path, _CONTACT_DETAILS)
        self._paths[loc] = path
        contact: dict[str, Any] = {}
        for local in ("Telephone", "Mobile", "Email"):
            key = local.lower()
            self.put(contact, key, (*loc, key), _join(path, local), self.text(found, local, path))
        return contact

    def case(self, found: Mapping[str, list[Element]]) -> dict[str, Any]:
        loc: Loc = ("case",)
        self._paths[loc] = ""
        case: dict[str, Any] = {}
        events = [
            self.event(event, event_path, event_loc)
            for event, event_path, event_loc in self.items(
                found, "Events", "Event", "", (*loc, "events")
            )
        ]
        seen: set[str] = set()
        for index, event in enumerate(events):
            number = str(event.get("event_number", "")).strip()
            if number and number in seen:
                self.fail(
                    f"Events/Event[{index + 1}]/@number",
                    "event number is repeated within the case",
                    "duplicate",
                )
            seen.add(number)
        case["events"] = events
        case["registrations"] = [
            self.registration(registration, registration_path, registration_loc)
            for registration, registration_path, registration_loc in self.items(
                found, "Registrations", "Registration", "", (*loc, "registrations")
            )
        ]
        tier, tier_text = self.leaf(found, "Tier", "", _TIER)
        assessed_on = None if tier is None else _attribute(tier, "assessedOn")
        if tier_text is not None or assessed_on is not None:
            tier_document: dict[str, Any] = {}
            case["tier"] = tier_document
            self._paths[(*loc, "tier")] = "Tier"
            self.put(tier_document, "value", (*loc, "tier", "value"), "Tier", tier_text)
            self.put(
                tier_document,
                "assessed_on",
                (*loc, "tier", "assessed_on"),
                "Tier/@assessedOn",
                assessed_on,
                _DATE,
            )
        managers = found.get("OffenderManager")
        if managers:
            case["offender_manager"] = self.offender_manager(
                managers[0], "OffenderManager", (*loc, "offender_manager")
            )
        return case

    def event(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        found = self.children(element, path, _EVENT)
        self._paths[loc] = path
        event: dict[str, Any] = {}
        self.put(
            event,
            "event_number",
            (*loc, "event_number"),
            f"{path}/@number",
            _attribute(element, "number"),
        )
        self.put(
            event,
            "active",
            (*loc, "active"),
            f"{path}/@active",
            _attribute(element, "active"),
            _FLAG,
        )
        for local, key, reader in (
            ("ReferralDate", "referral_date", _DATE),
            ("ConvictionDate", "conviction_date", _DATE),
            ("Court", "court", None),
        ):
            self.put(
                event, key, (*loc, key), _join(path, local), self.text(found, local, path), reader
            )
        event["offences"] = [
            self.offence(offence, offence_path, offence_loc)
            for offence, offence_path, offence_loc in self.items(
                found, "Offences", "Offence", path, (*loc, "offences")
            )
        ]
        sentences = found.get("Sentence")
        if sentences:
            event["sentence"] = self.sentence(
                sentences[0], _join(path, "Sentence"), (*loc, "sentence")
            )
        event["requirements"] = [
            self.requirement(requirement, requirement_path, requirement_loc)
            for requirement, requirement_path, requirement_loc in self.items(
                found, "Requirements", "Requirement", path, (*loc, "requirements")
            )
        ]
        return event

    def offence(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        found = self.children(element, path, _OFFENCE)
        self._paths[loc] = path
        offence: dict[str, Any] = {}
        self.put(offence, "code", (*loc, "code"), f"{path}/@code", _attribute(element, "code"))
        self.put(
            offence, "main", (*loc, "main"), f"{path}/@main", _attribute(element, "main"), _FLAG
        )
        for local, key, reader in (
            ("Description", "description", None),
            ("OffenceDate", "offence_date", _DATE),
        ):
            self.put(
                offence, key, (*loc, key), _join(path, local), self.text(found, local, path), reader
            )
        return offence

    def sentence(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        found = self.children(element, path, _SENTENCE)
        self._paths[loc] = path
        sentence: dict[str, Any] = {}
        self.put(
            sentence,
            "type",
            (*loc, "type"),
            _join(path, "Type"),
            self.text(found, "Type", path),
            _SENTENCE_TYPE,
        )
        self.amount_into(
            sentence, found, path, loc, "Length", ("length", "length_unit"), _LENGTH_UNIT
        )
        for local, key in (
            ("StartDate", "start_date"),
            ("ExpectedEndDate", "expected_end_date"),
            ("TerminationDate", "termination_date"),
        ):
            self.put(
                sentence, key, (*loc, key), _join(path, local), self.text(found, local, path), _DATE
            )
        return sentence

    def amount_into(
        self,
        target: dict[str, Any],
        found: Mapping[str, list[Element]],
        path: str,
        loc: Loc,
        local: str,
        keys: tuple[str, str],
        unit_reader: _Reader,
    ) -> None:
        """A number with its unit as an attribute: ``<Length unit="Months">12</Length>``."""
        element, text = self.leaf(found, local, path, _AMOUNT)
        amount_key, unit_key = keys
        self.put(target, amount_key, (*loc, amount_key), _join(path, local), text, _NUMBER)
        unit = None if element is None else _attribute(element, "unit")
        self.put(target, unit_key, (*loc, unit_key), f"{path}/{local}/@unit", unit, unit_reader)

    def requirement(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        found = self.children(element, path, _REQUIREMENT)
        self._paths[loc] = path
        requirement: dict[str, Any] = {}
        self.put(
            requirement,
            "category",
            (*loc, "category"),
            _join(path, "Category"),
            self.text(found, "Category", path),
            _REQUIREMENT_CATEGORY,
        )
        self.amount_into(
            requirement, found, path, loc, "Amount", ("amount", "unit"), _REQUIREMENT_UNIT
        )
        for local, key, reader in (
            ("SubCategory", "sub_category", None),
            ("StartDate", "start_date", _DATE),
            ("EndDate", "end_date", _DATE),
            ("Programme", "programme", None),
        ):
            self.put(
                requirement,
                key,
                (*loc, key),
                _join(path, local),
                self.text(found, local, path),
                reader,
            )
        return requirement

    def registration(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        found = self.children(element, path, _REGISTRATION)
        self._paths[loc] = path
        registration: dict[str, Any] = {}
        self.put(
            registration,
            "active",
            (*loc, "active"),
            f"{path}/@active",
            _attribute(element, "active"),
            _FLAG,
        )
        for local, key, reader in (
            ("Type", "type", _REGISTRATION_TYPE),
            ("RiskLevel", "rosh_level", _RISK_LEVEL),
            ("MappaCategory", "mappa_category", _NUMBER),
            ("MappaLevel", "mappa_level", _NUMBER),
            ("Code", "code", None),
            ("Description", "description", None),
            ("StartDate", "start_date", _DATE),
            ("ReviewDate", "review_date", _DATE),
        ):
            self.put(
                registration,
                key,
                (*loc, key),
                _join(path, local),
                self.text(found, local, path),
                reader,
            )
        return registration

    def offender_manager(self, element: Element, path: str, loc: Loc) -> dict[str, Any]:
        found = self.children(element, path, _OFFENDER_MANAGER)
        self._paths[loc] = path
        manager: dict[str, Any] = {}
        for local, key in (
            ("Provider", "provider_code"),
            ("Team", "team_code"),
            ("StaffCode", "staff_code"),
            ("StaffName", "staff_name"),
        ):
            self.put(manager, key, (*loc, key), _join(path, local), self.text(found, local, path))
        return manager
