"""The OpenAPI document, with the canonical record batch the records endpoint reads itself."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from schemas import CaseRecord


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
                [(RecordBatch, "validation")], ref_template="#/components/schemas/{model}"
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(definitions.get("$defs", {}))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
