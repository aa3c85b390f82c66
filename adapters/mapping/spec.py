"""The mapping file's shape, as pydantic models (the `fields:` tree is checked by the compiler)."""

from __future__ import annotations

import codecs
import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

__all__ = [
    "NAME_PATTERNS",
    "Condition",
    "CsvOptions",
    "DateSpec",
    "FieldSpec",
    "GroupSpec",
    "JsonOptions",
    "MappingFile",
    "RowGrouping",
    "SplitNameSpec",
    "XmlOptions",
]

Text = Annotated[str, StringConstraints(min_length=1)]

#: The name layouts `split_name: {pattern: ...}` knows.
NAME_PATTERNS = ("SURNAME, FORENAMES", "FORENAMES SURNAME", "SURNAME FORENAMES")

# strptime directives that make sense in a date column.
_DATE_DIRECTIVES = frozenset("dmyYbBaAjHIMSpfzZ%")
_DIRECTIVE = re.compile(r"%(.?)")
_PROBE = datetime(2004, 11, 23, 14, 35, 12)  # every field distinct, day > 12
_CONTENT_TYPE = r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$"


class SpecModel(BaseModel):
    """Base of the mapping file's models: unknown keys are mistakes, not extensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


class Condition(SpecModel):
    """`when:` one test on a source field; the field or group applies only when it holds."""

    field: Text
    equals: str | None = None
    not_equals: str | None = None
    in_: list[str] | None = Field(None, alias="in")
    not_in: list[str] | None = None
    present: bool | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        tests = [self.equals, self.not_equals, self.in_, self.not_in, self.present]
        if sum(test is not None for test in tests) != 1:
            raise ValueError(
                "a condition has exactly one test: equals, not_equals, in, not_in or present"
            )
        return self


class DateSpec(SpecModel):
    """`date: {format: "%d/%m/%Y"}`: strptime formats tried in order; the result is a date."""

    format: list[Text] = Field(min_length=1)

    @field_validator("format", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("format")
    @classmethod
    def _valid_formats(cls, formats: list[str]) -> list[str]:
        for spec in formats:
            for directive in _DIRECTIVE.findall(spec):
                if directive not in _DATE_DIRECTIVES:
                    shown = f"%{directive}" if directive else "a lone %"
                    raise ValueError(f"bad date format {spec!r}: {shown} is not a date directive")
            try:
                parsed = datetime.strptime(_PROBE.strftime(spec), spec)
            except ValueError:
                parsed = None
            if parsed is None or parsed.date() != _PROBE.date():
                raise ValueError(
                    f"bad date format {spec!r}: it must give the day, the month and the year "
                    '(e.g. "%d/%m/%Y")'
                )
        return formats


class SplitNameSpec(SpecModel):
    """`split_name:` take the surname or the forenames out of one name field."""

    pattern: str | None = None
    regex: str | None = None
    take: Literal["surname", "forenames"]

    @model_validator(mode="after")
    def _one_layout(self) -> Self:
        if (self.pattern is None) == (self.regex is None):
            raise ValueError("split_name needs one of pattern: or regex:")
        if self.pattern is not None and self.pattern not in NAME_PATTERNS:
            known = ", ".join(repr(pattern) for pattern in NAME_PATTERNS)
            raise ValueError(f"unknown name pattern {self.pattern!r}; known patterns: {known}")
        if self.regex is not None:
            try:
                compiled = re.compile(self.regex)
            except re.error as error:
                raise ValueError(f"split_name regex does not compile: {error}") from None
            if "surname" not in compiled.groupindex:
                raise ValueError("split_name regex needs a named group (?P<surname>...)")
        return self


class FieldSpec(SpecModel):
    """How one canonical field gets its value: a source field (or a constant) and transforms.

    A plain string is short for `{from: <string>}`. Transforms run in a fixed order, whatever
    order they are written in: strip, upper/lower, then split or split_name (which end the
    chain with a list or a name part), else map, date, minutes_to_hours.
    """

    from_: Text | None = Field(None, alias="from")
    const: Any = None
    default: Any = None
    when: list[Condition] | None = None
    strip: bool = False
    upper: bool = False
    lower: bool = False
    split: Annotated[str, StringConstraints(min_length=1, max_length=8)] | None = None
    split_name: SplitNameSpec | None = None
    map_: dict[str, Any] | None = Field(None, alias="map")
    date_: DateSpec | None = Field(None, alias="date")
    minutes_to_hours: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"from": value} if isinstance(value, str) else value

    @field_validator("when", mode="before")
    @classmethod
    def _conditions(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("map_")
    @classmethod
    def _non_empty_map(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not value:
            raise ValueError("map needs at least one code")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.from_ is None) == (self.const is None):
            raise ValueError("a field needs exactly one of from: (a source field) or const:")
        transforms = (
            self.strip,
            self.upper,
            self.lower,
            self.split,
            self.split_name,
            self.map_,
            self.date_,
            self.minutes_to_hours,
            self.default,
        )
        if self.const is not None and any(transforms):
            raise ValueError("transforms and default apply to from:, not to const:")
        if self.upper and self.lower:
            raise ValueError("upper and lower cannot both apply")
        splitters = [name for name in ("split", "split_name") if getattr(self, name) is not None]
        if len(splitters) > 1:
            raise ValueError("split and split_name cannot both apply")
        if splitters and (self.map_ is not None or self.date_ is not None or self.minutes_to_hours):
            raise ValueError(
                f"{splitters[0]} cannot be combined with map, date or minutes_to_hours"
            )
        return self


class RowGrouping(SpecModel):
    """`each_row: {by: Column}`: one item per distinct value of a column within the record."""

    by: Text


class GroupSpec(SpecModel):
    """One way of building items of a list: from repeated source parts, or from the context."""

    each: Text | None = None
    each_row: bool | RowGrouping = False
    when: list[Condition] | None = None
    fields: dict[str, Any]

    @field_validator("when", mode="before")
    @classmethod
    def _conditions(cls, value: Any) -> Any:
        return _as_list(value)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.each is not None and self.each_row is not False:
            raise ValueError("a group takes its items from each: or each_row:, not both")
        return self


class CsvOptions(SpecModel):
    """`csv:` how the file is written; the first row is the header."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    quotechar: str = Field('"', min_length=1, max_length=1)
    encoding: Text = "utf-8"
    group_by: Text | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            name = codecs.lookup(value).name
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        # Lines are split on the byte \n before decoding, which needs an ASCII-compatible codec.
        if '\n,"'.encode(name, errors="replace") != b'\n,"' or name.startswith("utf-16"):
            raise ValueError(f"encoding {value!r} is not ASCII-compatible (utf-8, cp1252, ...)")
        return name


class JsonOptions(SpecModel):
    """`json:` a document with `records:` at a path, or JSON Lines (`lines: true`)."""

    records: Text | None = None
    lines: bool = False

    @model_validator(mode="after")
    def _one_layout(self) -> Self:
        if (self.records is None) == (not self.lines):
            raise ValueError("json needs exactly one of records: (a path) or lines: true")
        return self


class XmlOptions(SpecModel):
    """`xml:` the repeated record element, and the namespace prefixes paths use."""

    record: Text
    namespaces: dict[str, Text] = Field(default_factory=dict)


class MappingFile(SpecModel):
    """A whole mapping file."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,19}$")]
    version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._]{0,8}$")]
    description: str | None = None
    format: Literal["csv", "json", "xml"]
    csv_: CsvOptions | None = Field(None, alias="csv")
    json_: JsonOptions | None = Field(None, alias="json")
    xml_: XmlOptions | None = Field(None, alias="xml")
    content_types: list[Annotated[str, StringConstraints(pattern=_CONTENT_TYPE)]] | None = Field(
        None, min_length=1
    )
    external_id: FieldSpec
    fields: dict[str, Any] = Field(min_length=1)
