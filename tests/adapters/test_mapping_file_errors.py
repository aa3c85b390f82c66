"""A broken mapping file is refused when the adapter is made, naming the file, line and column."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from adapters.mapping import MappingAdapter, MappingConfig, MappingFileError, load_mapping
from adapters.registry import AdapterLoadError
from gateway.services.sources import SourceRegistry
from gateway.settings import Settings, SourceSettings
from tests.adapters.test_mapping import EXAMPLES, write_mapping

VALID = """\
name: merlin
version: "3"
format: json
json:
  records: $.data.cases[*]
external_id: caseRef
fields:
  person.surname: {from: clientName, split_name: {pattern: "SURNAME, FORENAMES", take: surname}}
  person.date_of_birth: {from: dob, date: {format: "%d/%m/%Y"}}
  case.events[]:
    each: orders[*]
    fields:
      event_number: orderNo
      requirements[]:
        each: requirements[*]
        fields:
          category: {from: type, map: {UPW: UNPAID_WORK, RAR: REHABILITATION_ACTIVITY}}
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    """Load the mapping and return its problems as `line:column: message` strings."""
    path = write_mapping(tmp_path, text, "merlin.yaml")
    with pytest.raises(MappingFileError) as raised:
        MappingAdapter(MappingConfig(file=path))
    error = raised.value
    assert isinstance(error, ValueError)
    lines = str(error).splitlines()
    assert all(line.startswith(f"{path}:") for line in lines), lines
    return [line.removeprefix(f"{path}:") for line in lines]


def edited(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new)


def test_the_valid_mapping_loads(tmp_path: Path) -> None:
    mapping = load_mapping(write_mapping(tmp_path, VALID))
    assert (mapping.name, mapping.version, mapping.format) == ("merlin", "3", "json")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "{from: dob, date:",
            "{from: dob, uppercase: true, date:",
            "9:37: unknown transform 'uppercase' (did you mean 'upper'?)",
            id="unknown transform",
        ),
        pytest.param(
            "  person.date_of_birth:",
            "  person.date_of_brith:",
            "9:3: unknown canonical field 'person.date_of_brith' "
            "(did you mean 'person.date_of_birth'?)",
            id="bad canonical path",
        ),
        pytest.param(
            "      event_number: orderNo",
            "      event_numbr: orderNo",
            "13:7: unknown canonical field 'case.events[].event_numbr' "
            "(did you mean 'case.events[].event_number'?)",
            id="bad canonical path in a group",
        ),
        pytest.param(
            '"%d/%m/%Y"',
            '"%d/%m/%Q"',
            "9:52: bad date format '%d/%m/%Q': %Q is not a date directive",
            id="bad date directive",
        ),
        pytest.param(
            '"%d/%m/%Y"',
            '"%d/%m"',
            "9:52: bad date format '%d/%m': it must give the day, the month and the year",
            id="date format without a year",
        ),
        pytest.param(
            "{from: dob, date:",
            "{from: dob, strip: perhaps, date:",
            "9:44: strip: Input should be a valid boolean",
            id="wrong type",
        ),
        pytest.param(
            "  case.events[]:\n",
            "  case.events:\n",
            "10:3: case.events is a list: write case.events[]",
            id="list without []",
        ),
        pytest.param(
            "REHABILITATION_ACTIVITY}",
            "REHAB}",
            "17:63: 'REHAB' is not a RequirementCategory code",
            id="map value outside the code list",
        ),
        pytest.param(
            "each: requirements[*]",
            "each: requirements",
            "15:15: 'requirements' has no [*]",
            id="each without [*]",
        ),
        pytest.param(
            "  records: $.data.cases[*]",
            "  records: $.data.cases",
            "5:12: '$.data.cases' should end with [*]",
            id="records path without [*]",
        ),
        pytest.param(
            "name: merlin\n",
            "name: Merlin Case Manager\n",
            "1:7: name should be 1 to 20 lower-case letters",
            id="bad name",
        ),
        pytest.param(
            "      event_number: orderNo\n",
            "      court: orderNo\n",
            "12:5: case.events[].event_number is required by the canonical schema but not mapped",
            id="required field unmapped",
        ),
    ],
)
def test_a_mistake_is_reported_on_its_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    found = problems(tmp_path, edited(old, new))
    assert any(problem.startswith(expected) for problem in found), found


def test_a_missing_external_id_is_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, edited("external_id: caseRef\n", ""))
    assert found == [
        "1:1: missing 'external_id': say where each record's id is, e.g. `external_id: caseRef`"
    ]


def test_every_mistake_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    text = edited("{from: dob, date:", "{from: dob, lowercase: true, date:")
    text = text.replace(
        "      event_number: orderNo", "      event_number: {from: orderNo, trim: true}"
    )
    found = problems(tmp_path, text)
    assert [problem.split(":")[0] for problem in found] == ["9", "13"]
    assert "did you mean 'lower'" in found[0]
    assert "did you mean 'strip'" in found[1]


