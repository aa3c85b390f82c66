"""Building a canonical record from a raw record by a compiled mapping (pure, deterministic).

Every field error of a rejected record has the path `<canonical path> <- <source path>`, e.g.
`person.date_of_birth <- dob` or `case.events.0.requirements.1.amount <-
orders.0.requirements.1.minutes`. The canonical path comes first, spelt as every adapter spells
it (dots, list indexes as numbers), so filtering the quarantine by `error_path` works alike for
all sources; the source path after ` <- ` leads into the raw record kept in the quarantine. An
error about a whole object carries the source item it was built from (`case.events.0 <-
orders.0`); where no source field is involved, the path is the canonical path alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from adapters.base import FieldError, RecordRejected, Unparsed
from adapters.mapping.rules import (
    ABSENT,
    FieldRule,
    Test,
    TransformError,
    all_hold,
    blank,
    text_of,
)
from adapters.mapping.sources import Context, SourcePath, SourceShapeError, join
from schemas import CaseRecord

__all__ = ["Group", "Items", "Obj", "Scalar", "Translator", "canonical_path"]


@dataclass(frozen=True)
class Scalar:
    """A canonical value: the first rule (of alternatives) that gives one."""

    rules: tuple[FieldRule, ...]


@dataclass(frozen=True)
class Obj:
    """A canonical object; it appears only when one of its values came from the source."""

    fields: Mapping[str, Scalar | Obj | Items]


@dataclass(frozen=True)
class Group:
    """Items of a canonical list built from repeated source parts, or once from the context."""

    template: Obj
    each: SourcePath | None = None
    each_row: bool = False
    row_key: str | None = None
    when: tuple[Test, ...] = ()

    @property
    def repeats(self) -> bool:
        return self.each is not None or self.each_row


@dataclass(frozen=True)
class Items:
    """A canonical list: the items of each part, in order (groups, or rules for value lists)."""

    parts: tuple[Group | FieldRule, ...]


def canonical_path(loc: tuple[str | int, ...]) -> str:
    """A pydantic location as a field path: `case.events.0.court`."""
    return ".".join(str(part) for part in loc)


class _Build:
    """One translation's working state: the field errors, and the source of each canonical path."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.sources: dict[str, str] = {}
        # Errors that are not a value's conversion (a source shaped wrongly): with any of these
        # the record cannot be kept by dropping fields.
        self.structural = False

    def fail(self, where: str | None, canonical: str, message: str, error_type: str) -> None:
        path = f"{canonical} <- {where}" if where else canonical
        self.errors.append(FieldError(path=path, message=message, type=error_type))

    def source_of(self, canonical: str) -> str | None:
        probe = canonical
        while probe:
            if probe in self.sources:
                return self.sources[probe]
            probe = probe.rpartition(".")[0]
        return None

    def rule(self, rule: FieldRule, context: Context, canonical: str) -> tuple[Any, bool]:
        where = rule.source.where(context) if rule.source is not None else None
        if where is not None:
            self.sources.setdefault(canonical, where)
        try:
            return rule.value(context)
        except TransformError as error:
            self.fail(where, canonical, error.message, error.error_type)
            # Left in place, so the gateway can keep the record without this field if it may.
            return Unparsed(_raw(rule, context), error.message, error.error_type), True
        except SourceShapeError as error:
            self.fail(error.where or where, canonical, error.message, "source_shape")
            self.structural = True
        # Counted as sourced, so the object holding it is kept and the error stands alone.
        return ABSENT, True

    def obj(self, template: Obj, context: Context, canonical: str) -> tuple[Any, bool]:
        built: dict[str, Any] = {}
        sourced = False
        for name, node in template.fields.items():
            path = join(canonical, name)
            if isinstance(node, Scalar):
                value, from_source = self.scalar(node, context, path)
            elif isinstance(node, Obj):
                value, from_source = self.obj(node, context, path)
            else:
                value, from_source = self.items(node, context, path)
            if value is not ABSENT:
                built[name] = value
            sourced = sourced or from_source
        return (built if sourced else ABSENT), sourced

    def scalar(self, node: Scalar, context: Context, canonical: str) -> tuple[Any, bool]:
        for rule in node.rules:
            value, sourced = self.rule(rule, context, canonical)
            if value is not ABSENT or sourced:
                return value, sourced
        return ABSENT, False

    def items(self, node: Items, context: Context, canonical: str) -> tuple[Any, bool]:
        built: list[Any] = []
        sourced = False
        for part in node.parts:
            if isinstance(part, FieldRule):
                value, from_source = self.rule(part, context, f"{canonical}.{len(built)}")
                if value is not ABSENT:
                    built.extend(value if isinstance(value, list) else [value])
                sourced = sourced or from_source
                continue
            for item in self.contexts(part, context, canonical):
                path = f"{canonical}.{len(built)}"
                self.sources[path] = item.path
                value, from_source = self.obj(part.template, item, path)
                if part.repeats or from_source:
                    built.append({} if value is ABSENT else value)
                    sourced = True
        return (built or ABSENT), sourced

    def contexts(self, group: Group, context: Context, canonical: str) -> Iterator[Context]:
        try:
            candidates = list(_candidates(group, context))
        except SourceShapeError as error:
            self.fail(error.where, canonical, error.message, "source_shape")
            return
        for item in candidates:
            try:
                if all_hold(group.when, item):
                    yield item
            except (SourceShapeError, TransformError) as error:
                where = error.where if isinstance(error, SourceShapeError) else item.path
                self.fail(where, canonical, error.message, "condition")


