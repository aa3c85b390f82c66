"""Compiled field rules: read a source value, test `when:`, apply the transforms in order.

Error messages never repeat the value they are about: raw records hold names, dates of birth
and identifiers, and these messages end up in quarantine listings and logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from adapters.mapping.sources import Context, SourcePath

__all__ = ["ABSENT", "FieldRule", "NameSplit", "Test", "TransformError", "blank", "text_of"]


class _Absent:
    """No value: the source field is missing or blank, or `when:` does not hold."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()

WILDCARD_CODE: Final = "*"
_SHOWN_CODES: Final = 12


class TransformError(Exception):
    """A value that a transform cannot take; becomes a field error of the record."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


def blank(value: Any) -> bool:
    """Whether a source value counts as missing: None, empty or spaces, or an empty list."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list) and not value


def text_of(value: Any) -> str:
    """A scalar source value as text (JSON true is `true`, as YAML writes it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    kind = "a list" if isinstance(value, list) else "an object"
    raise TransformError(f"expected a single value, found {kind}", "value_type")


@dataclass(frozen=True)
class Test:
    """One `when:` condition."""

    source: SourcePath
    equals: str | None = None
    not_equals: str | None = None
    one_of: frozenset[str] | None = None
    none_of: frozenset[str] | None = None
    present: bool | None = None

    def holds(self, context: Context) -> bool:
        raw = self.source.read(context)
        if self.present is not None:
            return (not blank(raw)) == self.present
        value = None if blank(raw) else text_of(raw).strip()
        if self.equals is not None:
            return value == self.equals
        if self.not_equals is not None:
            return value != self.not_equals
        if self.one_of is not None:
            return value in self.one_of
        return value not in (self.none_of or frozenset())


def all_hold(tests: tuple[Test, ...], context: Context) -> bool:
    return all(test.holds(context) for test in tests)


_LAYOUTS: Final = {
    "SURNAME, FORENAMES": re.compile(r"\s*(?P<surname>[^,]*?)\s*,\s*(?P<forenames>.*?)\s*"),
    "FORENAMES SURNAME": re.compile(r"\s*(?:(?P<forenames>.*\S)\s+)?(?P<surname>\S+)\s*"),
    "SURNAME FORENAMES": re.compile(r"\s*(?P<surname>\S+)(?:\s+(?P<forenames>.*?))?\s*"),
}


@dataclass(frozen=True)
class NameSplit:
    """`split_name:` a layout (or a regex with named groups) and the part to take."""

    layout: str
    pattern: re.Pattern[str]
    take: str

    @classmethod
    def of(cls, *, pattern: str | None, regex: str | None, take: str) -> NameSplit:
        if regex is not None:
            return cls(layout="the split_name regex", pattern=re.compile(regex), take=take)
        layout = pattern or ""
        return cls(layout=f"the form {layout}", pattern=_LAYOUTS[layout], take=take)

    def apply(self, text: str) -> Any:
        match = self.pattern.fullmatch(text)
        if match is None or not (match.groupdict().get("surname") or "").strip():
            raise TransformError(f"name is not in {self.layout}", "name_format")
        if self.take == "surname":
            return match["surname"].strip()
        forenames = match.groupdict().get("forenames") or ""
        return forenames.split() or ABSENT


@dataclass(frozen=True)
class FieldRule:
    """How one canonical value is made: source (or constant), condition, transforms, default."""

    source: SourcePath | None = None
    const: Any = None
    default: Any = None
    when: tuple[Test, ...] = ()
    strip: bool = False
    upper: bool = False
    lower: bool = False
    split: str | None = None
    split_name: NameSplit | None = None
    codes: Mapping[str, Any] | None = None
    date_formats: tuple[str, ...] = ()
    minutes_to_hours: bool = False
    #: Set for canonical text fields, so a JSON number (an order number 3) arrives as "3".
    as_text: bool = False
    #: Set for canonical lists of values, so one value (a single XML element) is a list of one.
    as_list: bool = False

    @property
    def sourced(self) -> bool:
        return self.source is not None

    def value(self, context: Context) -> tuple[Any, bool]:
        """The value for this context (or ABSENT), and whether it came from the source.

        Raises TransformError or SourceShapeError.
        """
        if not all_hold(self.when, context):
            return ABSENT, False
        if self.source is None:
            return self.const, False
        value = self._transform(self.source.read(context))
        if value is not ABSENT:
            return ([value] if self.as_list and not isinstance(value, list) else value), True
        return (ABSENT if self.default is None else self.default), False

    def _transform(self, raw: Any) -> Any:
        if isinstance(raw, list):
            items = [self._transform_one(item) for item in raw]
            kept = [item for item in items if item is not ABSENT]
            return kept or ABSENT
        return self._transform_one(raw)

    def _transform_one(self, raw: Any) -> Any:
        if blank(raw):
            return ABSENT
        if isinstance(raw, dict):
            raise TransformError("expected a single value, found an object", "value_type")
        value: Any = raw
        if self.strip or self.upper or self.lower or self.split or self.split_name or self.codes:
            value = text_of(raw)
            if self.strip:
                value = value.strip()
            if self.upper:
                value = value.upper()
            elif self.lower:
                value = value.lower()
            if not value.strip():
                return ABSENT
            if self.split is not None:
                parts = value.split() if not self.split.strip() else value.split(self.split)
                return [part.strip() for part in parts if part.strip()] or ABSENT
            if self.split_name is not None:
                return self.split_name.apply(value)
            if self.codes is not None:
                value = _code(self.codes, value)
                if value is None:
                    return ABSENT
        if self.date_formats:
            value = self._date(value)
        if self.minutes_to_hours:
            value = _hours(value)
        if self.as_text and isinstance(value, int | float) and not isinstance(value, bool):
            value = text_of(value)
        return value

    def _date(self, value: Any) -> date:
        text = text_of(value).strip()
        for spec in self.date_formats:
            try:
                return datetime.strptime(text, spec).date()
            except ValueError:
                continue
        shown = " or ".join(repr(spec) for spec in self.date_formats)
        raise TransformError(f"not a date in the format {shown}", "date_format")


def _code(codes: Mapping[str, Any], code: str) -> Any:
    if code in codes:
        return codes[code]
    if WILDCARD_CODE in codes:
        return codes[WILDCARD_CODE]
    known = [key for key in codes if key != WILDCARD_CODE]
    shown = ", ".join(known[:_SHOWN_CODES]) + (", ..." if len(known) > _SHOWN_CODES else "")
    raise TransformError(f"code is not in the map (known codes: {shown})", "unknown_code")


def _hours(value: Any) -> int:
    if isinstance(value, bool):
        raise TransformError("minutes should be a whole number", "minutes_type")
    if isinstance(value, float) and value.is_integer():
        minutes = int(value)
    elif isinstance(value, int):
        minutes = value
    else:
        text = text_of(value).strip()
        if not (text.isascii() and text.isdigit()):
            raise TransformError("minutes should be a whole number", "minutes_type")
        minutes = int(text)
    if minutes % 60:
        raise TransformError("minutes are not a whole number of hours", "minutes_not_whole_hours")
    return minutes // 60