def test_yaml_syntax_errors_and_duplicate_keys_name_their_line(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        edited("  person.date_of_birth: {from: dob,", "  person.date_of_birth: {from: dob,,"),
    )[0].startswith("9:")
    duplicate = edited("  person.date_of_birth:", "  person.surname: x\n  person.date_of_birth:")
    assert problems(tmp_path, duplicate) == [
        "9:3: duplicate key 'person.surname' (first written on line 8)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            """\
            name: t
            version: "1"
            format: csv
            json: {records: "$[*]"}
            external_id: ID
            fields:
              person.surname: S
              case.events[]: {each_row: true, fields: {event_number: E}}
            """,
            [
                "4:7: a csv mapping has no json: section",
                "8:29: each_row: needs a CSV mapping with csv.group_by set",
            ],
            id="csv mistakes",
        ),
        pytest.param(
            """\
            name: t
            version: "1"
            format: xml
            xml: {record: "x:Case", namespaces: {p: "urn:example:p"}}
            external_id: "@id"
            fields:
              person.surname: q:Name
            """,
            [
                "4:15: namespace prefix 'x' is not declared in xml.namespaces",
                "7:19: namespace prefix 'q' is not declared in xml.namespaces",
            ],
            id="undeclared namespace prefixes",
        ),
        pytest.param(
            """\
            name: t
            version: "1"
            format: json
            external_id: id
            fields:
              person.identifiers: x
              person.surname: {const: X, strip: true}
              provenance.external_id: id
            """,
            [
                "3:9: a json mapping needs a json: section",
                "6:3: person.identifiers is an object: map its fields, e.g. person.identifiers.crn",
                "7:19: transforms and default apply to from:, not to const:",
                "8:3: provenance.external_id comes from external_id:",
            ],
            id="objects, constants and reserved targets",
        ),
    ],
)
def test_format_and_target_mistakes(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, textwrap.dedent(text)) == expected


def test_an_unreadable_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MappingFileError, match=r"missing\.yaml: cannot read the mapping file"):
        MappingAdapter(MappingConfig(file=tmp_path / "missing.yaml"))
    empty = write_mapping(tmp_path, "", "empty.yaml")
    with pytest.raises(MappingFileError, match="empty"):
        MappingAdapter(MappingConfig(file=empty))


def test_a_self_referring_alias_does_not_recurse_forever(tmp_path: Path) -> None:
    found = problems(tmp_path, VALID + "  person.forenames[]: &loop [*loop]\n")
    assert any("nested too deeply" in problem for problem in found)


def test_the_gateway_refuses_to_start_naming_the_source_file_and_line(tmp_path: Path) -> None:
    path = write_mapping(
        tmp_path, edited("{from: dob, date:", "{from: dob, uppercase: true, date:")
    )
    settings = Settings(
        database_url="sqlite://",
        sources={"crc-merlin": SourceSettings(adapter="mapping", config={"file": str(path)})},
    )
    with pytest.raises(AdapterLoadError) as raised:
        SourceRegistry({"mapping": MappingAdapter}, settings)
    message = str(raised.value)
    assert "'crc-merlin'" in message
    assert re.search(rf"{re.escape(str(path))}:9:37: unknown transform 'uppercase'", message)


def test_a_source_with_a_good_mapping_gets_the_mapping_version(tmp_path: Path) -> None:
    settings = Settings(
        database_url="sqlite://",
        sources={
            "crc-merlin": SourceSettings(
                adapter="mapping", config={"file": str(EXAMPLES / "merlin.yaml")}
            )
        },
    )
    registry = SourceRegistry({"mapping": MappingAdapter}, settings)
    adapter = registry.adapter_for("crc-merlin", "application/json")
    assert adapter.version == "1+merlin-3"
    assert registry.adapter_named("crc-merlin", "mapping") is adapter
    # Without a source's settings there is no mapping to replay through.
    assert registry.adapter_named("crc-other", "mapping") is None


def test_an_invalid_source_config_is_named_without_the_values_given(tmp_path: Path) -> None:
    # A config the adapter's model refuses: the message names the field, never its value (a
    # source's config may hold a secret).
    settings = Settings(
        database_url="sqlite://",
        sources={
            "crc-merlin": SourceSettings(
                adapter="mapping",
                config={"file": str(EXAMPLES / "merlin.yaml"), "token": "s3cret-value"},
            )
        },
    )
    with pytest.raises(AdapterLoadError) as raised:
        SourceRegistry({"mapping": MappingAdapter}, settings)
    message = str(raised.value)
    assert "'crc-merlin'" in message
    assert "token" in message
    assert "s3cret-value" not in message
