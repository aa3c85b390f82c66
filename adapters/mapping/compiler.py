"""Checking a mapping file against the canonical schema and compiling it into a translator.

Every problem is reported with the line and column of the YAML node at fault, all at once, as
one MappingFileError: a mapping is fixed in one pass, not one error per restart.
"""

from __future__ import annotations

import difflib
import enum
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from adapters.mapping.document import Document, Loc, MappingFileError, Problem, read_document
from adapters.mapping.rules import FieldRule, NameSplit, Test
from adapters.mapping.sources import (
    Context,
    SourcePath,
    SourceShapeError,
    parse_source_path,
    xml_record_value,
)
from adapters.mapping.spec import (
    Condition,
    CsvOptions,
    FieldSpec,
    GroupSpec,
    MappingFile,
    RowGrouping,
    SpecModel,
)
from adapters.mapping.translator import Group, Items, Obj, Scalar, Translator
from schemas import CaseRecord, Provenance

__all__ = ["CompiledMapping", "compile_mapping", "load_mapping"]

_DEFAULT_CONTENT_TYPES = {
    "csv": ("text/csv",),
    "json": ("application/json",),
    "jsonl": ("application/x-ndjson",),
    "xml": ("application/xml", "text/xml"),
}
_SEGMENT = re.compile(r"(?P<name>[a-z_]+)(?P<list>\[\])?")
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_FORBIDDEN_TARGETS = {
    "schema_version": "is fixed by the gateway",
    "provenance.external_id": "comes from external_id:",
    "provenance.source": "is set by the gateway from the URL",
    "provenance.received_at": "is set by the gateway on receipt",
}
_HINTS = {
    ("content_types", "string_pattern_mismatch"): (
        "content_types: not a media type such as application/json (written in lower case)"
    ),
    ("name", "string_pattern_mismatch"): (
        "name should be 1 to 20 lower-case letters, digits or hyphens, e.g. merlin"
    ),
    ("version", "string_pattern_mismatch"): (
        "version should be 1 to 9 letters, digits, dots or underscores, e.g. 3 or 2.1"
    ),
    ("external_id", "missing"): (
        "missing 'external_id': say where each record's id is, e.g. `external_id: caseRef`"
    ),
}


@dataclass(frozen=True)
class CompiledMapping:
    """A checked mapping file, ready to parse and translate."""

    file: str
    name: str
    version: str
    description: str | None
    format: str
    content_types: tuple[str, ...]
    translator: Translator
    csv: CsvOptions | None = None
    columns: frozenset[str] = frozenset()
    json_records: SourcePath | None = None
    xml_record: str | None = None
    xml_prefixes: Mapping[str, str] = field(default_factory=dict)


def load_mapping(path: Path) -> CompiledMapping:
    """Read, check and compile a mapping file; raise MappingFileError naming file and line."""
    return compile_mapping(read_document(path))


def compile_mapping(document: Document) -> CompiledMapping:
    compiler = _Compiler(document)
    compiled = compiler.compile()
    document.fail_if_problems()
    if compiled is None:  # pragma: no cover - compile() reports whatever stops it
        raise MappingFileError(document.file, [Problem(0, 0, "the mapping cannot be used")])
    return compiled


