"""Every resource a client controls is capped, and every malformed body is a 4xx, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.base import MAX_RECORD_NESTING
from gateway.services.clients import Role
from gateway.settings import Settings
from tests.api.conftest import ClientFactory, assert_problem
from tests.builders import make_case_record
from tests.conftest import KeyMaker, bearer

SOURCE = "crc-north"
RECORDS = f"/v1/sources/{SOURCE}/records"
JSON = {"Content-Type": "application/json"}
BODY_LIMIT = 8 * 1024


@pytest.fixture
def source_headers(make_key: KeyMaker) -> dict[str, str]:
    return {**bearer(make_key(Role.SOURCE, source=SOURCE)), **JSON}


@pytest.fixture
def admin_headers(make_key: KeyMaker) -> dict[str, str]:
    return bearer(make_key(Role.ADMIN))


def batch_bytes(*records: Any) -> bytes:
    return json.dumps({"records": list(records)}).encode()


async def in_chunks(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    """A streamed body: httpx sends it chunked, with no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def received(client: httpx.AsyncClient, make_key: KeyMaker) -> int:
    status = await client.get(
        f"/v1/sources/{SOURCE}/status", headers=bearer(make_key(Role.OPERATOR))
    )
    count: int = status.json()["received"]
    return count


def padded_batch(size: int) -> bytes:
    """A valid one-record batch padded with whitespace to exactly `size` bytes."""
    body = batch_bytes(make_case_record())
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


# -- body size -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_body_at_the_limit_is_accepted_and_one_byte_more_is_413(
    client_with_limits: ClientFactory, source_headers: dict[str, str]
) -> None:
    client = await client_with_limits(max_body_bytes=BODY_LIMIT)
    at_limit = await client.post(RECORDS, content=padded_batch(BODY_LIMIT), headers=source_headers)
    assert at_limit.status_code == 200, at_limit.text

    over = await client.post(RECORDS, content=padded_batch(BODY_LIMIT + 1), headers=source_headers)
    body = assert_problem(over, 413)
    assert str(BODY_LIMIT) in body["detail"]


@pytest.mark.anyio
async def test_a_streamed_body_without_content_length_is_counted(
    client_with_limits: ClientFactory, source_headers: dict[str, str], make_key: KeyMaker
) -> None:
    client = await client_with_limits(max_body_bytes=BODY_LIMIT)
    small = await client.post(
        RECORDS, content=in_chunks(padded_batch(BODY_LIMIT)), headers=source_headers
    )
    assert "content-length" not in small.request.headers
    assert small.request.headers["transfer-encoding"] == "chunked"
    assert small.status_code == 200, small.text

    big = await client.post(
        RECORDS, content=in_chunks(padded_batch(4 * BODY_LIMIT)), headers=source_headers
    )
    assert "content-length" not in big.request.headers
    assert_problem(big, 413)
    # Only the first push was stored.
    assert await received(client, make_key) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_the_body_limit_holds_on_routes_that_parse_a_model(
    client_with_limits: ClientFactory, admin_headers: dict[str, str], streamed: bool
) -> None:
    """POST /v1/clients has its body parsed by FastAPI, not by the gateway's own code."""
    client = await client_with_limits(max_body_bytes=1024)
    document = json.dumps({"name": "x" * 2000, "role": "central"}).encode()
    content: Any = in_chunks(document, 100) if streamed else document
    response = await client.post("/v1/clients", content=content, headers={**admin_headers, **JSON})
    assert_problem(response, 413)
    listed = await client.get("/v1/clients", headers=admin_headers)
    assert [c["role"] for c in listed.json()] == ["admin"]


def test_the_default_body_limit_is_finite() -> None:
    assert 0 < Settings().limits.max_body_bytes <= 64 * 1024 * 1024


