"""Splitting an export into one raw record per offender, reading the stream as it goes.

The byte stream is decoded with `surrogateescape`, so a byte the configured encoding cannot
decode becomes a lone surrogate that is found per row instead of failing the whole file. Lines
are handed to `csv.reader` one at a time by `_LineSource`, which bounds how much of one row is
ever held and notes where each row starts and ends. Rows are grouped by CRN; a row that cannot
be read joins its offender's group (or the group in progress when its CRN cannot be read), and
the whole group is then returned with errors so it is quarantined rather than half accepted.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Final

from adapters.base import FieldError, PayloadRejected, RawRecord
from adapters.delius_flat.columns import ExportVersion, detect_version

__all__ = ["SplitLimits", "crn_key", "split_records"]

#: How much of an unreadable row's text is kept for the operator to see.
PREVIEW_CHARS: Final = 1000
#: How many unreadable rows one record keeps (with their errors); the rest are counted.
MAX_UNREADABLE_KEPT: Final = 100
# Roughly what an unreadable row's errors and bookkeeping cost, counted against the group.
_UNREADABLE_OVERHEAD: Final = 500

# A character no valid text row holds: NUL (refused by PostgreSQL) or an undecodable byte.
_SUSPECT: Final = re.compile("[\x00\udc80-\udcff]")
_CRN_SHAPE: Final = re.compile(r"[A-Z][0-9]{6}")
_DRAIN_CHUNK: Final = 64 * 1024
# Text is decoded in blocks of this many characters, so per-line cost is only paid for rows.
_BLOCK_CHARS: Final = 64 * 1024
_LINE_END: Final = re.compile("[\r\n]")
# Lines holding nothing but spaces or tabs: csv would make each a row that is then skipped.
_BLANK_LINES: Final = re.compile("(?:[ \t]*(?:\r\n|\r|\n))+")
# A UTF-8 encoded character is at most this many bytes; other encodings need no more.
_MAX_BYTES_PER_CHAR: Final = 4


@dataclass(frozen=True)
class SplitLimits:
    """The limits that keep a hostile payload from exhausting memory."""

    encoding: str
    delimiter: str
    max_columns: int
    max_field_bytes: int
    max_row_chars: int
    max_record_chars: int


def crn_key(value: str) -> str:
    """The CRN as rows are grouped by it: whitespace removed, upper case."""
    return "".join(value.split()).upper()


def _escape(text: str) -> str:
    """Undecodable bytes and NULs as visible \\xNN escapes, so the text can be stored as JSON."""
    return _SUSPECT.sub(lambda m: f"\\x{ord(m.group()) & 0xFF:02x}", text)


def _lines_label(first: int, last: int) -> str:
    return f"line {first}" if last <= first else f"lines {first}-{last}"


class _RowTooLong(Exception):
    """Raised from inside csv.reader's iteration: the row in progress is over the limit."""


