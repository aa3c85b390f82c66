"""Source paths: where a value sits in a raw record, and how to read it.

JSON and XML records are addressed with dotted keys (`client.name`, `Person.Surname`,
`@id` for an XML attribute); `[*]` steps into every item of a list (only in `each:` and
`json.records`); a leading `$.` starts from the record itself rather than from the item a
group is building. A CSV path is one column name, taken whole.

An XML element is read as a JSON-like value: an element with neither attributes nor child
elements is its text; otherwise an object of `@attribute` keys, child names (a repeated
child becomes a list) and `#text`. `[*]` on a single object treats it as a list of one, so
`Requirements.Requirement[*]` works whether one or several requirements were sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

__all__ = [
    "Context",
    "SourcePath",
    "SourceShapeError",
    "element_value",
    "parse_source_path",
    "xml_name",
    "xml_record_value",
]

#: Deepest XML element nesting read; far beyond any case system's export.
MAX_XML_DEPTH = 48

_NAME = r"[^.\[\]\s$][^.\[\]]*"
_STEP = re.compile(rf"(?P<name>{_NAME})?(?P<each>(?:\[\*\])*)")


class SourceShapeError(Exception):
    """The record's data is not shaped the way a path expects (e.g. a list where a value is)."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


@dataclass(frozen=True)
class Context:
    """What a field is read from: the current item, its path, the record, and CSV rows."""

    value: Any
    path: str
    root: Any
    rows: tuple[tuple[str, Mapping[str, Any]], ...] | None = None


def join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


@dataclass(frozen=True)
class SourcePath:
    """A parsed source path; `steps` holds keys, with None for each `[*]`."""

    text: str
    steps: tuple[str | None, ...]
    from_root: bool = False
    column: bool = False

    @property
    def repeats(self) -> bool:
        return None in self.steps

    def where(self, context: Context) -> str:
        """The path of this value in the raw record, for error messages."""
        if self.column:
            return join(context.path, self.steps[0] or "")
        base = "" if self.from_root else context.path
        for step in self.steps:
            base = join(base, "*" if step is None else step)
        return base or "$"

    def read(self, context: Context) -> Any:
        """The single value at this path (None when absent)."""
        value = context.root if self.from_root else context.value
        where = "" if self.from_root else context.path
        for step in self.steps:
            if value is None:
                return None
            if step is None:  # pragma: no cover - `from:` paths are checked to have no [*]
                raise SourceShapeError("a value path has no [*]", where)
            if isinstance(value, list):
                raise SourceShapeError(f"found {len(value)} values where one was expected", where)
            if not isinstance(value, dict):
                raise SourceShapeError("found a value where an object was expected", where)
            value = value.get(step)
            where = join(where, step)
        return value

    def each(self, context: Context) -> Iterator[tuple[Any, str]]:
        """Every item this path reaches, with its concrete path (`orders.1.requirements.0`)."""
        start = context.root if self.from_root else context.value
        frontier: list[tuple[Any, str]] = [(start, "" if self.from_root else context.path)]
        for step in self.steps:
            reached: list[tuple[Any, str]] = []
            for value, where in frontier:
                if value is None:
                    continue
                if step is None:
                    if isinstance(value, list):
                        reached.extend(
                            (item, join(where, str(index))) for index, item in enumerate(value)
                        )
                    else:
                        reached.append((value, where))
                elif isinstance(value, dict):
                    reached.append((value.get(step), join(where, step)))
                elif isinstance(value, list):
                    raise SourceShapeError(
                        f"found {len(value)} values where one was expected", where
                    )
                else:
                    raise SourceShapeError("found a value where an object was expected", where)
            frontier = reached
        yield from ((value, where) for value, where in frontier if value is not None)


def parse_source_path(text: str, *, csv: bool, repeats: bool = False) -> SourcePath:
    """Parse a source path; `repeats` allows (and requires) `[*]`. Raises ValueError."""
    if csv:
        if repeats:
            raise ValueError("a CSV mapping repeats rows with each_row:, not each:")
        return SourcePath(text=text, steps=(text,), column=True)
    from_root = text.startswith("$")
    rest = text[1:] if from_root else text
    if from_root and rest.startswith("."):
        rest = rest[1:]
    elif from_root and rest and not rest.startswith("["):
        raise ValueError(f"bad source path {text!r}: write $.key or $[*]")
    steps: list[str | None] = []
    for index, part in enumerate(rest.split(".") if rest else []):
        match = _STEP.fullmatch(part)
        if not part or match is None or (match["name"] is None and not (index == 0 and from_root)):
            raise ValueError(
                f"bad source path {text!r}: write dotted keys, e.g. client.name or "
                "orders[*] (a key may not contain '.', '[' or ']')"
            )
        if match["name"] is not None:
            steps.append(match["name"])
        steps.extend(None for _ in range(len(match["each"]) // 3))
    if not steps and not from_root:
        raise ValueError("a source path is empty")
    path = SourcePath(text=text, steps=tuple(steps), from_root=from_root)
    if repeats and not path.repeats:
        raise ValueError(f"{text!r} has no [*]: each: needs the repeated part, e.g. orders[*]")
    if not repeats and path.repeats:
        raise ValueError(f"{text!r} has [*]: a field reads one value; use a group with each:")
    return path


def xml_name(tag: str, prefixes: Mapping[str, str]) -> str:
    """An element or attribute name as paths write it: `prefix:local`, or local in the default."""
    if not tag.startswith("{"):
        return tag
    uri, _, local = tag[1:].partition("}")
    prefix = prefixes.get(uri)
    if prefix is None:
        return tag
    return f"{prefix}:{local}" if prefix else local


def element_value(element: Element, prefixes: Mapping[str, str], depth: int = 1) -> Any:
    """An XML element as a JSON-like value (see the module docstring)."""
    if depth > MAX_XML_DEPTH:
        raise SourceShapeError(f"XML nests more than {MAX_XML_DEPTH} elements deep", "xml")
    children = list(element)
    text = (element.text or "").strip()
    if not children and not element.attrib:
        return element.text or ""
    value: dict[str, Any] = {
        f"@{xml_name(name, prefixes)}": attribute for name, attribute in element.attrib.items()
    }
    for child in children:
        name = xml_name(str(child.tag), prefixes)
        item = element_value(child, prefixes, depth + 1)
        # element_value never returns a list, so a list here is one built for a repeated child.
        if name not in value:
            value[name] = item
        elif isinstance(value[name], list):
            value[name].append(item)
        else:
            value[name] = [value[name], item]
    if text:
        value["#text"] = element.text
    return value


def xml_record_value(data: Any, prefixes: Mapping[str, str]) -> Any:
    """The JSON-like value of a stored XML record (`{"xml": "<Case>...</Case>"}`)."""
    text = data.get("xml") if isinstance(data, dict) else None
    if not isinstance(text, str):
        raise SourceShapeError('an XML record is stored as {"xml": "<...>"}', "xml")
    try:
        element = defused_fromstring(text, forbid_dtd=True)
    except (ParseError, DefusedXmlException):
        raise SourceShapeError("the record is not well-formed XML", "xml") from None
    return element_value(element, prefixes)
