"""Reading the records out of a JSON document as it streams, in constant memory.

The document is walked along the records path (`$.data.cases[*]`): keys off the path are
skipped without being kept, and each record's text is captured and handed back to be decoded
on its own. Memory is one read chunk plus one record, whatever the document's size. Values off
the path are only scanned for their extent, not validated; each record is decoded in full.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["CapturedRecord", "JsonStreamError", "scan_records"]

_CHUNK = 64 * 1024
_MAX_KEY_CHARS = 64 * 1024
_WHITESPACE = re.compile(r"[ \t\r\n]*")
# Text up to the next bracket, stepping over whole strings (which may hold brackets).
_RUN = re.compile(r'[^"\[\]{}]*(?:"[^"\\]*(?:\\.[^"\\]*)*"[^"\[\]{}]*)*', re.DOTALL)
_STRING_RUN = re.compile(r'[^"\\]*')
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_LITERAL = re.compile(r'[^\s,\]}:\[{"]*')


class JsonStreamError(Exception):
    """The document is not JSON shaped as the records path expects."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(f"{message} (line {line} column {column})" if line else message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class CapturedRecord:
    """One record's text (None when it was larger than the limit) and how deep it nests."""

    where: str
    index: int
    text: str | None
    depth: int


class _Scanner:
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.buffer = ""
        self.pos = 0
        self._eof = False
        self._started = False
        self._lines_before = 0  # newlines in text already dropped from the buffer
        self._column_before = 0  # characters after the last dropped newline

    def error(self, message: str) -> JsonStreamError:
        newlines = self.buffer.count("\n", 0, self.pos)
        last = self.buffer.rfind("\n", 0, self.pos)
        column = self.pos - last if last >= 0 else self._column_before + self.pos + 1
        return JsonStreamError(message, self._lines_before + newlines + 1, column)

    def fill(self) -> bool:
        """Read more text, dropping what is before `pos`; False at the end of the stream."""
        if self.pos:
            dropped = self.buffer[: self.pos]
            newlines = dropped.count("\n")
            if newlines:
                self._lines_before += newlines
                self._column_before = len(dropped) - dropped.rfind("\n") - 1
            else:
                self._column_before += len(dropped)
            self.buffer = self.buffer[self.pos :]
            self.pos = 0
        while not self._eof:
            chunk = self._stream.read(_CHUNK)
            try:
                text = self._decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                self.pos = len(self.buffer)
                raise self.error("body is not valid UTF-8") from None
            self._eof = not chunk
            if text and not self._started:
                self._started = True
                text = text.removeprefix("\ufeff")
            if text:
                self.buffer += text
                return True
        return False

    def peek(self) -> str | None:
        """The next character after whitespace, not consumed; None at the end."""
        while True:
            match = _WHITESPACE.match(self.buffer, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.fill():
                return None

    def expect(self, allowed: str, what: str) -> str:
        char = self.peek()
        if char is None:
            raise self.error(f"unexpected end of the document, expected {what}")
        if char not in allowed:
            raise self.error(f"expected {what}")
        self.pos += 1
        return char

    def key(self) -> str:
        """An object key (a complete JSON string)."""
        if self.peek() != '"':
            raise self.error("expected a key in double quotes")
        while True:
            match = _STRING.match(self.buffer, self.pos)
            if match is not None:
                self.pos = match.end()
                try:
                    key: Any = json.loads(match.group())
                except json.JSONDecodeError:
                    raise self.error("bad string escape in a key") from None
                return str(key)
            if len(self.buffer) - self.pos > _MAX_KEY_CHARS:
                raise self.error("a key is too long")
            if not self.fill():
                raise self.error("unexpected end of the document inside a key")

    def value(self, *, capture: bool, limit: int) -> tuple[str | None, int]:
        """Step over one value; its text when `capture` (None past `limit`), and its depth."""
        char = self.peek()
        if char is None:
            raise self.error("unexpected end of the document, expected a value")
        pieces: list[str] = []
        size = 0
        keep = capture
        start = self.pos

        def flush() -> None:
            nonlocal size, keep
            if keep:
                piece = self.buffer[start : self.pos]
                size += len(piece)
                if size > limit:
                    keep = False
                    pieces.clear()
                else:
                    pieces.append(piece)

        if char not in '"[{':
            length = 0
            while True:
                match = _LITERAL.match(self.buffer, self.pos)
                end = match.end() if match else self.pos
                length += end - self.pos
                self.pos = end
                if self.pos < len(self.buffer):
                    break
                flush()
                more = self.fill()
                start = self.pos
                if not more:
                    break
            if length == 0:
                raise self.error("expected a value")
            flush()
            return ("".join(pieces) if keep else None), 0

        depth = deepest = 0
        in_string = escaped = False
        if char == '"':
            in_string = True
            self.pos += 1
        while True:
            if self.pos >= len(self.buffer):
                flush()
                if not self.fill():
                    raise self.error("unexpected end of the document inside a value")
                start = self.pos
                continue
            if in_string:
                if escaped:
                    self.pos += 1
                    escaped = False
                    continue
                match = _STRING_RUN.match(self.buffer, self.pos)
                self.pos = match.end() if match else self.pos
                if self.pos >= len(self.buffer):
                    continue
                char = self.buffer[self.pos]
                self.pos += 1
                if char == "\\":
                    escaped = True
                else:
                    in_string = False
                    if depth == 0:
                        break
                continue
            match = _RUN.match(self.buffer, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos >= len(self.buffer):
                continue
            char = self.buffer[self.pos]
            self.pos += 1
            if char == '"':
                in_string = True
            elif char in "[{":
                depth += 1
                deepest = max(deepest, depth)
            else:
                depth -= 1
                if depth == 0:
                    break
        flush()
        return ("".join(pieces) if keep else None), deepest


def _join(where: str, key: str) -> str:
    return f"{where}.{key}"


def scan_records(
    stream: IO[bytes], steps: tuple[str | None, ...], *, limit: int
) -> Iterator[CapturedRecord]:
    """Yield each value the path reaches (keys, with None for `[*]`), then check the end.

    Raises JsonStreamError when the document is not JSON, or not shaped like the path, or when
    the path never reaches a list.
    """
    scanner = _Scanner(stream)
    reached = False
    count = 0

    def walk(index: int, where: str) -> Iterator[CapturedRecord]:
        nonlocal reached, count
        if index == len(steps):
            text, depth = scanner.value(capture=True, limit=limit)
            count += 1
            yield CapturedRecord(where=where, index=count - 1, text=text, depth=depth)
            return
        step = steps[index]
        if step is None:
            scanner.expect("[", f"a list at {where}")
            reached = reached or index == len(steps) - 1
            if scanner.peek() == "]":
                scanner.pos += 1
                return
            position = 0
            while True:
                yield from walk(index + 1, f"{where}[{position}]")
                position += 1
                if scanner.expect(",]", "',' or ']'") == "]":
                    return
        scanner.expect("{", f"an object at {where}")
        if scanner.peek() == "}":
            scanner.pos += 1
            return
        while True:
            key = scanner.key()
            scanner.expect(":", "':'")
            if key == step:
                yield from walk(index + 1, _join(where, key))
            else:
                scanner.value(capture=False, limit=0)
            if scanner.expect(",}", "',' or '}'") == "}":
                return

    yield from walk(0, "$")
    if scanner.peek() is not None:
        raise scanner.error("unexpected data after the end of the document")
    if not reached:
        path = "$" + "".join("[*]" if step is None else f".{step}" for step in steps)
        raise JsonStreamError(f"the document has no list of records at {path[:-3]}")