class _LineSource:
    """Physical lines of the decoded text, for csv.reader, with per-row bookkeeping."""

    def __init__(self, text: IO[str], limits: SplitLimits) -> None:
        self._text = text
        self._encoding = limits.encoding
        self._max = limits.max_row_chars
        self.lines_read = 0
        self.first_line = 1
        self.row_chars = 0
        self.row_suspect = False
        self.foreign_bom = False
        self._preview: list[str] = []
        self._preview_chars = 0
        self._pending_lf = False
        self._at_start = True
        self._buffer = ""
        self._pos = 0
        self._eof = False
        try:
            bom = codecs.BOM_UTF8.decode(limits.encoding, errors="surrogateescape")
        except (UnicodeDecodeError, LookupError):  # pragma: no cover - a multi-byte codec
            bom = ""
        # In a single-byte encoding a UTF-8 BOM decodes to three characters such as "ï»¿".
        self._foreign_bom = bom if len(bom) == 3 else None

    def start_row(self) -> None:
        self.first_line = self.lines_read + 1
        self.row_chars = 0
        self.row_suspect = False
        self._preview = []
        self._preview_chars = 0

    @property
    def label(self) -> str:
        """Where the current row lies, e.g. "lines 12-14"."""
        return _lines_label(self.first_line, self.lines_read)

    def raw_preview(self) -> str:
        """The start of the current row's text, as decoded."""
        return "".join(self._preview)

    def preview(self) -> str:
        """The start of the current row's text, escaped, saying how much more there was."""
        text = self.raw_preview()
        if self.row_chars > len(text):
            text += f"... [{self.row_chars - len(text)} more characters]"
        return _escape(text)

    def __iter__(self) -> _LineSource:
        return self

    def __next__(self) -> str:
        size = self._max + 1
        if self._pending_lf:
            # The "\n" of a "\r\n" that a size-limited read split off: part of the last line.
            self._pending_lf = False
            if self._peek() == "\n":
                self._pos += 1
        if self.row_chars == 0 and not self._at_start:
            # At a row's start a run of blank lines is stepped over in one regex match: a file
            # of them then costs a fraction of a microsecond per line, not a trip through csv.
            skipped = self._skip_blank_lines()
            if skipped:
                self.lines_read += skipped
                self.first_line = self.lines_read + 1
        line = self._readline(size)
        if not line:
            raise StopIteration
        self.lines_read += 1
        if self._at_start:
            self._at_start = False
            if line.startswith("\ufeff"):
                line = line[1:]
            elif self._foreign_bom and line.startswith(self._foreign_bom):
                self.foreign_bom = True
        if len(line) == size and line.endswith("\r"):
            self._pending_lf = True
        self.row_chars += len(line)
        self._keep(line)
        if self.row_chars > self._max:
            if not line.endswith(("\n", "\r")):
                self._drain()
            raise _RowTooLong
        if _SUSPECT.search(line):
            self.row_suspect = True
        return line

    def _fill(self) -> bool:
        """Decode another block after what is left of the buffer; False at the end of the text."""
        if self._eof:
            return False
        # At least as much as is held, so a long line is read in O(length), not O(length^2).
        wanted = max(_BLOCK_CHARS, len(self._buffer) - self._pos)
        try:
            chunk = self._text.read(wanted)
        except UnicodeDecodeError:
            # Only a multi-byte encoding such as UTF-16 gets here (surrogateescape cannot
            # escape a byte below 0x80): the stream cannot be split into lines at all.
            raise PayloadRejected(
                f"line {self.lines_read + 1}: the file cannot be decoded as {self._encoding}"
            ) from None
        if not chunk:
            self._eof = True
            return False
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def _peek(self) -> str:
        if self._pos >= len(self._buffer) and not self._fill():
            return ""
        return self._buffer[self._pos]

    def _readline(self, size: int) -> str:
        """The next line with its ending ("\r\n", "\r" or "\n"), at most `size` characters."""
        scanned = 0
        while True:
            buffer, pos = self._buffer, self._pos
            limit = pos + size
            found = _LINE_END.search(buffer, pos + scanned, limit)
            if found is not None:
                end = found.end()
                if found.group() == "\r" and end < limit:
                    if end == len(buffer) and self._fill():
                        scanned = found.start() - pos  # its "\n" may have just arrived
                        continue
                    if end < len(self._buffer) and self._buffer[end] == "\n":
                        end += 1
                self._pos = end
                return self._buffer[pos:end]
            if len(buffer) >= limit or not self._fill():
                line = buffer[pos:limit]
                self._pos = pos + len(line)
                return line
            scanned = len(buffer) - pos

    def _skip_blank_lines(self) -> int:
        """Step over the blank lines at the read position; return how many there were."""
        count = 0
        while True:
            if self._pos >= len(self._buffer) and not self._fill():
                return count
            buffer, pos = self._buffer, self._pos
            run = _BLANK_LINES.match(buffer, pos)
            if run is None:
                return count
            end = run.end()
            if end == len(buffer) and buffer.endswith("\r") and not self._eof:
                end -= 1  # a "\r\n" may be split across blocks: count it once, next time
            text = buffer[pos:end]
            count += text.count("\n") + text.count("\r") - text.count("\r\n")
            self._pos = end
            if len(buffer) - end > 1 or (end < len(buffer) and not buffer.endswith("\r")):
                return count
            if not self._fill():
                return count

    def _keep(self, line: str) -> None:
        room = PREVIEW_CHARS - self._preview_chars
        if room > 0:
            self._preview.append(line[:room])
            self._preview_chars += min(room, len(line))

    def _drain(self) -> None:
        """Skip the rest of an over-long physical line, holding only a chunk at a time."""
        while chunk := self._readline(_DRAIN_CHUNK):
            self.row_chars += len(chunk)
            if chunk.endswith("\n"):
                return
            if chunk.endswith("\r"):
                self._pending_lf = len(chunk) == _DRAIN_CHUNK
                return