class _Compiler:
    def __init__(self, document: Document) -> None:
        self.document = document
        self.format = "json"
        self.grouped = False
        self.namespaces: dict[str, str] = {}
        self.columns: set[str] = set()

    # -- reporting -------------------------------------------------------------------------

    def report(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.document.report(loc, message, key=key)

    def validate(self, model: type[SpecModel], data: Any, loc: Loc) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as error:
            for item in error.errors(include_url=False, include_input=False):
                self._report_error(model, loc, item["loc"], item["type"], item["msg"])
            return None

    def _report_error(
        self, model: type[SpecModel], base: Loc, loc: tuple[Any, ...], kind: str, message: str
    ) -> None:
        full = (*base, *loc)
        if kind == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            vocabulary = [_alias(name, info) for name, info in owner.model_fields.items()]
            what = "transform" if owner is FieldSpec else "setting"
            text = f"unknown {what} {loc[-1]!r}"
            close = difflib.get_close_matches(str(loc[-1]), vocabulary, n=1)
            text += f" (did you mean {close[0]!r}?)" if close else f"; expected one of {vocabulary}"
            self.report(full, text, key=True)
            return
        hint = _HINTS.get((str(full[0]) if full else "", kind))
        if hint is None and kind == "missing":
            hint = f"missing {loc[-1]!r}"
        text = hint or message.removeprefix("Value error, ")
        if hint is None and kind != "value_error" and (key := self._key_at(full)):
            text = f"{key}: {text}"
        line, column = self.document.where(full)
        if any(
            (problem.line, problem.column, problem.message) == (line, column, text)
            for problem in self.document.problems
        ):
            return  # a union reports one mistake once per member
        self.report(full, text)

    def _key_at(self, loc: Loc) -> str | None:
        """The name of the deepest key written in the file along `loc`."""
        probe = loc
        while probe and probe not in self.document.value_marks:
            probe = probe[:-1]
        keys = [part for part in probe if isinstance(part, str)]
        return keys[-1] if keys else None

    # -- the whole file --------------------------------------------------------------------

    def compile(self) -> CompiledMapping | None:
        data = self.document.data
        if not isinstance(data, dict):
            self.report((), "a mapping file is a YAML mapping (name:, version:, format:, ...)")
            return None
        spec = self.validate(MappingFile, data, ())
        if not isinstance(spec, MappingFile):
            return None
        self.format = spec.format
        self._check_sections(spec)
        csv = (spec.csv_ or CsvOptions()) if spec.format == "csv" else None
        self.grouped = csv is not None and csv.group_by is not None
        if csv is not None and csv.group_by is not None:
            self.columns.add(csv.group_by)
        json_records = self._json_records(spec)
        xml_record = self._xml_record(spec)
        external_id = self.rule(spec.external_id, ("external_id",), leaf=None)
        template = self.root_template(data["fields"], ("fields",))
        if external_id is None or template is None:
            return None
        return CompiledMapping(
            file=self.document.file,
            name=spec.name,
            version=spec.version,
            description=spec.description,
            format=spec.format,
            content_types=self._content_types(spec),
            translator=Translator(
                external_id=external_id, template=template, context_of=self._context_of()
            ),
            csv=csv,
            columns=frozenset(self.columns),
            json_records=json_records,
            xml_record=xml_record,
            xml_prefixes={uri: prefix for prefix, uri in self.namespaces.items()},
        )

    def _check_sections(self, spec: MappingFile) -> None:
        sections = {"csv": spec.csv_, "json": spec.json_, "xml": spec.xml_}
        for section, options in sections.items():
            if options is not None and section != spec.format:
                self.report((section,), f"a {spec.format} mapping has no {section}: section")
        if spec.format != "csv" and sections[spec.format] is None:
            self.report(("format",), f"a {spec.format} mapping needs a {spec.format}: section")

    def _content_types(self, spec: MappingFile) -> tuple[str, ...]:
        if spec.content_types:
            return tuple(dict.fromkeys(spec.content_types))
        lines = spec.json_ is not None and spec.json_.lines
        return _DEFAULT_CONTENT_TYPES["jsonl" if lines else spec.format]

    def _json_records(self, spec: MappingFile) -> SourcePath | None:
        if spec.format != "json" or spec.json_ is None or spec.json_.records is None:
            return None
        loc = ("json", "records")
        text = spec.json_.records
        try:
            if not text.startswith("$"):
                raise ValueError(f"{text!r} should start at the document root: $.data.cases[*]")
            path = parse_source_path(text, csv=False, repeats="[*]" in text)
        except ValueError as error:
            self.report(loc, str(error))
            return None
        if not path.steps or path.steps[-1] is not None:
            self.report(loc, f"{text!r} should end with [*], at the list of records")
            return None
        return path

    def _xml_record(self, spec: MappingFile) -> str | None:
        if spec.format != "xml" or spec.xml_ is None:
            return None
        for prefix, uri in spec.xml_.namespaces.items():
            if prefix and not _PREFIX.fullmatch(prefix):
                self.report(("xml", "namespaces", prefix), f"bad prefix {prefix!r}", key=True)
            self.namespaces[prefix] = uri
        if len(set(self.namespaces.values())) != len(self.namespaces):
            self.report(("xml", "namespaces"), "two prefixes name the same namespace")
        return self._clark(spec.xml_.record, ("xml", "record"))

    def _clark(self, name: str, loc: Loc) -> str | None:
        """An XML name as ElementTree writes it (`{uri}local`), checking its prefix."""
        prefix, colon, local = name.rpartition(":")
        if not colon:
            default = self.namespaces.get("")
            return f"{{{default}}}{name}" if default else name
        if prefix not in self.namespaces or not prefix:
            self.report(loc, f"namespace prefix {prefix!r} is not declared in xml.namespaces")
            return None
        return f"{{{self.namespaces[prefix]}}}{local}"

    def _context_of(self) -> Callable[[Any], Context]:
        fmt, grouped, prefixes = self.format, self.grouped, self.namespaces
        reverse = {uri: prefix for prefix, uri in prefixes.items()}
        if fmt == "xml":

            def xml_context(data: Any) -> Context:
                value = xml_record_value(data, reverse)
                return Context(value=value, path="", root=value)

            return xml_context
        if fmt == "csv" and grouped:
            return _grouped_rows_context
        return _plain_context

    # -- fields ----------------------------------------------------------------------------

    def root_template(self, fields: Any, loc: Loc) -> Obj | None:
        if not isinstance(fields, dict):
            return None  # reported by MappingFile validation
        entries = [self._entry(key, value, (*loc, key)) for key, value in fields.items()]
        kept = [entry for entry in entries if entry is not None]
        if not any(entry.segments[0][0] == "person" for entry in kept):
            self.report(
                loc, "person.surname is required by the canonical schema but not mapped", key=True
            )
        return self.template(kept, CaseRecord, "", loc)

    def _entry(self, key: str, value: Any, loc: Loc) -> _Entry | None:
        segments: list[tuple[str, bool]] = []
        for part in key.split("."):
            match = _SEGMENT.fullmatch(part)
            if match is None:
                self.report(
                    loc,
                    f"bad canonical path {key!r}: write dotted field names, e.g. "
                    "person.surname or case.events[].court",
                    key=True,
                )
                return None
            segments.append((match["name"], match["list"] is not None))
        plain = ".".join(name for name, _ in segments)
        if plain in _FORBIDDEN_TARGETS:
            self.report(loc, f"{plain} {_FORBIDDEN_TARGETS[plain]}", key=True)
            return None
        return _Entry(segments=tuple(segments), value=value, loc=loc)

    def template(
        self, entries: list[_Entry], model: type[BaseModel], prefix: str, loc: Loc
    ) -> Obj | None:
        heads: dict[str, list[_Entry]] = {}
        for entry in entries:
            heads.setdefault(entry.segments[0][0], []).append(entry)
        nodes: dict[str, Scalar | Obj | Items] = {}
        ok = True
        for name, group in heads.items():
            path = f"{prefix}.{name}" if prefix else name
            info = model.model_fields.get(name)
            if info is None:
                close = difflib.get_close_matches(name, list(model.model_fields), n=1)
                hint = f" (did you mean {_join(prefix, close[0])!r}?)" if close else ""
                for entry in group:
                    self.report(entry.loc, f"unknown canonical field {path!r}{hint}", key=True)
                ok = False
                continue
            node = self.node(group, path, info.annotation)
            if node is None:
                ok = False
            else:
                nodes[name] = node
        self._check_required(model, heads, prefix, loc)
        return Obj(fields=nodes) if ok else None

    def _check_required(
        self, model: type[BaseModel], heads: Mapping[str, Any], prefix: str, loc: Loc
    ) -> None:
        if model is Provenance:
            return  # external_id: fills the one required field
        for name, info in model.model_fields.items():
            if info.is_required() and name not in heads and model is not CaseRecord:
                self.report(
                    loc,
                    f"{_join(prefix, name)} is required by the canonical schema but not mapped",
                    key=True,
                )

    def node(
        self, entries: list[_Entry], path: str, annotation: Any
    ) -> Scalar | Obj | Items | None:
        kind, inner = _kind(annotation)
        first = entries[0]
        finals = [entry for entry in entries if len(entry.segments) == 1]
        deeper = [entry.rest() for entry in entries if len(entry.segments) > 1]
        listed = {entry.segments[0][1] for entry in entries}
        if True in listed and kind not in ("list_of_objects", "list_of_values"):
            self.report(first.loc, f"{path} is not a list: drop the []", key=True)
            return None
        if kind == "object":
            if finals:
                example = _example_field(inner)
                self.report(
                    finals[0].loc,
                    f"{path} is an object: map its fields, e.g. {path}.{example}",
                    key=True,
                )
                return None
            return self.template(deeper, inner, path, first.loc)
        if kind == "list_of_objects":
            if False in listed:
                self.report(first.loc, f"{path} is a list: write {path}[]", key=True)
                return None
            if finals and deeper:
                self.report(
                    first.loc,
                    f"{path}[] is mapped both with groups and field by field; choose one",
                    key=True,
                )
                return None
            if finals:
                return self.groups(finals[0], path, inner)
            template = self.template(deeper, inner, f"{path}[]", first.loc)
            return None if template is None else Items(parts=(Group(template=template),))
        if deeper:
            self.report(deeper[0].loc, f"{path} is a value: it has no fields", key=True)
            return None
        entry = finals[0]
        if len(finals) > 1:
            self.report(finals[1].loc, f"{path} is mapped twice", key=True)
            return None
        leaf = inner if kind == "value" else _kind(inner)[1]
        specs = entry.value if isinstance(entry.value, list) else [entry.value]
        locs = [(*entry.loc, index) for index in range(len(specs))]
        if not isinstance(entry.value, list):
            locs = [entry.loc]
        if not specs:
            self.report(entry.loc, f"{path} has an empty list of rules")
            return None
        as_list = kind == "list_of_values" and not entry.segments[0][1]
        rules = [
            self.rule(spec, spec_loc, leaf=leaf, as_list=as_list)
            for spec, spec_loc in zip(specs, locs, strict=True)
        ]
        if any(rule is None for rule in rules):
            return None
        kept = tuple(rule for rule in rules if rule is not None)
        return Items(parts=kept) if entry.segments[0][1] else Scalar(rules=kept)

    def groups(self, entry: _Entry, path: str, model: type[BaseModel]) -> Items | None:
        values = entry.value if isinstance(entry.value, list) else [entry.value]
        locs = (
            [(*entry.loc, index) for index in range(len(values))]
            if isinstance(entry.value, list)
            else [entry.loc]
        )
        parts: list[Group] = []
        for value, loc in zip(values, locs, strict=True):
            group = self.group(value, loc, path, model)
            if group is not None:
                parts.append(group)
        if len(parts) != len(values) or not parts:
            if not values:
                self.report(entry.loc, f"{path}[] has an empty list of groups")
            return None
        return Items(parts=tuple(parts))

    def group(self, value: Any, loc: Loc, path: str, model: type[BaseModel]) -> Group | None:
        spec = self.validate(GroupSpec, value, loc)
        if not isinstance(spec, GroupSpec):
            return None
        each = None
        if spec.each is not None:
            try:
                each = parse_source_path(spec.each, csv=self.format == "csv", repeats=True)
            except ValueError as error:
                self.report((*loc, "each"), str(error))
            else:
                self._check_xml_path(each, (*loc, "each"))
        row_key = None
        if spec.each_row is not False:
            if not self.grouped:
                self.report(
                    (*loc, "each_row"), "each_row: needs a CSV mapping with csv.group_by set"
                )
            if isinstance(spec.each_row, RowGrouping):
                row_key = spec.each_row.by
                self.columns.add(row_key)
        when = self.conditions(spec.when, (*loc, "when"))
        entries = [
            self._entry(key, item, (*loc, "fields", key)) for key, item in spec.fields.items()
        ]
        kept = [entry for entry in entries if entry is not None]
        if not kept:
            if spec.fields == {}:
                self.report((*loc, "fields"), "a group needs at least one field")
            return None
        template = self.template(kept, model, f"{path}[]", (*loc, "fields"))
        if template is None or when is None or len(kept) != len(entries):
            return None
        if spec.each is not None and each is None:
            return None
        return Group(
            template=template,
            each=each,
            each_row=spec.each_row is not False,
            row_key=row_key,
            when=when,
        )

    def rule(self, value: Any, loc: Loc, *, leaf: Any, as_list: bool = False) -> FieldRule | None:
        spec = self.validate(FieldSpec, value, loc)
        if not isinstance(spec, FieldSpec):
            return None
        # A plain string is `{from: ...}`: report its problems on the string itself.
        source_loc = loc if isinstance(value, str) else (*loc, "from")
        source = self.source(spec.from_, source_loc) if spec.from_ is not None else None
        when = self.conditions(spec.when, (*loc, "when"))
        if (spec.from_ is not None and source is None) or when is None:
            return None
        if not self._check_codes(spec, loc, leaf):
            return None
        split = spec.split_name
        return FieldRule(
            source=source,
            const=spec.const,
            default=spec.default,
            when=when,
            strip=spec.strip,
            upper=spec.upper,
            lower=spec.lower,
            split=spec.split,
            split_name=(
                None
                if split is None
                else NameSplit.of(pattern=split.pattern, regex=split.regex, take=split.take)
            ),
            codes=spec.map_,
            date_formats=tuple(spec.date_.format) if spec.date_ is not None else (),
            minutes_to_hours=spec.minutes_to_hours,
            as_text=leaf is str,
            as_list=as_list,
        )

    def _check_codes(self, spec: FieldSpec, loc: Loc, leaf: Any) -> bool:
        """Constants, defaults and map values bound for a code list must be in that list."""
        if not (isinstance(leaf, type) and issubclass(leaf, enum.Enum)):
            return True
        allowed = {str(member.value) for member in leaf}
        candidates: list[tuple[Loc, Any]] = [
            ((*loc, "const"), spec.const),
            ((*loc, "default"), spec.default),
        ]
        candidates += [((*loc, "map", code), value) for code, value in (spec.map_ or {}).items()]
        ok = True
        for where, value in candidates:
            if value is not None and (not isinstance(value, str) or value not in allowed):
                shown = value if isinstance(value, str) else type(value).__name__
                self.report(
                    where,
                    f"{shown!r} is not a {leaf.__name__} code; expected one of "
                    f"{', '.join(sorted(allowed))}",
                )
                ok = False
        return ok

    def source(self, text: str, loc: Loc) -> SourcePath | None:
        try:
            path = parse_source_path(text, csv=self.format == "csv")
        except ValueError as error:
            self.report(loc, str(error))
            return None
        if path.column:
            self.columns.add(text)
        if not self._check_xml_path(path, loc):
            return None
        return path

    def _check_xml_path(self, path: SourcePath, loc: Loc) -> bool:
        if self.format != "xml":
            return True
        for step in path.steps:
            if step is None:
                continue
            prefix, colon, _ = step.removeprefix("@").rpartition(":")
            if colon and prefix not in self.namespaces:
                self.report(loc, f"namespace prefix {prefix!r} is not declared in xml.namespaces")
                return False
        return True

    def conditions(self, specs: list[Condition] | None, loc: Loc) -> tuple[Test, ...] | None:
        tests: list[Test] = []
        for index, condition in enumerate(specs or []):
            source = self.source(condition.field, (*loc, index, "field"))
            if source is None:
                return None
            tests.append(
                Test(
                    source=source,
                    equals=condition.equals,
                    not_equals=condition.not_equals,
                    one_of=None if condition.in_ is None else frozenset(condition.in_),
                    none_of=None if condition.not_in is None else frozenset(condition.not_in),
                    present=condition.present,
                )
            )
        return tuple(tests)


@dataclass(frozen=True)
class _Entry:
    """One key of a `fields:` mapping, split into canonical segments (name, is it `[]`)."""

    segments: tuple[tuple[str, bool], ...]
    value: Any
    loc: Loc

    def rest(self) -> _Entry:
        return _Entry(segments=self.segments[1:], value=self.value, loc=self.loc)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _alias(name: str, info: Any) -> str:
    return str(info.alias or name)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The model class that validates the object at `loc` inside `model`."""
    current = model
    for part in loc:
        if not isinstance(part, str):
            continue
        for name, info in current.model_fields.items():
            if part in (name, info.alias):
                found = _first_model(info.annotation)
                if found is not None:
                    current = found
                break
    return current


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _strip(annotation: Any) -> Any:
    """Without Annotated metadata and without `| None`."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = members[0] if len(members) == 1 else annotation
            if len(members) != 1:
                return annotation
        else:
            return annotation


def _kind(annotation: Any) -> tuple[str, Any]:
    """What a canonical field holds: a value, an object, or a list of either."""
    annotation = _strip(annotation)
    if get_origin(annotation) is list:
        inner = _strip(get_args(annotation)[0])
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return "list_of_objects", inner
        return "list_of_values", inner
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object", annotation
    return "value", annotation


def _example_field(model: type[BaseModel]) -> str:
    for name, info in model.model_fields.items():
        if info.is_required():
            return name
    return next(iter(model.model_fields))


def _plain_context(data: Any) -> Context:
    return Context(value=data, path="", root=data)


def _grouped_rows_context(data: Any) -> Context:
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise SourceShapeError("a grouped CSV record is {rows: [row, ...]}", "rows")
    located = tuple((f"rows.{index}", row) for index, row in enumerate(rows))
    return Context(value=rows[0], path="rows.0", root=data, rows=located)
