"""Every error is an RFC 9457 problem document, and none repeats what the client sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from gateway.services import status as status_service
from gateway.services.clients import Role
from tests.api.conftest import ClientFactory, assert_problem
from tests.builders import make_case_record
from tests.conftest import KeyMaker, bearer

# Distinctive enough that finding it anywhere in a response can only mean it was echoed.
CANARY = "QZXCANARYVQX"
SOURCE = "crc-north"
RECORDS = f"/v1/sources/{SOURCE}/records"

Call = Callable[[httpx.AsyncClient, dict[str, dict[str, str]]], Awaitable[httpx.Response]]


@pytest.fixture
def headers(make_key: KeyMaker) -> dict[str, dict[str, str]]:
    return {
        "source": {
            **bearer(make_key(Role.SOURCE, source=SOURCE)),
            "Content-Type": "application/json",
        },
        "central": bearer(make_key(Role.CENTRAL)),
        "operator": bearer(make_key(Role.OPERATOR)),
        "admin": bearer(make_key(Role.ADMIN)),
    }


def batch(*records: Any) -> bytes:
    return json.dumps({"records": list(records)}).encode()


# (expected status, expected problem type slug, the call), one for every way the API fails.
ERRORS: dict[str, tuple[int, str, Call]] = {
    "no-credential": (401, "unauthenticated", lambda c, h: c.get("/v1/changes")),
    "unknown-key": (
        401,
        "unauthenticated",
        lambda c, h: c.get("/v1/changes", headers=bearer("crcgw_00000000_nope")),
    ),
    "wrong-role": (403, "forbidden", lambda c, h: c.get("/v1/changes", headers=h["operator"])),
    "other-source": (
        403,
        "forbidden",
        lambda c, h: c.post(
            "/v1/sources/crc-south/records", content=batch(make_case_record()), headers=h["source"]
        ),
    ),
    "unknown-route": (404, "not-found", lambda c, h: c.get("/v1/nowhere")),
    "unknown-route-authenticated": (
        404,
        "not-found",
        lambda c, h: c.get("/v2/changes", headers=h["central"]),
    ),
    "unknown-person": (
        404,
        "not-found",
        lambda c, h: c.get(f"/v1/persons/{uuid.uuid4()}", headers=h["central"]),
    ),
    "unknown-client": (
        404,
        "not-found",
        lambda c, h: c.delete(f"/v1/clients/{uuid.uuid4()}", headers=h["admin"]),
    ),
    "wrong-method": (
        405,
        "method-not-allowed",
        lambda c, h: c.put("/v1/changes", headers=h["central"]),
    ),
    "malformed-json": (
        400,
        "malformed-body",
        lambda c, h: c.post(RECORDS, content=b"{", headers=h["source"]),
    ),
    "foreign-cursor": (
        400,
        "bad-request",
        lambda c, h: c.get("/v1/changes", params={"after": "bm9wZQ"}, headers=h["central"]),
    ),
    "bad-idempotency-key": (
        400,
        "bad-request",
        lambda c, h: c.post(
            RECORDS,
            content=batch(make_case_record()),
            headers={**h["source"], "Idempotency-Key": "has spaces in it"},
        ),
    ),
    "wrong-content-type": (
        415,
        "unsupported-media-type",
        lambda c, h: c.post(
            RECORDS, content=b"a,b", headers={**h["source"], "Content-Type": "text/csv"}
        ),
    ),
    "query-validation": (
        422,
        "invalid-request",
        lambda c, h: c.get("/v1/changes", params={"limit": "many"}, headers=h["central"]),
    ),
    "path-validation": (
        422,
        "invalid-request",
        lambda c, h: c.get("/v1/persons/not-a-uuid", headers=h["central"]),
    ),
    "body-validation": (
        422,
        "invalid-request",
        lambda c, h: c.post("/v1/clients", json={"role": "sorcerer"}, headers=h["admin"]),
    ),
    "domain-validation": (
        422,
        "invalid-request",
        lambda c, h: c.get("/v1/persons", params={"pnc": "02/73319Q"}, headers=h["central"]),
    ),
    "source-client-without-source": (
        422,
        "invalid-request",
        lambda c, h: c.post(
            "/v1/clients", json={"name": "n", "role": "source"}, headers=h["admin"]
        ),
    ),
    "empty-batch": (
        422,
        "invalid-request",
        lambda c, h: c.post(RECORDS, content=batch(), headers=h["source"]),
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(ERRORS))
async def test_every_error_is_a_problem_document(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]], case: str
) -> None:
    status, slug, make_call = ERRORS[case]
    response = await make_call(client, headers)
    body = assert_problem(response, status)
    assert body["type"].endswith(f"/{slug}")
    assert isinstance(body["title"], str)
    assert body["title"]
    # The request id ties the document to the log lines of the same request.
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.anyio
async def test_the_request_id_a_client_sends_is_the_one_it_gets_back(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/changes", headers={"X-Request-Id": "trace-42.a_b"})
    assert assert_problem(response, 401)["request_id"] == "trace-42.a_b"
    assert response.headers["x-request-id"] == "trace-42.a_b"
    # One that could smuggle text into a log line is replaced.
    odd = await client.get("/v1/changes", headers={"X-Request-Id": "x y\tz"})
    assert odd.headers["x-request-id"] != "x y\tz"
    assert assert_problem(odd, 401)["request_id"] == odd.headers["x-request-id"]


@pytest.mark.anyio
async def test_a_wrong_method_lists_the_allowed_ones(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]]
) -> None:
    response = await client.put("/v1/changes", headers=headers["central"])
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"


@pytest.mark.anyio
async def test_an_oversized_body_is_a_problem_document(
    client_with_limits: ClientFactory, headers: dict[str, dict[str, str]]
) -> None:
    client = await client_with_limits(max_body_bytes=1024)
    response = await client.post(RECORDS, content=b" " * 2048, headers=headers["source"])
    body = assert_problem(response, 413)
    assert body["type"].endswith("/payload-too-large")
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.anyio
async def test_an_unexpected_error_is_a_500_problem_that_says_nothing_of_the_cause(
    lenient_client: httpx.AsyncClient,
    headers: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"driver said: value {CANARY} violates a constraint")

    monkeypatch.setattr(status_service, "gateway_status", broken)
    response = await lenient_client.get(
        "/v1/status", headers={**headers["operator"], "X-Request-Id": "req-500"}
    )
    body = assert_problem(response, 500)
    assert body["type"].endswith("/internal-error")
    assert CANARY not in response.text
    assert "RuntimeError" not in response.text
    # "the error was logged with this request id": so the document must carry it.
    assert body["request_id"] == "req-500"
    assert response.headers["x-request-id"] == "req-500"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("call", "paths"),
    [
        (
            lambda c, h: c.get("/v1/changes", params={"limit": 0}, headers=h["central"]),
            ["query.limit"],
        ),
        (
            lambda c, h: c.post("/v1/clients", json={"role": "central"}, headers=h["admin"]),
            ["body.name"],
        ),
        (
            lambda c, h: c.post(
                "/v1/clients", json={"name": "n", "role": "central", "extra": 1}, headers=h["admin"]
            ),
            ["body.extra"],
        ),
        (
            lambda c, h: c.get(
                "/v1/persons", params={"pnc": "2002/0073319A"}, headers=h["central"]
            ),
            ["pnc"],
        ),
        (
            lambda c, h: c.get("/v1/sources/Not_A_Source/status", headers=h["operator"]),
            ["path.source"],
        ),
    ],
    ids=["query", "missing-body-field", "extra-body-field", "identifier", "source-name"],
)
async def test_validation_errors_name_each_field_at_fault(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]], call: Call, paths: list[str]
) -> None:
    body = assert_problem(await call(client, headers), 422)
    assert [error["path"] for error in body["errors"]] == paths
    for error in body["errors"]:
        assert isinstance(error["message"], str)
        assert error["message"]
        # Pydantic's raw error would carry the input and a docs URL; neither belongs here.
        assert set(error) <= {"path", "message", "type"}


@pytest.mark.anyio
async def test_a_rejected_record_names_its_fields_but_never_repeats_their_values(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]]
) -> None:
    bad = make_case_record(
        person={
            "surname": "Fictionworth",
            "date_of_birth": f"19{CANARY}",
            "sex": CANARY,
            "identifiers": {"pnc": f"2002/{CANARY}Z", "crn": CANARY, "noms": CANARY},
            "contact": {"email": CANARY},
        }
    )
    good = make_case_record()
    response = await client.post(RECORDS, content=batch(bad, good), headers=headers["source"])
    assert response.status_code == 200
    rejected, created = response.json()["results"]
    assert created["outcome"] == "created"
    assert rejected["outcome"] == "rejected"
    assert {error["path"] for error in rejected["errors"]} == {
        "person.date_of_birth",
        "person.sex",
        "person.identifiers.pnc",
        "person.identifiers.crn",
        "person.identifiers.noms",
        "person.contact.email",
    }
    assert CANARY not in response.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    "call",
    [
        lambda c, h: c.get("/v1/persons", params={"pnc": CANARY}, headers=h["central"]),
        lambda c, h: c.get("/v1/persons", params={"crn": CANARY}, headers=h["central"]),
        lambda c, h: c.get("/v1/persons", params={"noms": CANARY}, headers=h["central"]),
        lambda c, h: c.get("/v1/changes", params={"after": CANARY}, headers=h["central"]),
        lambda c, h: c.get("/v1/changes", params={"limit": CANARY}, headers=h["central"]),
        lambda c, h: c.post("/v1/clients", json={"name": "n", "role": CANARY}, headers=h["admin"]),
        lambda c, h: c.post(
            "/v1/clients",
            json={"name": "n", "role": "source", "source": CANARY},
            headers=h["admin"],
        ),
        lambda c, h: c.post(
            "/v1/clients", json={"name": CANARY * 10, "role": "central"}, headers=h["admin"]
        ),
        lambda c, h: c.post(
            RECORDS, content=f'{{"records": [{{"surname": "{CANARY}'.encode(), headers=h["source"]
        ),
        lambda c, h: c.post(
            RECORDS,
            content=batch(make_case_record()),
            headers={**h["source"], "Idempotency-Key": f"{CANARY} {CANARY}"},
        ),
        lambda c, h: c.get("/v1/changes", headers=bearer(f"crcgw_{CANARY}")),
    ],
    ids=[
        "pnc-lookup",
        "crn-lookup",
        "noms-lookup",
        "cursor",
        "page-size",
        "role",
        "source-name",
        "client-name",
        "broken-json",
        "idempotency-key",
        "api-key",
    ],
)
async def test_no_problem_document_echoes_a_submitted_value(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]], call: Call
) -> None:
    response = await call(client, headers)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert CANARY not in response.text
    assert CANARY not in str(response.headers)
