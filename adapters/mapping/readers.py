"""Splitting a payload into raw records, streaming, for each format a mapping can declare.

Memory stays bounded whatever the payload's size: a CSV line, a JSON record and the bytes of
an XML record each have a ceiling, and a record over it is refused (the one record when it can
be stepped over, else the payload). XML is read with defusedxml: a DTD, an entity or an
external reference refuses the payload.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse as defused_iterparse

from adapters.base import (
    MAX_RECORD_NESTING,
    FieldError,
    LineReader,
    PayloadRejected,
    RawRecord,
    nested_deeper_than,
)
from adapters.mapping.compiler import CompiledMapping
from adapters.mapping.jsonstream import JsonStreamError, scan_records
from adapters.mapping.sources import MAX_XML_DEPTH, Context, SourceShapeError, element_value
from adapters.mapping.spec import CsvOptions

__all__ = ["MAX_LINE_BYTES", "MAX_RECORD_BYTES", "MAX_ROWS_PER_RECORD", "parse_payload"]

#: Largest record (a JSON record's text, a JSON line, the bytes of an XML record).
MAX_RECORD_BYTES = 8 * 1024 * 1024
#: Longest CSV line.
MAX_LINE_BYTES = 1024 * 1024
#: Most CSV rows folded into one record by `group_by`.
MAX_ROWS_PER_RECORD = 1000
#: Most unreadable rows described one by one in a folded record's errors; the rest are counted.
MAX_PROBLEMS_PER_RECORD = 100
# How much of an unreadable record is kept for the operator to see.
_KEPT_TEXT = 64 * 1024
_READ_SIZE = 64 * 1024
_MAX_POSITION = 64


def parse_payload(mapping: CompiledMapping, stream: IO[bytes]) -> Iterator[RawRecord]:
    """The raw records in a payload, in order."""
    if mapping.csv is not None:
        return _CsvReader(mapping, mapping.csv, stream).records()
    if mapping.format == "xml":
        return _xml_records(mapping, stream)
    if mapping.json_records is None:
        return _json_lines(mapping, stream)
    return _json_document(mapping, mapping.json_records.steps, stream)


def _short(position: str, index: int) -> str:
    # Positions are stored in a 64-character column.
    return position if len(position) <= _MAX_POSITION else f"record {index}"


def _unreadable(data: Any, position: str, message: str) -> RawRecord:
    return RawRecord(
        data=data,
        position=position,
        errors=(FieldError(path="", message=message, type="unreadable_record"),),
    )


def _kept(text: str) -> dict[str, Any]:
    if len(text) <= _KEPT_TEXT:
        return {"text": text}
    return {"text": text[:_KEPT_TEXT], "truncated": True}


def _record(mapping: CompiledMapping, data: Any, position: str) -> RawRecord:
    context = Context(value=data, path="", root=data)
    return RawRecord(
        data=data, external_id=mapping.translator.external_id_of(context), position=position
    )


# -- JSON ----------------------------------------------------------------------------------


def _decode_record(text: str, *, depth_known: bool = False) -> tuple[Any, str | None]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"not valid JSON: {error.msg} at column {error.colno}"
    except ValueError:
        return None, "not valid JSON: a number has too many digits"
    except RecursionError:
        return None, f"nested deeper than {MAX_RECORD_NESTING} levels"
    if not isinstance(value, dict):
        return None, "a record is a JSON object"
    if not depth_known and nested_deeper_than(value, MAX_RECORD_NESTING):
        return None, f"nested deeper than {MAX_RECORD_NESTING} levels"
    return value, None


def _json_document(
    mapping: CompiledMapping, steps: tuple[str | None, ...], stream: IO[bytes]
) -> Iterator[RawRecord]:
    try:
        for captured in scan_records(stream, steps, limit=MAX_RECORD_BYTES):
            position = _short(captured.where, captured.index)
            if captured.text is None:
                yield _unreadable(
                    {"text": "", "truncated": True},
                    position,
                    f"record is larger than {MAX_RECORD_BYTES // (1024 * 1024)} MiB",
                )
                continue
            if captured.depth > MAX_RECORD_NESTING:
                yield _unreadable(
                    _kept(captured.text),
                    position,
                    f"nested deeper than {MAX_RECORD_NESTING} levels",
                )
                continue
            value, problem = _decode_record(captured.text, depth_known=True)
            if problem is not None:
                yield _unreadable(_kept(captured.text), position, problem)
                continue
            yield _record(mapping, value, position)
    except JsonStreamError as error:
        raise PayloadRejected(f"body is not a readable JSON document: {error}") from None


def _json_lines(mapping: CompiledMapping, stream: IO[bytes]) -> Iterator[RawRecord]:
    for number, line, whole in LineReader(stream).numbered_lines(MAX_RECORD_BYTES):
        position = f"line {number}"
        if not whole:
            yield _unreadable(
                _kept(line[:_KEPT_TEXT].decode("utf-8", errors="replace")),
                position,
                f"line is longer than {MAX_RECORD_BYTES // (1024 * 1024)} MiB",
            )
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield _unreadable(
                _kept(line.decode("utf-8", errors="replace")), position, "not valid UTF-8"
            )
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        value, problem = _decode_record(text)
        if problem is not None:
            yield _unreadable(_kept(text.rstrip("\r\n")), position, problem)
            continue
        yield _record(mapping, value, position)


# -- CSV -----------------------------------------------------------------------------------


class _Lines:
    """A byte stream's lines, decoded, for the csv module; counts lines, notes undecodable ones."""

    def __init__(self, stream: IO[bytes], encoding: str) -> None:
        self._lines = LineReader(stream)
        self._encoding = encoding
        self.number = 0
        # The line the record in progress starts on; blank lines before it are stepped over.
        self.first = 1
        self.skip_blank = False
        self._at_record_start = True
        self.undecodable: list[int] = []
        self.kept: list[str] = []
        self._kept_size = 0

    def start_record(self) -> None:
        self.undecodable.clear()
        self.kept.clear()
        self._kept_size = 0
        self._at_record_start = True

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._at_record_start:
            # Only between records: inside a quoted field a blank line is part of the value.
            if self.skip_blank:
                self.number += self._lines.skip_blank_lines()
            self._at_record_start = False
            self.first = self.number + 1
        raw = self._lines.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise PayloadRejected(
                f"line {self.number} is longer than {MAX_LINE_BYTES // 1024} KiB: "
                "is this CSV with the declared delimiter?"
            )
        try:
            text = raw.decode(self._encoding)
        except UnicodeDecodeError:
            text = raw.decode(self._encoding, errors="replace")
            self.undecodable.append(self.number)
        if self.number == 1:
            text = text.removeprefix("\ufeff")
        if self._kept_size < _KEPT_TEXT:
            self.kept.append(text)
            self._kept_size += len(text)
        return text


