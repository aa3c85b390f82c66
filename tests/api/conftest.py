"""Shared fixtures and checks for the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.db import Database
from gateway.main import create_app
from gateway.settings import LimitSettings, Settings
from tests.conftest import bearer

PROBLEM_FIELDS = ("type", "title", "status", "instance")

ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem document for `status`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    for field in PROBLEM_FIELDS:
        assert field in body, f"problem document lacks {field!r}: {body}"
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["instance"] == response.request.url.path
    return body


@pytest.fixture
async def lenient_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Like `client`, but an exception escaping the app is a response, not a test error."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http


@pytest.fixture
async def client_with_limits(database_url: str, db: Database) -> AsyncIterator[ClientFactory]:
    """A client for an app with other limits: `await client_with_limits(max_body_bytes=...)`."""
    async with AsyncExitStack() as stack:

        async def build(**limits: Any) -> httpx.AsyncClient:
            settings = Settings(
                database_url=database_url, log_format="text", limits=LimitSettings(**limits)
            )
            transport = httpx.ASGITransport(app=create_app(settings, db=db))
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://gateway.test")
            )

        yield build


async def push_records(
    client: httpx.AsyncClient, key: str, source: str, *records: Any
) -> list[Any]:
    """Push a JSON batch for a source; the per-record results (the push must answer 200)."""
    response = await client.post(
        f"/v1/sources/{source}/records", json={"records": list(records)}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    results: list[Any] = response.json()["results"]
    return results