@dataclass
class _Row:
    """One row as read: its values, or why it could not be read."""

    key: str | None
    first_line: int
    last_line: int
    chars: int
    values: dict[str, str] | None = None
    unreadable: dict[str, str] | None = None
    errors: list[FieldError] = field(default_factory=list)


@dataclass
class _Group:
    """The contiguous rows of one offender, becoming one raw record."""

    key: str | None
    first_line: int = 0
    last_line: int = 0
    chars: int = 0
    rows: list[dict[str, str]] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    # Unreadable rows beyond MAX_UNREADABLE_KEPT are counted, not kept (see record()).
    unreadable_omitted: int = 0
    omitted_first_line: int = 0
    # The CRN had a group before, not next to this one.
    repeated: bool = False
    # The offender's rows went over max_record_chars: this group ends early / continues one.
    overflowed: bool = False
    continued: bool = False

    def add(self, row: _Row) -> None:
        if not self.first_line:
            self.first_line = row.first_line
        self.last_line = row.last_line
        self.chars += row.chars
        if row.values is not None:
            self.rows.append(row.values)
        if row.unreadable is None:
            self.errors.extend(row.errors)
        elif len(self.unreadable) < MAX_UNREADABLE_KEPT:
            self.unreadable.append(row.unreadable)
            self.errors.extend(row.errors)
        else:
            if not self.unreadable_omitted:
                self.omitted_first_line = row.first_line
            self.unreadable_omitted += 1

    @property
    def label(self) -> str:
        return _lines_label(self.first_line, self.last_line)

    def record(self, version: ExportVersion, limits: SplitLimits) -> RawRecord:
        data: dict[str, Any] = {"export_version": version.name, "rows": self.rows}
        if self.unreadable:
            data["unreadable"] = self.unreadable
        errors = list(self.errors)
        label, limit = self.label, limits.max_record_chars
        if self.repeated:
            errors.append(
                FieldError(
                    path=version.column["crn"],
                    message=(
                        f"{label}: this offender's rows also appear earlier in the file; "
                        "the rows of one offender must be contiguous"
                    ),
                    type="rows_not_contiguous",
                )
            )
        if self.continued:
            errors.append(
                FieldError(
                    path="",
                    message=f"{label}: continues an offender whose rows exceed {limit} characters",
                    type="record_too_large",
                )
            )
        if self.overflowed:
            errors.append(
                FieldError(
                    path="",
                    message=(
                        f"{label}: this offender's rows exceed {limit} characters; "
                        "the rest follow in the next record"
                    ),
                    type="record_too_large",
                )
            )
        if self.unreadable_omitted:
            where = _lines_label(self.omitted_first_line, self.last_line)
            errors.append(
                FieldError(
                    path="",
                    message=(
                        f"{where}: {self.unreadable_omitted} more rows could not be read "
                        f"either; only the first {MAX_UNREADABLE_KEPT} are kept"
                    ),
                    type="unreadable_row",
                )
            )
        key = self.key
        return RawRecord(
            data=data,
            external_id=key if key and len(key) <= 128 else None,
            position=self.label,
            errors=tuple(errors),
        )


class _SeenCrns:
    """Which well-formed CRNs have had a group already: one bit per CRN, 125 kB per letter."""

    def __init__(self) -> None:
        self._bits: dict[str, bytearray] = {}

    def add(self, key: str) -> bool:
        """Record `key`; return whether it was seen before (False for a malformed CRN)."""
        if not _CRN_SHAPE.fullmatch(key):
            return False
        bits = self._bits.get(key[0])
        if bits is None:
            bits = self._bits[key[0]] = bytearray(125_000)
        number = int(key[1:])
        byte, mask = number >> 3, 1 << (number & 7)
        seen = bool(bits[byte] & mask)
        bits[byte] |= mask
        return seen