class _CsvReader:
    def __init__(self, mapping: CompiledMapping, options: CsvOptions, stream: IO[bytes]) -> None:
        self.mapping = mapping
        self.options = options
        self.lines = _Lines(stream, self.options.encoding)
        self.reader = csv.reader(
            self.lines,
            delimiter=self.options.delimiter,
            quotechar=self.options.quotechar,
            strict=True,
        )
        self.header: list[str] = []

    def _read_header(self) -> None:
        try:
            header = next(self.reader, None)
        except csv.Error as error:
            raise PayloadRejected(f"the header row is not readable CSV: {error}") from None
        if not header or not any(cell.strip() for cell in header):
            raise PayloadRejected("the payload has no header row")
        if self.lines.undecodable:
            raise PayloadRejected(f"the header row is not valid {self.options.encoding} text")
        self.header = [cell.strip() for cell in header]
        self.lines.skip_blank = True
        if len(set(self.header)) != len(self.header) or not all(self.header):
            raise PayloadRejected("the header row has an empty or repeated column name")
        missing = sorted(self.mapping.columns - set(self.header))
        if missing:
            raise PayloadRejected(
                "the header lacks columns the mapping reads",
                errors=[
                    FieldError(path=column, message="missing column", type="missing_column")
                    for column in missing
                ],
            )

    def _rows(self) -> Iterator[_Row]:
        """Each row with its lines, its values (None when unreadable) and any problem."""
        while True:
            self.lines.start_record()
            try:
                values = next(self.reader, None)
                problem = None
            except csv.Error as error:
                values, problem = None, f"not readable CSV: {error}"
            if values is None and problem is None:
                return
            if values is not None and not any(value.strip() for value in values):
                # A blank line, or a row of only delimiters: no record, nothing to quarantine.
                continue
            first = self.lines.first
            if problem is None and self.lines.undecodable:
                problem = f"not valid {self.options.encoding} text"
            if problem is None and values is not None and len(values) != len(self.header):
                problem = f"row has {len(values)} values, the header has {len(self.header)}"
            yield _Row(first, self.lines.number, values, problem, "".join(self.lines.kept))

    def _row_data(self, values: list[str]) -> dict[str, Any]:
        data: dict[str, Any] = dict(zip(self.header, values, strict=False))
        if len(values) > len(self.header):
            data["_extra"] = values[len(self.header) :]
        return data

    def _data(self, row: _Row) -> dict[str, Any]:
        return self._row_data(row.values) if row.values is not None else _kept(row.text)

    def records(self) -> Iterator[RawRecord]:
        self._read_header()
        if self.options.group_by is None:
            for row in self._rows():
                if row.problem is not None:
                    yield _unreadable(
                        self._data(row), _lines_position(row.first, row.last), row.problem
                    )
                else:
                    yield _record(
                        self.mapping, self._data(row), _lines_position(row.first, row.last)
                    )
            return
        yield from self._grouped(self.options.group_by)

    def _grouped(self, column: str) -> Iterator[RawRecord]:
        index = self.header.index(column)
        folding: _Fold | None = None
        for row in self._rows():
            values = row.values
            key = values[index].strip() if values is not None and len(values) > index else ""
            if not key:
                problem = row.problem or f"the {column} column is empty"
                if folding is not None:
                    # Most likely a broken row of the record being folded: it spoils the record
                    # rather than leaving it stored without the row.
                    folding.add(replace(row, problem=problem), self._data(row))
                else:
                    position = _lines_position(row.first, row.last)
                    yield _unreadable(self._data(row), position, problem)
                continue
            if folding is not None and folding.key != key:
                yield folding.record(self.mapping)
                folding = None
            if folding is None:
                folding = _Fold(key=key, first=row.first)
            folding.add(row, self._data(row))
        if folding is not None:
            yield folding.record(self.mapping)


