"""The OpenAPI document: the canonical record batch the records endpoint reads itself, and the
problem documents every route can answer with."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from gateway.api.problems import PROBLEM_MEDIA_TYPE
from gateway.api.v1.shapes import NO_NUL_PATTERN
from schemas import CaseRecord

# What any route can answer besides success: the credential, the role, what is not there, a
# conflicting state, a body past the limits, input that fails validation, malformed input.
PROBLEM_RESPONSES: dict[str, str] = {
    "400": "The request cannot be read (a malformed body or cursor)",
    "401": "No valid credential",
    "403": "The credential's role or source does not allow this",
    "404": "Nothing with that id, or no such route",
    "409": "The resource is in a state that does not allow this",
    "413": "The body is larger than the limit",
    "422": "The request is not valid; `errors` names each field at fault",
}
# Routes open without a credential: no credential or role check can refuse them.
_OPEN_PATHS = ("/health/live",)


class ProblemFieldError(BaseModel):
    path: str = Field(description="Dotted path of the field at fault.")
    message: str
    type: str = Field(description="Machine-readable error type.")


class Problem(BaseModel):
    """An RFC 9457 problem document: what went wrong, never the input that caused it."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    instance: str = Field(description="The request path.")
    detail: str | None = None
    errors: list[ProblemFieldError] | None = Field(
        None, description="The fields at fault, for validation problems."
    )
    request_id: str | None = Field(None, description="Quote it when reporting a problem.")


class RecordBatch(BaseModel):
    """A batch of canonical case records pushed by a source."""

    model_config = ConfigDict(extra="forbid")

    records: list[CaseRecord] = Field(min_length=1)


def install(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            # The endpoint validates each record on its own (so one bad record does not sink
            # the batch); the batch schema is published here for clients all the same.
            _, definitions = models_json_schema(
                [(RecordBatch, "validation"), (Problem, "serialization")],
                ref_template="#/components/schemas/{model}",
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(definitions.get("$defs", {}))
            _declare_problems(document)
            _forbid_nul(components)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _declare_problems(document: dict[str, Any]) -> None:
    """Every error a route answers is a problem document, and the document says so."""
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = problem
            for status, description in PROBLEM_RESPONSES.items():
                if path in _OPEN_PATHS and status in ("401", "403"):
                    continue
                responses.setdefault(status, {"description": description, "content": problem})
    schemas = document.get("components", {}).get("schemas", {})
    # FastAPI's own validation error shapes: the problem document replaced them.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _forbid_nul(schemas: dict[str, Any]) -> None:
    """Say what every handler enforces: no text the gateway takes may hold a NUL character."""
    pending: list[Any] = [schemas]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(
                node
            ):
                node["pattern"] = NO_NUL_PATTERN
            pending.extend(node.values())
