"""The `rest_json` adapter: a commercial case system's JSON API, polled page by page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, ClassVar

from pydantic import Field

from adapters.base import (
    MAX_RECORD_NESTING,
    Adapter,
    AdapterConfig,
    FatalSourceError,
    FetchedPage,
    FieldError,
    LineReader,
    PayloadRejected,
    RawRecord,
    SourceHttp,
    json_error_position,
    nested_deeper_than,
    overlong_line,
    unreadable_line,
)
from adapters.rest_json.translate import external_id_of, translate_item
from schemas import CaseRecord

JSON = "application/json"
# Pages one per line, as `writer.write_records` writes them; a vendor type so it cannot be
# mistaken for the canonical adapter's NDJSON of records.
PAGES_JSONL = "application/vnd.crc-rest-json+jsonl"
#: A page on one line holds up to 1,000 items: a line longer than this is refused unread.
MAX_PAGE_LINE_BYTES = 64 * 1024 * 1024


class RestJsonConfig(AdapterConfig):
    """Settings of a `rest_json` source (the base URL and token are in its poll settings)."""

    page_size: int = Field(100, ge=1, le=1000, description="Items asked for per page (`limit`).")
    path: str = Field(
        "/cases",
        pattern=r"^/[A-Za-z0-9._~/-]*$",
        description="Path of the case list, relative to the source's base URL.",
    )


class PageShapeError(ValueError):
    """A document that is not a page `{"items": [...], "nextCursor": "..." | null}`."""

    def __init__(self, message: str, errors: list[FieldError]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def read_page(document: Any) -> Page:
    """The items and next cursor of a page; PageShapeError if it is not one.

    Fields of the envelope other than `items` and `nextCursor` are ignored: they carry no case
    data (the case system adds counts and links there), unlike fields of an item.
    """
    if not isinstance(document, dict):
        raise PageShapeError(
            'a page must be a JSON object {"items": [...], "nextCursor": ...}',
            [FieldError(path="", message="expected an object", type="dict_type")],
        )
    items = document.get("items")
    if not isinstance(items, list):
        raise PageShapeError(
            "a page must have a list of items",
            [FieldError(path="items", message="expected a list", type="list_type")],
        )
    next_cursor = document.get("nextCursor")
    if next_cursor is not None and not (isinstance(next_cursor, str) and next_cursor.strip()):
        raise PageShapeError(
            "a page's nextCursor must be a non-empty string or null",
            [
                FieldError(
                    path="nextCursor", message="expected a string or null", type="string_type"
                )
            ],
        )
    return Page(items=items, next_cursor=next_cursor)


def _too_deep(item: Any, position: str) -> RawRecord:
    # The item itself is not kept: walking it again to store it is what the limit prevents.
    external_id = external_id_of(item)
    return RawRecord(
        data={"id": external_id, "refused": f"nested deeper than {MAX_RECORD_NESTING} levels"},
        external_id=external_id,
        position=position,
        errors=(
            FieldError(
                path="",
                message=f"the item nests deeper than {MAX_RECORD_NESTING} levels",
                type="too_deeply_nested",
            ),
        ),
    )


def raw_records(items: list[Any], *, position: str = "") -> Iterator[RawRecord]:
    """A page's items as raw records; an item nested too deeply is refused on its own."""
    for index, item in enumerate(items):
        where = f"{position}items[{index}]"
        if nested_deeper_than(item, MAX_RECORD_NESTING):
            yield _too_deep(item, where)
            continue
        yield RawRecord(data=item, external_id=external_id_of(item), position=where)


class RestJsonAdapter(Adapter[RestJsonConfig]):
    """Reads the case system's `/cases` pages: polled by cursor, or pushed as page documents.

    See FORMAT.md beside this module for the item shape and the code lists.
    """

    name: ClassVar[str] = "rest_json"
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[AdapterConfig]] = RestJsonConfig
    content_types: ClassVar[tuple[str, ...]] = (JSON, PAGES_JSONL)

    def parse(self, stream: IO[bytes], content_type: str) -> Iterator[RawRecord]:
        if content_type == PAGES_JSONL:
            yield from self._parse_page_lines(stream)
            return
        try:
            document = json.load(stream)
        except ValueError as error:  # bad UTF-8, bad JSON, or a number too long
            raise PayloadRejected(
                f"body is not valid UTF-8 JSON: {json_error_position(error)}"
            ) from None
        except RecursionError:
            raise PayloadRejected("body is nested too deeply") from None
        try:
            page = read_page(document)
        except PageShapeError as error:
            raise PayloadRejected(error.message, errors=error.errors) from None
        yield from raw_records(page.items)

    def _parse_page_lines(self, stream: IO[bytes]) -> Iterator[RawRecord]:
        for number, line, whole in LineReader(stream).numbered_lines(MAX_PAGE_LINE_BYTES):
            position = f"line {number}"
            if not whole:
                yield overlong_line(line, position, MAX_PAGE_LINE_BYTES)
                continue
            if not line.strip():
                continue
            try:
                page = read_page(json.loads(line))
            except (ValueError, RecursionError) as error:
                yield unreadable_line(
                    line, position, f"not a JSON page: {json_error_position(error)}"
                )
                continue
            except PageShapeError as error:
                yield unreadable_line(line, position, error.message)
                continue
            yield from raw_records(page.items, position=f"{position} ")

    def translate(self, raw: Any) -> CaseRecord:
        return translate_item(raw)

    def fetch(self, cursor: str | None, http: SourceHttp) -> FetchedPage:
        """The page after `cursor`. On the last page (`nextCursor` null) the source is caught up,
        and the page is asked for again next time with the same cursor: what the case system
        changes meanwhile is appended after it."""
        params = {"limit": str(self.config.page_size)}
        if cursor is not None:
            params["cursor"] = cursor
        document = http.get_json(self.config.path, params=params)
        try:
            page = read_page(document)
        except PageShapeError as error:
            raise FatalSourceError(
                f"the source's {self.config.path} response is not a page: {error.message}"
            ) from None
        if page.next_cursor is not None and page.next_cursor == cursor:
            raise FatalSourceError(
                f"the source's {self.config.path} response gave back the cursor it was sent"
            )
        return FetchedPage(
            records=list(raw_records(page.items)),
            next_cursor=page.next_cursor if page.next_cursor is not None else cursor,
            has_more=page.next_cursor is not None,
        )