def _candidates(group: Group, context: Context) -> Iterator[Context]:
    if group.each is not None:
        for value, where in group.each.each(context):
            yield Context(value=value, path=where, root=context.root)
        return
    if not group.each_row:
        yield context
        return
    rows = context.rows or ((context.path, context.value),)
    if group.row_key is None:
        for where, row in rows:
            yield Context(value=row, path=where, root=context.root, rows=((where, row),))
        return
    buckets: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for where, row in rows:
        key = row.get(group.row_key)
        if not blank(key):
            buckets.setdefault(text_of(key).strip(), []).append((where, row))
    for bucket in buckets.values():
        where, row = bucket[0]
        yield Context(value=row, path=where, root=context.root, rows=tuple(bucket))


def _raw(rule: FieldRule, context: Context) -> Any:
    """The source value a rule failed to convert (None if it cannot be read again)."""
    if rule.source is None:
        return None
    try:
        return rule.source.read(context)
    except SourceShapeError:
        return None


class Translator:
    """Turns one raw record's data into a CaseRecord, or raises RecordRejected."""

    def __init__(
        self,
        *,
        external_id: FieldRule,
        template: Obj,
        context_of: Callable[[Any], Context],
    ) -> None:
        self.external_id = external_id
        self.template = template
        self.context_of = context_of

    def external_id_of(self, context: Context) -> str | None:
        """The record's id as `translate` will find it, or None (parse-time, never raises)."""
        try:
            value, _ = self.external_id.value(context)
            text = text_of(value).strip() if value is not ABSENT else ""
        except (TransformError, SourceShapeError):
            return None
        return text if 0 < len(text) <= 128 else None

    def translate(self, data: Any) -> CaseRecord:
        try:
            context = self.context_of(data)
        except SourceShapeError as error:
            raise RecordRejected(
                [FieldError(path=error.where, message=error.message, type="record_shape")]
            ) from None
        build = _Build()
        external_id = self.external_id_of(context)
        value, _ = build.rule(self.external_id, context, "provenance.external_id")
        if not build.errors and external_id is None:
            where = build.sources.get("provenance.external_id")
            if value is ABSENT:
                build.fail(where, "provenance.external_id", "the record's id is missing", "missing")
            else:
                message = "the record's id should be one value of 1 to 128 characters"
                build.fail(where, "provenance.external_id", message, "external_id")
        built, _ = build.obj(self.template, context, "")
        record: dict[str, Any] = {} if built is ABSENT else built
        provenance = record.setdefault("provenance", {})
        if external_id is not None:
            provenance["external_id"] = external_id
        record.setdefault("person", {})
        if build.errors:
            # Only conversions failed: the document (with an Unparsed in each place) goes along,
            # for the gateway to keep the record if every failure is an identity field.
            kept = None if build.structural or external_id is None else record
            raise RecordRejected(build.errors, external_id=external_id, document=kept)
        try:
            return CaseRecord.model_validate(record)
        except ValidationError as error:
            for item in error.errors(include_url=False, include_input=False):
                canonical = canonical_path(item["loc"])
                build.fail(build.source_of(canonical), canonical, item["msg"], item["type"])
            raise RecordRejected(build.errors, external_id=external_id, document=record) from None