# -- batch size and page size -----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_batch_over_max_batch_records_is_422_and_stores_nothing(
    client_with_limits: ClientFactory, source_headers: dict[str, str], make_key: KeyMaker
) -> None:
    client = await client_with_limits(max_batch_records=3)
    over = await client.post(
        RECORDS,
        content=batch_bytes(*(make_case_record() for _ in range(4))),
        headers=source_headers,
    )
    body = assert_problem(over, 422)
    assert "3" in body["detail"]
    assert await received(client, make_key) == 0

    at_limit = await client.post(
        RECORDS,
        content=batch_bytes(*(make_case_record() for _ in range(3))),
        headers=source_headers,
    )
    assert at_limit.status_code == 200
    assert at_limit.json()["summary"]["created"] == 3


@pytest.mark.anyio
async def test_an_empty_batch_is_422(
    client: httpx.AsyncClient, source_headers: dict[str, str]
) -> None:
    assert_problem(await client.post(RECORDS, content=batch_bytes(), headers=source_headers), 422)


@pytest.mark.anyio
async def test_a_page_size_over_max_page_size_is_cut_to_it(
    client: httpx.AsyncClient, settings: Settings, make_key: KeyMaker
) -> None:
    central = bearer(make_key(Role.CENTRAL))
    maximum = settings.limits.max_page_size
    over = await client.get("/v1/changes", params={"limit": maximum + 1}, headers=central)
    assert over.status_code == 200
    for too_small in (0, -1):
        response = await client.get("/v1/changes", params={"limit": too_small}, headers=central)
        body = assert_problem(response, 422)
        assert [error["path"] for error in body["errors"]] == ["query.limit"]
    at_max = await client.get("/v1/changes", params={"limit": maximum}, headers=central)
    assert at_max.status_code == 200


@pytest.mark.anyio
async def test_an_overlong_cursor_or_identifier_is_422(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    central = bearer(make_key(Role.CENTRAL))
    cursor = await client.get("/v1/changes", params={"after": "c" * 201}, headers=central)
    assert_problem(cursor, 422)
    lookup = await client.get("/v1/persons", params={"crn": "X" * 33}, headers=central)
    assert_problem(lookup, 422)


# -- shape of the body ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_unknown_top_level_field_is_400_naming_it(
    client: httpx.AsyncClient, source_headers: dict[str, str]
) -> None:
    content = json.dumps({"records": [make_case_record()], "priority": "high"}).encode()
    body = assert_problem(await client.post(RECORDS, content=content, headers=source_headers), 400)
    assert [error["path"] for error in body["errors"]] == ["priority"]


@pytest.mark.anyio
async def test_an_unknown_field_in_a_record_rejects_only_that_record(
    client: httpx.AsyncClient, source_headers: dict[str, str]
) -> None:
    good = make_case_record()
    bad = make_case_record(person={"favourite_colour": "teal"})
    response = await client.post(RECORDS, content=batch_bytes(good, bad), headers=source_headers)
    assert response.status_code == 200
    document = response.json()
    assert document["summary"]["created"] == 1
    assert document["summary"]["rejected"] == 1
    first, second = document["results"]
    assert first["outcome"] == "created"
    assert first["person_id"] is not None
    assert second["outcome"] == "rejected"
    assert second["external_id"] == bad["provenance"]["external_id"]
    assert [error["path"] for error in second["errors"]] == ["person.favourite_colour"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/xml", "application/x-www-form-urlencoded"]
)
async def test_a_content_type_other_than_json_is_415(
    client: httpx.AsyncClient, make_key: KeyMaker, content_type: str | None
) -> None:
    headers = bearer(make_key(Role.SOURCE, source=SOURCE))
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post(RECORDS, content=batch_bytes(make_case_record()), headers=headers)
    assert_problem(response, 415)


