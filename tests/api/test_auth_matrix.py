"""Who may call what: every route of the app, every kind of caller.

The table below is the access policy. It is checked against `app.routes`, so a route added
without a row here fails `test_the_matrix_covers_every_route`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI

from gateway.db import Database
from gateway.matching import load_model
from gateway.models import utcnow
from gateway.services import clients
from gateway.services.clients import Role
from tests.api.conftest import assert_problem
from tests.builders import make_case_record, random_crn
from tests.conftest import KeyMaker, bearer

OWN_SOURCE = "crc-north"
OTHER_SOURCE = "crc-south"

# Callers with a valid credential. A source client is tried against its own source (the one in
# the path, when the path has one) and against another source's.
SOURCE_OWN = "source-own-source"
SOURCE_OTHER = "source-other-source"
CENTRAL = "central"
OPERATOR = "operator"
ADMIN = "admin"
CALLERS = (SOURCE_OWN, SOURCE_OTHER, CENTRAL, OPERATOR, ADMIN)
EVERY_CALLER = frozenset(CALLERS)

# Requests that must never get past authentication.
NO_CREDENTIAL = "no-credential"
UNKNOWN_KEY = "unknown-key"
FOREIGN_KEY = "not-a-gateway-key"
REVOKED_KEY = "revoked-key"
WRONG_SCHEME = "basic-scheme"
EMPTY_BEARER = "empty-bearer"
UNAUTHENTICATED = (NO_CREDENTIAL, UNKNOWN_KEY, FOREIGN_KEY, REVOKED_KEY, WRONG_SCHEME, EMPTY_BEARER)

Build = Callable[[], dict[str, Any]]


def _no_body() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    """Callers with a valid credential that are let through; the rest get 403."""
    ok_status: int
    """What an allowed caller gets for the request `build` makes."""
    build: Build = _no_body
    public: bool = False
    """No credential needed at all (liveness only)."""
    probe: bool = False
    """Answers a request with no credential (readiness probes); one that is sent must be valid."""


MATRIX: dict[tuple[str, str], Rule] = {
    ("POST", "/v1/sources/{source}/records"): Rule(
        frozenset({SOURCE_OWN, ADMIN}),
        200,
        lambda: {"json": {"records": [make_case_record()]}},
    ),
    ("GET", "/v1/sources/{source}/records"): Rule(
        frozenset({SOURCE_OWN, CENTRAL, OPERATOR, ADMIN}), 200
    ),
    ("GET", "/v1/changes"): Rule(frozenset({CENTRAL, ADMIN}), 200),
    ("GET", "/v1/persons"): Rule(
        frozenset({CENTRAL, ADMIN}), 200, lambda: {"params": {"crn": random_crn()}}
    ),
    # A random id: 404 shows the caller got as far as the lookup.
    ("GET", "/v1/persons/{person_id}"): Rule(frozenset({CENTRAL, ADMIN}), 404),
    ("GET", "/v1/status"): Rule(frozenset({OPERATOR, ADMIN}), 200),
    ("GET", "/v1/sources/{source}/status"): Rule(frozenset({SOURCE_OWN, OPERATOR, ADMIN}), 200),
    # The matrix's app polls no source: 404 shows an allowed caller got as far as the lookup.
    ("POST", "/v1/sources/{source}/resume"): Rule(frozenset({OPERATOR, ADMIN}), 404),
    ("POST", "/v1/clients"): Rule(
        frozenset({ADMIN}), 201, lambda: {"json": {"name": "made by matrix", "role": "central"}}
    ),
    ("GET", "/v1/clients"): Rule(frozenset({ADMIN}), 200),
    ("DELETE", "/v1/clients/{client_id}"): Rule(frozenset({ADMIN}), 404),
    # A random id: 404 for every role that may read imports; which source's import it is can
    # only be checked once it exists (tests/api/test_uploads.py covers that).
    ("GET", "/v1/imports/{import_id}"): Rule(
        frozenset({SOURCE_OWN, SOURCE_OTHER, OPERATOR, ADMIN}), 404
    ),
    ("GET", "/v1/sources/{source}/data-quality"): Rule(frozenset({OPERATOR, ADMIN}), 200),
    ("GET", "/v1/quarantine"): Rule(frozenset({OPERATOR, ADMIN}), 200),
    # Random ids: 404 shows an allowed caller got as far as the lookup.
    ("GET", "/v1/quarantine/{record_id}"): Rule(frozenset({OPERATOR, ADMIN}), 404),
    ("POST", "/v1/quarantine/{record_id}/replay"): Rule(frozenset({OPERATOR, ADMIN}), 404),
    ("POST", "/v1/quarantine/{record_id}/discard"): Rule(
        frozenset({OPERATOR, ADMIN}), 404, lambda: {"json": {"reason": "matrix"}}
    ),
    ("GET", "/v1/review"): Rule(frozenset({OPERATOR, ADMIN}), 200),
    # Random ids: 404 shows an allowed caller got as far as the lookup.
    ("POST", "/v1/review/{decision_id}"): Rule(
        frozenset({OPERATOR, ADMIN}), 404, lambda: {"json": {"decision": "link"}}
    ),
    ("GET", "/v1/match-decisions/{decision_id}"): Rule(frozenset({OPERATOR, ADMIN}), 404),
    ("POST", "/v1/match/explain"): Rule(
        frozenset({OPERATOR, ADMIN}),
        200,
        lambda: {
            "json": {
                "left": make_case_record()["person"],
                "right": make_case_record()["person"],
            }
        },
    ),
    ("GET", "/v1/persons/{person_id}/sources"): Rule(frozenset({CENTRAL, OPERATOR, ADMIN}), 404),
    ("POST", "/v1/persons/{person_id}/links"): Rule(
        frozenset({OPERATOR, ADMIN}), 404, lambda: {"json": {"source_record_id": str(uuid.uuid4())}}
    ),
    ("POST", "/v1/persons/{person_id}/split"): Rule(
        frozenset({OPERATOR, ADMIN}),
        404,
        lambda: {"json": {"source_record_ids": [str(uuid.uuid4())]}},
    ),
    # The matrix's app allows no webhook host: 422 shows an admin got as far as the URL check.
    ("POST", "/v1/subscriptions"): Rule(
        frozenset({ADMIN}),
        422,
        lambda: {"json": {"name": "matrix", "url": "https://central.example/hooks"}},
    ),
    ("GET", "/v1/subscriptions"): Rule(frozenset({OPERATOR, ADMIN}), 200),
    # Random ids: 404 shows an allowed caller got as far as the lookup.
    ("GET", "/v1/subscriptions/{subscription_id}"): Rule(frozenset({OPERATOR, ADMIN}), 404),
    ("PATCH", "/v1/subscriptions/{subscription_id}"): Rule(
        frozenset({ADMIN}), 404, lambda: {"json": {"active": False}}
    ),
    ("DELETE", "/v1/subscriptions/{subscription_id}"): Rule(frozenset({ADMIN}), 404),
    ("POST", "/v1/subscriptions/{subscription_id}/secret"): Rule(frozenset({ADMIN}), 404),
    ("GET", "/v1/subscriptions/{subscription_id}/dead-letters"): Rule(
        frozenset({OPERATOR, ADMIN}), 404
    ),
    ("POST", "/v1/subscriptions/{subscription_id}/dead-letters/replay"): Rule(
        frozenset({OPERATOR, ADMIN}), 404
    ),
    ("PUT", "/v1/persons/{person_id}/identifiers"): Rule(
        frozenset({CENTRAL, ADMIN}), 404, lambda: {"json": {"crn": random_crn()}}
    ),
    ("GET", "/v1/matcher/models"): Rule(frozenset({ADMIN}), 200),
    ("POST", "/v1/matcher/models"): Rule(
        frozenset({ADMIN}),
        201,
        lambda: {
            "json": load_model()
            .model_copy(update={"version": f"matrix-{uuid.uuid4().hex[:8]}"})
            .model_dump(mode="json")
        },
    ),
    # An unknown version or run: 404 shows an admin got as far as the lookup.
    ("GET", "/v1/matcher/models/{version}"): Rule(frozenset({ADMIN}), 404),
    ("POST", "/v1/matcher/models/{version}/activate"): Rule(frozenset({ADMIN}), 404),
    ("POST", "/v1/matcher/reruns"): Rule(frozenset({ADMIN}), 202),
    ("GET", "/v1/matcher/reruns"): Rule(frozenset({ADMIN}), 200),
    ("GET", "/v1/matcher/reruns/{run_id}"): Rule(frozenset({ADMIN}), 404),
    ("GET", "/metrics"): Rule(frozenset({OPERATOR, ADMIN}), 200),
    ("GET", "/health/ready"): Rule(EVERY_CALLER, 200, probe=True),
    ("GET", "/health/live"): Rule(EVERY_CALLER, 200, public=True),
}

# Served by FastAPI itself, not part of the API.
NOT_API = {"/docs", "/docs/assets", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}


def flat_routes(app: FastAPI) -> list[Any]:
    """Every route, with included routers flattened (newer FastAPI keeps them nested)."""
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_route_contexts is None:
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for route in flat_routes(app):
        path = getattr(route, "path", None) or repr(route)
        if path in NOT_API:
            continue
        # A mount or websocket route has no methods: list it so the matrix must account for it.
        methods = getattr(route, "methods", None) or {"*"}
        routes.update((method, path) for method in methods)
    return routes


def concrete_path(template: str) -> str:
    return template.format(
        source=OWN_SOURCE,
        person_id=uuid.uuid4(),
        client_id=uuid.uuid4(),
        import_id=uuid.uuid4(),
        decision_id=uuid.uuid4(),
        subscription_id=uuid.uuid4(),
        record_id=987654321,
        version="no-such-model",
        run_id=uuid.uuid4(),
    )


def key_for(caller: str, make_key: KeyMaker) -> str:
    return {
        SOURCE_OWN: lambda: make_key(Role.SOURCE, source=OWN_SOURCE),
        SOURCE_OTHER: lambda: make_key(Role.SOURCE, source=OTHER_SOURCE),
        CENTRAL: lambda: make_key(Role.CENTRAL),
        OPERATOR: lambda: make_key(Role.OPERATOR),
        ADMIN: lambda: make_key(Role.ADMIN),
    }[caller]()


def unauthenticated_headers(kind: str, make_key: KeyMaker, db: Database) -> dict[str, str]:
    if kind == NO_CREDENTIAL:
        return {}
    if kind == UNKNOWN_KEY:
        real = make_key(Role.ADMIN)
        # Same shape as a real key, one character changed.
        return bearer(real[:-1] + ("A" if real[-1] != "A" else "B"))
    if kind == FOREIGN_KEY:
        return bearer("not-a-gateway-key")
    if kind == REVOKED_KEY:
        key = make_key(Role.ADMIN)
        principal = db.read(lambda session: clients.authenticate(session, key))
        assert principal is not None
        db.write(
            lambda session: clients.revoke(
                session, principal.client_id, now=utcnow(), allow_lockout=True
            )
        )
        return bearer(key)
    if kind == WRONG_SCHEME:
        return {"Authorization": f"Basic {make_key(Role.ADMIN)}"}
    if kind == EMPTY_BEARER:
        return {"Authorization": "Bearer "}
    raise AssertionError(kind)


async def call(
    client: httpx.AsyncClient, method: str, template: str, headers: dict[str, str]
) -> httpx.Response:
    rule = MATRIX[(method, template)]
    return await client.request(method, concrete_path(template), headers=headers, **rule.build())


def test_the_matrix_covers_every_route(app: FastAPI) -> None:
    assert api_routes(app) == set(MATRIX)


def test_every_rule_is_well_formed() -> None:
    for rule in MATRIX.values():
        assert rule.allowed <= EVERY_CALLER
        # Admin may do everything.
        assert ADMIN in rule.allowed
        assert rule.ok_status not in (401, 403)


ROUTES = sorted(MATRIX)


def _route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


@pytest.mark.anyio
@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
@pytest.mark.parametrize("caller", CALLERS)
async def test_each_role_is_allowed_or_forbidden_per_the_matrix(
    client: httpx.AsyncClient, make_key: KeyMaker, route: tuple[str, str], caller: str
) -> None:
    method, template = route
    rule = MATRIX[route]
    response = await call(client, method, template, bearer(key_for(caller, make_key)))
    if caller in rule.allowed:
        assert response.status_code == rule.ok_status, response.text
    else:
        body = assert_problem(response, 403)
        assert body["type"].endswith("/forbidden")


@pytest.mark.anyio
@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
@pytest.mark.parametrize("kind", UNAUTHENTICATED)
async def test_no_valid_credential_gets_401_except_on_liveness(
    client: httpx.AsyncClient,
    make_key: KeyMaker,
    db: Database,
    route: tuple[str, str],
    kind: str,
) -> None:
    method, template = route
    response = await call(client, method, template, unauthenticated_headers(kind, make_key, db))
    if MATRIX[route].public or (MATRIX[route].probe and kind == NO_CREDENTIAL):
        assert response.status_code == MATRIX[route].ok_status
        return
    body = assert_problem(response, 401)
    assert body["type"].endswith("/unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.anyio
async def test_authentication_comes_before_validation(client: httpx.AsyncClient) -> None:
    """An unauthenticated caller learns nothing from how its request would have been judged."""
    responses = [
        await client.post(
            "/v1/sources/crc-north/records",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        ),
        await client.post("/v1/sources/crc-north/records", content=b"x", headers={}),
        await client.post("/v1/clients", json={"role": "nonsense"}),
        await client.get("/v1/changes", params={"limit": 0, "after": "garbage"}),
        await client.get("/v1/persons", params={"crn": "not-a-crn"}),
        await client.get("/v1/persons/not-a-uuid"),
        await client.delete("/v1/clients/not-a-uuid"),
        await client.get("/v1/sources/NOT A SOURCE/status"),
    ]
    for response in responses:
        assert_problem(response, 401)


@pytest.mark.anyio
async def test_a_source_client_acts_only_for_its_own_source(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    north = bearer(make_key(Role.SOURCE, source="crc-north"))
    batch = {"records": [make_case_record()]}

    foreign_write = await client.post("/v1/sources/crc-south/records", json=batch, headers=north)
    foreign_read = await client.get("/v1/sources/crc-south/status", headers=north)
    assert_problem(foreign_write, 403)
    assert_problem(foreign_read, 403)

    own_write = await client.post("/v1/sources/crc-north/records", json=batch, headers=north)
    own_read = await client.get("/v1/sources/crc-north/status", headers=north)
    assert own_write.status_code == 200, own_write.text
    assert own_write.json()["summary"]["created"] == 1
    assert own_read.status_code == 200
    assert own_read.json()["source"] == "crc-north"
    assert own_read.json()["created"] == 1

    # The refused write stored nothing for crc-south.
    south = await client.get(
        "/v1/sources/crc-south/status", headers=bearer(make_key(Role.OPERATOR))
    )
    assert south.json()["received"] == 0


@pytest.mark.anyio
async def test_a_record_declaring_another_source_is_rejected(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    """The body cannot smuggle a write for another source past the URL check."""
    north = bearer(make_key(Role.SOURCE, source="crc-north"))
    record = make_case_record(provenance={"source": "crc-south"})
    response = await client.post(
        "/v1/sources/crc-north/records", json={"records": [record]}, headers=north
    )
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["outcome"] == "rejected"
    assert [error["path"] for error in result["errors"]] == ["provenance.source"]


@pytest.mark.anyio
async def test_a_revoked_key_stops_working_at_once(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    admin = bearer(make_key(Role.ADMIN))
    created = await client.post(
        "/v1/clients", json={"name": "short-lived", "role": "central"}, headers=admin
    )
    assert created.status_code == 201
    central = bearer(created.json()["key"])
    assert (await client.get("/v1/changes", headers=central)).status_code == 200

    revoked = await client.delete(f"/v1/clients/{created.json()['id']}", headers=admin)
    assert revoked.status_code == 204

    assert_problem(await client.get("/v1/changes", headers=central), 401)
    # Revoking twice: the client is no longer active.
    again = await client.delete(f"/v1/clients/{created.json()['id']}", headers=admin)
    assert_problem(again, 404)
