"""The adapter contract: how a source system's records become canonical case records.

An adapter is a small class. The gateway calls `parse` to split what a source sent into raw
records, then `translate` on each raw record's data to get a validated `schemas.CaseRecord`.
A source the gateway polls also implements `fetch`. Adapters are pure translators: they never
touch the database, the gateway's services or its network clients, never sleep and never retry;
they report problems only by raising the errors defined here.

Errors are data about the record or the source, not control flow:

- `RecordRejected`: this one record is bad; the gateway quarantines it with the field errors
  and carries on with the rest (unless it can keep it with bad identity fields dropped: see
  `RecordRejected.document`).
- `PayloadRejected`: the payload as a whole cannot be read (not JSON, no header row, hostile
  XML); nothing in it can be attributed to a record, so the request is refused with a 4xx.
- `RetriableSourceError`: a polled source failed in a way worth retrying, maybe after
  `retry_after` seconds.
- `FatalSourceError`: stop polling this source and tell the operator.

A new adapter subclasses `Adapter`, declares itself in the `crc_gateway.adapters` entry-point
group of its distribution, and runs the conformance suite in `adapters.testing` in its tests.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar, Generic, Protocol, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from schemas import CaseRecord


class FieldError(TypedDict):
    """One problem with one field: a dotted path into the record and a human message."""

    path: str
    message: str
    type: str


@dataclass(frozen=True)
class RawRecord:
    """One record as the source sent it, split out of a payload but not yet translated.

    `data` is kept verbatim (quarantine, replay, provenance), so it must be JSON-serialisable:
    a dict of a CSV row's columns, a JSON object, an XML element serialised as text inside a
    dict. `external_id` is the source's id for the record, at most 128 characters (a longer one
    is not kept). `position` says where the record was in the payload for an operator, at most
    64 characters (`lines 12-15`, `case 17`). `errors`, when not empty, says the record could
    not even be split out properly (a truncated row, bytes that are not text); the gateway
    quarantines it without translating. Such a record's `data` may later be replayed through
    `translate` (an operator corrects it); until corrected it must not translate into a
    partial record.
    """

    data: Any
    external_id: str | None = None
    position: str | None = None
    errors: tuple[FieldError, ...] = field(default=())


@dataclass(frozen=True)
class FetchedPage:
    """What one `fetch` call returned: records, and where to resume.

    `next_cursor` is always where the next poll resumes, also when `has_more` is false (the
    source is caught up: the next poll asks again from there). None means from the start.
    """

    records: list[RawRecord]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True, slots=True)
class Unparsed:
    """A source value an adapter could not convert, left in `RecordRejected.document` where the
    canonical value would have gone, so the gateway can report it (with the adapter's own
    message) when it keeps the record without that field."""

    value: Any
    message: str
    error_type: str


class RecordRejected(Exception):
    """A record that cannot become a canonical record; carries field-level errors.

    `document` is the canonical-shaped dict the adapter built and handed to `CaseRecord`, when
    that validation is the only thing that failed, or when the adapter's own conversions failed
    and it left an `Unparsed` in each such place. Given it, the gateway may keep the record
    with its invalid identity fields (a date of birth, a surname, an identifier, a postcode)
    dropped and reported as data-quality warnings; without it the record is quarantined.
    """

    def __init__(
        self,
        errors: list[FieldError],
        *,
        external_id: str | None = None,
        document: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{len(errors)} field error(s)")
        self.errors = errors
        self.external_id = external_id
        self.document = document


class PayloadRejected(Exception):
    """A payload that cannot be split into records at all."""

    def __init__(self, message: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class SourceError(Exception):
    """Base of the errors a polled source raises.

    The message is shown to operators in the source's status: it must describe the failure
    (a status code, a broken contract), never quote a record, a URL's query or a credential.
    """


class RetriableSourceError(SourceError):
    """The source failed in a way worth trying again (timeout, 5xx, rate limit)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalSourceError(SourceError):
    """The source cannot be used until an operator acts (bad credentials, contract broken)."""


class SourceHttp(Protocol):
    """The HTTP access the gateway lends a polled adapter's `fetch`.

    The gateway's implementation owns the client, authentication, timeouts and retries: a
    timeout, a 5xx, a 408 or a 429 is retried with backoff (honouring Retry-After) before it
    surfaces as `RetriableSourceError`; any other 4xx surfaces as `FatalSourceError`.
    """

    def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        """GET a path relative to the source's base URL and return the decoded JSON body."""
        ...


