"""The application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from adapters import registry
from gateway import __version__
from gateway.api import openapi, problems
from gateway.api.health import router as health_router
from gateway.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from gateway.api.v1 import changes, clients, identity, persons, quarantine, records, status
from gateway.db import Database
from gateway.models import utcnow
from gateway.services import idempotency, polling
from gateway.services.identity import Matcher
from gateway.services.sources import SourceRegistry
from gateway.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """
crc-gateway takes probation case records from the CRC case systems, keeps one canonical,
deduplicated record per person, and feeds every change to the central case system.

Every route but `/health/live` needs `Authorization: Bearer <API key>`. Errors are RFC 9457
problem documents (`application/problem+json`).
"""


async def purge_idempotency_keys(database: Database, interval: float) -> None:
    """Delete expired Idempotency-Key records now and then; safe on any number of replicas."""
    while True:
        try:
            purged = await run_in_threadpool(
                lambda: database.write(
                    lambda session: idempotency.purge_expired(session, now=utcnow())
                )
            )
            if purged:
                log.info("expired idempotency keys purged", extra={"purged": purged})
        except SQLAlchemyError:
            log.warning("idempotency key purge failed; will retry", exc_info=True)
        await asyncio.sleep(interval)


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    owns_db = db is None
    database = db or Database.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        purger = asyncio.create_task(
            purge_idempotency_keys(database, settings.idempotency.purge_interval_seconds)
        )
        try:
            async with polling.background_polling(
                database, _app.state.sources.polled(), matcher=_app.state.matcher
            ) as poller:
                _app.state.poller = poller
                yield
        finally:
            purger.cancel()
            with suppress(asyncio.CancelledError):
                await purger
            if owns_db:
                database.dispose()

    app = FastAPI(
        title="crc-gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.sources = SourceRegistry(registry.discover(), settings)
    # A broken model file or survivorship setting stops start-up, naming the problem.
    app.state.matcher = Matcher.from_settings(settings)
    problems.install(app)
    openapi.install(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.limits.max_body_bytes,
        max_upload_bytes=settings.limits.max_upload_bytes,
    )
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    for module in (records, changes, persons, identity, status, clients, quarantine):
        app.include_router(module.router)
    return app