@pytest.mark.anyio
async def test_json_with_a_charset_parameter_is_accepted(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    headers = {
        **bearer(make_key(Role.SOURCE, source=SOURCE)),
        "Content-Type": "application/json; charset=utf-8",
    }
    response = await client.post(RECORDS, content=batch_bytes(make_case_record()), headers=headers)
    assert response.status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content",
    [
        b'{"records": [',
        b"",
        b"records=1",
        b'{"records": [{}]} trailing',
        b"\xff\xfe\x00{",
        b'{"records": {}}',
        b'{"records": null}',
        b"null",
        b'"records"',
        b"42",
    ],
    ids=[
        "truncated",
        "empty",
        "form",
        "trailing-garbage",
        "not-utf8",
        "records-object",
        "records-null",
        "null",
        "string",
        "number",
    ],
)
async def test_malformed_json_is_400(
    client: httpx.AsyncClient, source_headers: dict[str, str], content: bytes
) -> None:
    body = assert_problem(await client.post(RECORDS, content=content, headers=source_headers), 400)
    assert body["type"].endswith("/malformed-body")


@pytest.mark.anyio
async def test_a_json_array_instead_of_an_object_is_400(
    client: httpx.AsyncClient, source_headers: dict[str, str]
) -> None:
    content = json.dumps([make_case_record()]).encode()
    body = assert_problem(await client.post(RECORDS, content=content, headers=source_headers), 400)
    assert body["errors"][0]["path"] == "records"


@pytest.mark.anyio
@pytest.mark.parametrize("not_an_object", [[], "a record", 7, None, True])
async def test_a_record_that_is_not_an_object_is_rejected_with_a_message(
    client: httpx.AsyncClient, source_headers: dict[str, str], not_an_object: Any
) -> None:
    good = make_case_record()
    response = await client.post(
        RECORDS, content=batch_bytes(not_an_object, good), headers=source_headers
    )
    assert response.status_code == 200, response.text
    rejected, created = response.json()["results"]
    assert created["outcome"] == "created"
    assert rejected["outcome"] == "rejected"
    [error] = rejected["errors"]
    assert error["path"] == ""
    assert "object" in error["message"]


def nested_lists(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.anyio
@pytest.mark.parametrize("depth", [100, 500, 900, 950, 970, 980, 990, 1000, 5000, 100_000])
async def test_deeply_nested_json_is_a_4xx_never_a_5xx(
    client: httpx.AsyncClient, source_headers: dict[str, str], depth: int
) -> None:
    # The depths near Python's recursion limit matter most: the body parses, but storing the
    # rejected record's raw payload then recurses deeper than parsing did.
    bodies = [
        b'{"records": [' + nested_lists(depth) + b"]}",
        b'{"records": [{"person": {"aliases": ' + nested_lists(depth) + b"}}]}",
        b'{"records": [{"case": ' + nested_objects(depth) + b"}]}",
    ]
    for content in bodies:
        response = await client.post(RECORDS, content=content, headers=source_headers)
        assert 400 <= response.status_code < 500, (depth, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.anyio
async def test_nesting_is_refused_one_level_past_the_guard(
    client: httpx.AsyncClient, source_headers: dict[str, str]
) -> None:
    at_limit = b'{"records": [' + nested_lists(MAX_RECORD_NESTING) + b"]}"
    response = await client.post(RECORDS, content=at_limit, headers=source_headers)
    # Within the guard: judged as a record (and rejected, as a list is not a record).
    assert response.status_code == 200
    assert response.json()["summary"]["rejected"] == 1

    past = b'{"records": [' + nested_lists(MAX_RECORD_NESTING + 1) + b"]}"
    assert_problem(await client.post(RECORDS, content=past, headers=source_headers), 400)


@pytest.mark.anyio
async def test_a_realistically_nested_record_is_not_refused_as_too_deep(
    client: httpx.AsyncClient, source_headers: dict[str, str]
) -> None:
    """The depth guard leaves room for every real record (the deepest path is about 7 levels)."""
    response = await client.post(
        RECORDS, content=batch_bytes(make_case_record()), headers=source_headers
    )
    assert response.status_code == 200
    assert response.json()["summary"]["created"] == 1