@dataclass(frozen=True)
class _Row:
    first: int
    last: int
    values: list[str] | None
    problem: str | None
    text: str


def _lines_position(first: int, last: int) -> str:
    return f"line {first}" if first >= last else f"lines {first}-{last}"


class _Fold:
    """The rows of one record while they are being folded together."""

    def __init__(self, key: str, first: int) -> None:
        self.key = key
        self.first = first
        self.last = first
        self.rows: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.problems_omitted = 0
        self.dropped = 0

    def add(self, row: _Row, data: dict[str, Any]) -> None:
        self.last = row.last
        if row.problem is not None:
            # Bounded like the rows: a long run of broken rows must not grow one record's errors.
            if len(self.problems) < MAX_PROBLEMS_PER_RECORD:
                self.problems.append(f"{_lines_position(row.first, row.last)}: {row.problem}")
            else:
                self.problems_omitted += 1
        if len(self.rows) < MAX_ROWS_PER_RECORD:
            self.rows.append(data)
        else:
            self.dropped += 1

    def record(self, mapping: CompiledMapping) -> RawRecord:
        data = {"rows": self.rows}
        if self.problems_omitted:
            self.problems.append(f"{self.problems_omitted} more rows could not be read either")
        if self.dropped:
            self.problems.append(f"more than {MAX_ROWS_PER_RECORD} rows for one record")
        external_id = mapping.translator.external_id_of(mapping.translator.context_of(data))
        errors = tuple(
            FieldError(path="rows", message=problem, type="unreadable_row")
            for problem in self.problems
        )
        return RawRecord(
            data=data,
            external_id=external_id,
            position=_lines_position(self.first, self.last),
            errors=errors,
        )


# -- XML -----------------------------------------------------------------------------------


class _RecordTooLarge(Exception):
    pass


class _BoundedReader:
    """Reads for iterparse; refuses to read more than `limit` bytes since the last mark."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._read = 0
        self._mark = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size if 0 < size <= _READ_SIZE else _READ_SIZE)
        self._read += len(chunk)
        if self._read - self._mark > self._limit:
            raise _RecordTooLarge
        return chunk

    def mark(self) -> None:
        self._mark = self._read


def _xml_records(mapping: CompiledMapping, stream: IO[bytes]) -> Iterator[RawRecord]:
    reader = _BoundedReader(stream, MAX_RECORD_BYTES)
    prefixes = dict(mapping.xml_prefixes)
    record_tag = mapping.xml_record
    local_name = (record_tag or "").rpartition("}")[2]
    stack: list[Element] = []
    record_depth: int | None = None
    count = 0
    try:
        events = defused_iterparse(
            reader,
            events=("start", "end"),
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        for event, element in events:
            if event == "start":
                stack.append(element)
                if len(stack) > MAX_XML_DEPTH:
                    raise PayloadRejected(f"XML nests more than {MAX_XML_DEPTH} elements deep")
                if record_depth is None and element.tag == record_tag:
                    record_depth = len(stack)
                continue
            depth = len(stack)
            stack.pop()
            if record_depth is not None and depth > record_depth:
                continue  # inside a record: kept until the record ends
            if record_depth == depth:
                record_depth = None
                count += 1
                position = f"{local_name}[{count - 1}]"
                yield _xml_record(mapping, element, prefixes, _short(position, count - 1))
            if stack:
                # Done with: drop it, so the tree never holds more than the current record.
                stack[-1].remove(element)
            reader.mark()
    except _RecordTooLarge:
        raise PayloadRejected(
            f"a record is larger than {MAX_RECORD_BYTES // (1024 * 1024)} MiB"
        ) from None
    except DefusedXmlException as error:
        raise PayloadRejected(f"XML refused: {type(error).__name__}") from None
    except ParseError as error:
        raise PayloadRejected(f"body is not well-formed XML: {error}") from None
    except (LookupError, UnicodeError):
        raise PayloadRejected("body is in an unknown or wrongly declared encoding") from None


def _xml_record(
    mapping: CompiledMapping, element: Element, prefixes: dict[str, str], position: str
) -> RawRecord:
    element.tail = None  # the text after the record is not part of it
    data = {"xml": tostring(element, encoding="unicode")}
    try:
        value = element_value(element, prefixes)
    except SourceShapeError:
        return RawRecord(data=data, position=position)
    context = Context(value=value, path="", root=value)
    return RawRecord(
        data=data, external_id=mapping.translator.external_id_of(context), position=position
    )