def split_records(stream: IO[bytes], limits: SplitLimits) -> Iterator[RawRecord]:
    """Yield one raw record per offender (contiguous rows sharing a CRN), in file order."""
    # The limit is process-wide state of the csv module: set it for every parse.
    csv.field_size_limit(limits.max_field_bytes)
    text = io.TextIOWrapper(
        stream,
        encoding=limits.encoding,
        errors="surrogateescape",
        newline="",
    )
    try:
        yield from _Splitter(text, limits).records()
    finally:
        # Leave the caller's stream open: a collected wrapper would close it.
        with contextlib.suppress(ValueError, OSError, AttributeError):
            text.detach()


class _Splitter:
    def __init__(self, text: IO[str], limits: SplitLimits) -> None:
        self.limits = limits
        self.lines = _LineSource(text, limits)
        self.reader = csv.reader(
            self.lines, delimiter=limits.delimiter, quotechar='"', doublequote=True, strict=True
        )
        self.names: list[str] = []
        self.crn_index = 0

    def records(self) -> Iterator[RawRecord]:
        version = self._header()
        seen = _SeenCrns()
        group: _Group | None = None
        while (row := self._next_row()) is not None:
            if row.values is None and row.unreadable is None:
                continue  # a blank line
            if group is not None and (row.key is None or row.key == group.key):
                if group.chars + row.chars <= self.limits.max_record_chars:
                    group.add(row)
                    continue
                group.overflowed = True
                yield group.record(version, self.limits)
                group = _Group(key=group.key, continued=True)
                group.add(row)
                continue
            if group is not None:
                yield group.record(version, self.limits)
            group = _Group(key=row.key)
            group.add(row)
            group.repeated = row.key is not None and seen.add(row.key)
        if group is not None:
            yield group.record(version, self.limits)

    def _header(self) -> ExportVersion:
        limits, lines = self.limits, self.lines
        while True:
            lines.start_row()
            try:
                fields = next(self.reader)
            except StopIteration:
                raise PayloadRejected("no header row") from None
            except csv.Error as error:
                raise PayloadRejected(
                    f"the header row ({lines.label}) is not valid CSV: {_csv_message(error)}"
                ) from None
            except _RowTooLong:
                raise PayloadRejected(
                    f"the header row is longer than {limits.max_row_chars} characters"
                ) from None
            if any(name.strip() for name in fields):
                break
        if lines.foreign_bom:
            raise PayloadRejected(
                "the file starts with a UTF-8 byte order mark, but this source is configured "
                f"for {limits.encoding}"
            )
        if len(fields) > limits.max_columns:
            raise PayloadRejected(
                f"the header row has {len(fields)} columns; at most {limits.max_columns} "
                "are allowed"
            )
        if lines.row_suspect:
            raise PayloadRejected(
                f"the header row holds bytes that are not valid {limits.encoding}, "
                "or a NUL character"
            )
        names = [name.strip().upper() for name in fields]
        for number, name in enumerate(names, start=1):
            if not name:
                raise PayloadRejected(f"header column {number} has no name")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise PayloadRejected(
                "the header names a column more than once",
                errors=[_column_error(name, "column appears more than once") for name in repeated],
            )
        version = detect_version(names)
        if version is None:
            raise PayloadRejected(
                "the header is not a Delius flat export header: it should have either an "
                "OFFENDER_CRN column (export v1) or a CRN column (export v2)"
            )
        unknown = [name for name in names if name not in version.key]
        if unknown:
            raise PayloadRejected(
                f"the header has columns export {version.name} does not have: "
                + ", ".join(unknown[:20]),
                errors=[_column_error(name, "unknown column") for name in unknown[:100]],
            )
        missing = sorted(version.required - set(names))
        if missing:
            raise PayloadRejected(
                f"the header lacks required export {version.name} columns: " + ", ".join(missing),
                errors=[_column_error(name, "required column is missing") for name in missing],
            )
        self.names = names
        self.crn_index = names.index(version.column["crn"])
        return version

    def _next_row(self) -> _Row | None:
        """The next row; None at the end; a row with neither values nor errors when blank."""
        lines = self.lines
        lines.start_row()
        try:
            fields = next(self.reader)
        except StopIteration:
            return None
        except csv.Error as error:
            return self._unreadable(f"{lines.label}: {_csv_message(error)}", self._key_of_text())
        except _RowTooLong:
            return self._unreadable(
                f"{lines.label}: the row is longer than {self.limits.max_row_chars} characters",
                self._key_of_text(),
            )
        index = self.crn_index
        crn = fields[index] if index < len(fields) else ""
        if not crn.strip() and not any(value.strip() for value in fields):
            return _Row(key=None, first_line=lines.first_line, last_line=lines.lines_read, chars=0)
        key = None if _SUSPECT.search(crn) else crn_key(crn)
        if len(fields) != len(self.names):
            return self._unreadable(
                f"{lines.label}: the row has {len(fields)} fields where the header has "
                f"{len(self.names)} (a truncated or malformed row)",
                key,
            )
        errors: list[FieldError] = []
        if lines.row_suspect or lines.row_chars * _MAX_BYTES_PER_CHAR > self.limits.max_field_bytes:
            errors = self._field_errors(fields)
        if errors:
            return self._unreadable(None, key, errors)
        return _Row(
            key=key,
            first_line=lines.first_line,
            last_line=lines.lines_read,
            chars=lines.row_chars,
            values=dict(zip(self.names, fields, strict=True)),
        )

    def _field_errors(self, fields: list[str]) -> list[FieldError]:
        limits, label = self.limits, self.lines.label
        errors: list[FieldError] = []
        for name, value in zip(self.names, fields, strict=True):
            if _SUSPECT.search(value):
                errors.append(
                    FieldError(
                        path=name,
                        message=(
                            f"{label}: {name} holds bytes that are not valid {limits.encoding}, "
                            "or a NUL character"
                        ),
                        type="undecodable",
                    )
                )
            elif len(value) * _MAX_BYTES_PER_CHAR > limits.max_field_bytes:
                size = len(value.encode(limits.encoding, errors="surrogateescape"))
                if size > limits.max_field_bytes:
                    errors.append(
                        FieldError(
                            path=name,
                            message=(
                                f"{label}: {name} is {size} bytes long; at most "
                                f"{limits.max_field_bytes} are allowed"
                            ),
                            type="field_too_large",
                        )
                    )
        return errors

    def _unreadable(
        self, message: str | None, key: str | None, errors: list[FieldError] | None = None
    ) -> _Row:
        lines = self.lines
        if message is not None:
            errors = [FieldError(path="", message=message, type="unreadable_row")]
        return _Row(
            key=key,
            first_line=lines.first_line,
            last_line=max(lines.lines_read, lines.first_line),
            # What the group holds for it: the preview and its errors, not the whole row.
            chars=min(lines.row_chars, PREVIEW_CHARS) + _UNREADABLE_OVERHEAD,
            unreadable={"position": lines.label, "text": lines.preview()},
            errors=errors or [],
        )

    def _key_of_text(self) -> str | None:
        """The CRN of a row csv could not split, read leniently from the start of its text."""
        text = self.lines.raw_preview()
        try:
            fields = next(
                csv.reader(io.StringIO(text, newline=""), delimiter=self.limits.delimiter)
            )
        except (StopIteration, csv.Error):
            return None
        if self.crn_index >= len(fields) or _SUSPECT.search(fields[self.crn_index]):
            return None
        return crn_key(fields[self.crn_index]) or None


def _column_error(name: str, message: str) -> FieldError:
    return FieldError(path=name[:200], message=message, type="header")


def _csv_message(error: csv.Error) -> str:
    message = str(error)
    if message == "unexpected end of data":
        return "the file ends inside a quoted field (a truncated row)"
    if message.startswith("field larger than field limit"):
        return f"a field is larger than the limit of {csv.field_size_limit()} characters"
    return f"not valid CSV ({message})"
