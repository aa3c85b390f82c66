"""The OpenAPI document is the contract: schemathesis drives every operation in-process, with
schema-valid and schema-violating requests, and runs all of its checks on every answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from gateway.db import Database
from gateway.main import create_app
from gateway.services.clients import Role
from gateway.settings import FeedSettings, Settings
from tests.conftest import KeyMaker, bearer

DOCUMENT = json.loads((Path(__file__).parents[2] / "openapi" / "openapi.json").read_text())
OPERATIONS = [
    f"{method.upper()} {path}" for path, methods in DOCUMENT["paths"].items() for method in methods
]

# Deliberate deviations, each with its reason; every other check runs on every operation.
# Validity a schema cannot state, so a schema-valid request may still be refused (4xx):
VALID_YET_REFUSED = {
    # Opaque cursors: only one this API issued is accepted (400 / 422 otherwise).
    "GET /v1/changes": "a cursor the feed never issued is refused",
    "GET /v1/review": "a cursor the review queue never issued is refused",
    # Identifiers are checked against their check characters (a PNC's letter is a modulus).
    "GET /v1/persons": "an identifier with a wrong check character is refused",
    # Which content types a source takes depends on the adapter it is configured with (415).
    "POST /v1/sources/{source}/records": "a source takes only its adapter's content types",
    # Webhook hosts must be on the deployment's allow-list and resolve to public addresses.
    "POST /v1/subscriptions": "the webhook host must be on the allow-list",
    "PATCH /v1/subscriptions/{subscription_id}": "the webhook host must be on the allow-list",
    # A model must hold every comparison, each with exactly its levels.
    "POST /v1/matcher/models": "a model must hold every comparison with exactly its levels",
    # A person's fields are checked as the canonical schema's validators check them (UK
    # postcodes, identifier check characters), which its JSON Schema does not state.
    "POST /v1/match/explain": "postcodes and identifiers are checked beyond their schema",
    # A Standard Webhooks secret is base64 of at least 24 bytes after its prefix.
    "POST /v1/subscriptions/{subscription_id}/secret": "a secret must decode to 24+ bytes",
}
# Requests that break the schema yet are answered 2xx on purpose:
INVALID_YET_ANSWERED = {
    # Each record of a batch is validated on its own: bad ones are rejected in a 200 answer
    # with per-record outcomes, so one bad record never sinks the batch.
    "POST /v1/sources/{source}/records": "records are validated one by one",
    # Unknown query parameters are ignored, so clients can upgrade before servers do.
    "GET /v1/changes": "unknown query parameters are ignored",
    "GET /v1/persons": "unknown query parameters are ignored",
    "GET /v1/quarantine": "unknown query parameters are ignored",
    "GET /v1/sources/{source}/data-quality": "unknown query parameters are ignored",
    "GET /v1/review": "unknown query parameters are ignored",
    "GET /v1/sources/{source}/records": "unknown query parameters are ignored",
    "GET /v1/subscriptions/{subscription_id}/dead-letters": "unknown query parameters are ignored",
}


@pytest.fixture
def short_polls_app(database_url: str, db: Database) -> FastAPI:
    # Long polls answer after a tenth of a second, so a few hundred requests take seconds.
    settings_ = Settings(
        database_url=database_url,
        log_format="text",
        feed=FeedSettings(max_wait_seconds=0.1),
    )
    return create_app(settings_, db=db)


# Only an operation with parameters or a body can be sent a request that breaks its schema.
CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (f"{method.upper()} {path}", GenerationMode.NEGATIVE)
    for path, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
    if operation.get("parameters") or operation.get("requestBody")
]


@pytest.mark.slow
@pytest.mark.parametrize(("label", "mode"), CASES)
def test_every_operation_keeps_its_contract(
    short_polls_app: FastAPI, make_key: KeyMaker, label: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", short_polls_app)
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    headers = bearer(make_key(Role.ADMIN))
    excluded = []
    if label in VALID_YET_REFUSED:
        excluded.append(positive_data_acceptance)
    if label in INVALID_YET_ANSWERED:
        excluded.append(negative_data_rejection)

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,  # the same examples on every run: CI never flakes
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def called(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    called()


def test_the_deviations_name_real_operations() -> None:
    assert set(VALID_YET_REFUSED) | set(INVALID_YET_ANSWERED) <= set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_declares_its_problem_answers(label: str) -> None:
    method, path = label.split(" ", 1)
    responses = DOCUMENT["paths"][path][method.lower()]["responses"]
    expected = {"400", "401", "403", "404", "409", "413", "422"}
    if path == "/health/live":
        expected -= {"401", "403"}  # open to anyone: no credential or role can be refused

    assert expected <= set(responses)
    for status, response in responses.items():
        if status[0] in "45":
            schema = response["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}