class AdapterConfig(BaseModel):
    """Base of every adapter's configuration model; unknown settings are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=AdapterConfig)


class Adapter(ABC, Generic[ConfigT]):
    """Translates one source system's records into canonical case records.

    Subclasses set:

    - `name`: the registry key, equal to the entry-point name;
    - `version`: recorded with every stored and quarantined record (at most 32 characters), so
      a record can be replayed through a fixed adapter and one can tell which version produced
      what;
    - `config_model`: the pydantic model of the adapter's settings (validated at start-up);
    - `content_types`: the media types `parse` accepts (empty for a polled-only adapter);

    and implement `parse` and `translate`, plus `fetch` for a polled source.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    config_model: ClassVar[type[AdapterConfig]] = AdapterConfig
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    @abstractmethod
    def parse(self, stream: IO[bytes], content_type: str) -> Iterator[RawRecord]:
        """Yield the raw records in a payload, in order, reading the stream as it goes.

        Must not read the whole stream into memory: payloads can be gigabytes. Raise
        `PayloadRejected` when nothing can be read; yield a `RawRecord` with `errors` for a
        record that cannot be split out, and carry on with the next. `PayloadRejected` may
        also come after records were yielded (a file that turns unreadable halfway): the
        gateway keeps every record committed before it and reports where the payload broke.
        """

    @abstractmethod
    def translate(self, raw: Any) -> CaseRecord:
        """Return the canonical record for one raw record's `data`; raise RecordRejected if bad.

        Must be pure and deterministic: the same data always gives the same result, the data is
        not modified, and nothing outside the adapter is read or written.
        """

    @property
    def polled(self) -> bool:
        """Whether this adapter implements `fetch`."""
        return type(self).fetch is not Adapter.fetch

    def fetch(self, cursor: str | None, http: SourceHttp) -> FetchedPage:
        """For a polled source: the page of records after `cursor` (None: from the start)."""
        raise NotImplementedError(f"the {self.name} adapter is not polled")


def field_errors_from(error: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """Pydantic validation errors as FieldErrors, without echoing the offending input."""
    errors: list[FieldError] = []
    for item in error.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in item["loc"])
        errors.append(
            FieldError(
                path=f"{prefix}.{path}" if prefix and path else (prefix or path),
                message=item["msg"],
                type=item["type"],
            )
        )
    return errors


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects in `value` nest more than `limit` deep (without recursing)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return False


# A canonical record nests about 7 deep. Far deeper input can still parse and then exhaust the
# stack wherever it is walked recursively (JSON encoding when it is stored), so adapters refuse it.
MAX_RECORD_NESTING = 32


# Lines holding only spaces, tabs or a carriage return before their "\n".
_BLANK_LINES = re.compile(rb"(?:[ \t\r]*\n)+")
_LINE_BLOCK = 64 * 1024


class LineReader:
    """A byte stream's "\n"-terminated lines, read in blocks, for adapters whose records are lines.

    `readline(limit)` behaves as `IO.readline(limit)`. `skip_blank_lines()` steps over a run of
    blank lines in one regex match and says how many there were, so a payload of nothing but
    blank lines costs a fraction of a microsecond per line rather than a trip through the parser.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._buffer = b""
        self._pos = 0

    def _fill(self) -> bool:
        # At least as much as is held, so a long line is read in O(length), not O(length^2).
        chunk = self._stream.read(max(_LINE_BLOCK, len(self._buffer) - self._pos))
        if not chunk:
            return False
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def readline(self, limit: int) -> bytes:
        """The next line with its "\n", or its first `limit` bytes; b"" at the end."""
        scanned = 0
        while True:
            buffer, pos = self._buffer, self._pos
            end = buffer.find(b"\n", pos + scanned, pos + limit)
            if end >= 0:
                self._pos = end + 1
                return buffer[pos : end + 1]
            if len(buffer) - pos >= limit or not self._fill():
                line = buffer[pos : pos + limit]
                self._pos = pos + len(line)
                return line
            scanned = len(buffer) - pos

    def numbered_lines(self, limit: int) -> Iterator[tuple[int, bytes, bool]]:
        """Each line that is not blank, with its 1-based number and whether it is whole: a line
        longer than `limit` comes as its first `limit` bytes, the rest stepped over unheld."""
        number = 0
        while True:
            number += self.skip_blank_lines()
            line = self.readline(limit + 1)
            if not line:
                return
            number += 1
            if len(line) > limit and not line.endswith(b"\n"):
                while (rest := self.readline(_LINE_BLOCK)) and not rest.endswith(b"\n"):
                    pass
                yield number, line[:limit], False
                continue
            yield number, line, True

    def skip_blank_lines(self) -> int:
        """Step over the blank lines at the read position; return how many there were."""
        count = 0
        while self._pos < len(self._buffer) or self._fill():
            run = _BLANK_LINES.match(self._buffer, self._pos)
            if run is None:
                break
            count += self._buffer.count(b"\n", self._pos, run.end())
            self._pos = run.end()
            if self._pos < len(self._buffer):
                break
        return count


#: How much of a line too long to read is kept for the quarantine.
OVERLONG_KEPT_BYTES = 64 * 1024


def overlong_line(line: bytes, position: str, limit: int) -> RawRecord:
    """A line longer than `limit` bytes (a multiple of 1 MiB), refused without being held: only
    its start is kept for the quarantine."""
    return unreadable_line(
        line[:OVERLONG_KEPT_BYTES],
        position,
        f"line is longer than {limit // (1024 * 1024)} MiB; "
        f"only its first {OVERLONG_KEPT_BYTES // 1024} KiB are kept",
    )


def unreadable_line(line: bytes, position: str, message: str) -> RawRecord:
    """A line that could not be read as a record, kept as text for the quarantine.

    Undecodable bytes are escaped, so the operator sees exactly what arrived.
    """
    text = line.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
    return RawRecord(
        data={"line": text},
        position=position,
        errors=(FieldError(path="", message=message, type="unreadable_record"),),
    )


def json_error_position(error: Exception) -> str:
    """Where and why a JSON document failed to decode, without quoting its content."""
    if isinstance(error, json.JSONDecodeError):
        return f"line {error.lineno} column {error.colno}: {error.msg}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, UnicodeDecodeError):
        return "invalid UTF-8"
    # The one other ValueError a JSON parser raises: a number too long to convert.
    return "a number has too many digits"
