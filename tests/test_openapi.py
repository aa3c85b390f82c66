"""The committed OpenAPI document is the app's own, and documents what clients need."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.cli import render_openapi
from gateway.main import create_app
from gateway.settings import Settings


def test_the_committed_openapi_document_is_current(repo_root: Path, settings: Settings) -> None:
    committed = (repo_root / "openapi" / "openapi.json").read_text()

    assert committed == render_openapi(create_app(settings)), (
        "openapi/openapi.json is stale: run `make openapi`"
    )


def test_the_record_batch_schema_is_published(settings: Settings) -> None:
    document = create_app(settings).openapi()
    body = document["paths"]["/v1/sources/{source}/records"]["post"]["requestBody"]

    assert body["content"]["application/json"]["schema"]["$ref"] == (
        "#/components/schemas/RecordBatch"
    )
    components = document["components"]["schemas"]
    assert {"RecordBatch", "CaseRecord", "Person", "Identifiers"} <= set(components)
    # Every reference resolves inside the document.
    text = json.dumps(document)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in components, name
