"""/docs works on a network with no internet: every asset it loads comes from the gateway."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.api.docs import ASSETS_DIR
from gateway.db import Database
from gateway.main import create_app
from gateway.settings import Settings

pytestmark = pytest.mark.anyio

REFERENCE = re.compile(r"""(?:src|href)=["']([^"']+)["']|\burl:\s*["']([^"']+)["']""")
EXPECTED_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


async def test_the_docs_page_loads_nothing_from_outside_the_gateway(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+", page.text), page.text
    references = [a or b for a, b in REFERENCE.findall(page.text)]
    assert sorted(references) == [
        "/docs/assets/favicon-32x32.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/openapi.json",
    ]
    for reference in references:
        response = await client.get(reference)
        assert response.status_code == 200, reference
        suffix = reference[reference.rindex(".") :]
        content_type = response.headers["content-type"].split(";")[0]
        assert content_type in EXPECTED_TYPES[suffix], (reference, content_type)
        assert response.content


async def test_the_assets_are_swagger_ui_with_its_licence(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")

    assert bundle.content == (ASSETS_DIR / "swagger-ui-bundle.js").read_bytes()
    assert b"SwaggerUIBundle" in bundle.content
    assert "Apache License" in (ASSETS_DIR / "LICENSE").read_text()


async def test_behind_a_path_prefix_the_page_asks_for_prefixed_assets(app) -> None:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, root_path="/gateway")
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        page = await http.get("/gateway/docs")

    assert page.status_code == 200
    assert 'src="/gateway/docs/assets/swagger-ui-bundle.js"' in page.text
    assert "url: '/gateway/openapi.json'" in page.text


async def test_with_docs_disabled_neither_the_page_nor_its_assets_are_served(
    database_url: str, db: Database
) -> None:
    settings = Settings(database_url=database_url, log_format="text", docs_enabled=False)
    transport = httpx.ASGITransport(app=create_app(settings, db=db))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        for path in ("/docs", "/docs/assets/swagger-ui-bundle.js", "/openapi.json"):
            assert (await http.get(path)).status_code == 404, path
