"""The application factory."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from adapters import registry
from gateway import __version__
from gateway.api import docs, openapi, problems
from gateway.api.health import router as health_router
from gateway.api.metrics import router as metrics_router
from gateway.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from gateway.api.v1 import (
    changes,
    clients,
    data_quality,
    identity,
    matcher,
    persons,
    quarantine,
    records,
    status,
    subscriptions,
)
from gateway.db import Database
from gateway.models import utcnow
from gateway.services import idempotency, polling, reruns, retention
from gateway.services.clients import bootstrap_admin, read_bootstrap_key
from gateway.services.delivery import DeliveryWorker
from gateway.services.feed_signal import FeedSignal
from gateway.services.identity import Matcher
from gateway.services.sources import SourceRegistry
from gateway.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """
crc-gateway takes probation case records from the CRC case systems, keeps one canonical,
deduplicated record per person, and feeds every change to the central case system.

Every route but the health probes (`/health/live`, `/health/ready`) needs
`Authorization: Bearer <API key>`. Errors are RFC 9457 problem documents
(`application/problem+json`).
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


async def purge_past_retention(database: Database, settings: Settings) -> None:
    """Delete delivered outbox rows, and changes past the feed's retention, now and then."""
    while True:
        try:
            purged = await run_in_threadpool(
                lambda: database.write(
                    lambda session: retention.purge(session, settings=settings, now=utcnow())
                )
            )
            if purged.changes or purged.deliveries:
                log.info(
                    "purged past retention",
                    extra={"changes": purged.changes, "deliveries": purged.deliveries},
                )
        except SQLAlchemyError:
            log.warning("retention purge failed; will retry", exc_info=True)
        await asyncio.sleep(settings.feed.purge_interval_seconds)


async def run_matcher_reruns(database: Database, identities: Matcher, interval: float) -> None:
    """Carry out matcher re-runs an admin queued, one at a time, in a worker thread; on shutdown
    the run in hand is queued again between two of its transactions."""
    stopping = threading.Event()
    try:
        while True:
            try:
                # Looked for with a read, so an idle server takes no write lock every few seconds.
                waiting = await run_in_threadpool(lambda: database.read(reruns.any_waiting))
                claim = (
                    await run_in_threadpool(
                        lambda: database.write(lambda s: reruns.claim_next(s, now=utcnow()))
                    )
                    if waiting
                    else None
                )
                if claim is not None:
                    log.info("matcher run started", extra={"run_id": str(claim.run_id)})
                    run = await run_in_threadpool(
                        reruns.execute, database, identities, claim, should_stop=stopping.is_set
                    )
                    log.info(
                        "matcher run ended",
                        extra={
                            "run_id": str(claim.run_id),
                            "status": run.status if run is not None else "taken over",
                        },
                    )
                    continue
            except SQLAlchemyError:
                log.warning("matcher run check failed; will retry", exc_info=True)
            except Exception:  # the run is marked failed and logged; the server keeps serving
                log.warning("matcher run failed", exc_info=True)
            await asyncio.sleep(interval)
    finally:
        stopping.set()


def create_bootstrap_admin(database: Database, key: str) -> None:
    """The deployer's first admin, unless an active admin exists; the key is never logged."""

    def create() -> None:
        client = database.write(lambda session: bootstrap_admin(session, key=key, now=utcnow()))
        if client is not None:
            log.info("admin client created from the bootstrap key file")

    try:
        create()
    except IntegrityError:
        # Another replica starting at the same moment created it first: that admin stands.
        create()


@asynccontextmanager
async def background_tasks(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run coroutines as tasks for the duration of the block; cancel them after it."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Read and checked now, so a bad key file stops start-up before the port is bound.
    bootstrap_key = (
        read_bootstrap_key(settings.bootstrap_admin_key_file)
        if settings.bootstrap_admin_key_file is not None
        else None
    )
    owns_db = db is None
    database = db or Database.from_settings(settings)

    signal = FeedSignal()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if bootstrap_key is not None:
            await run_in_threadpool(create_bootstrap_admin, database, bootstrap_key)
        signal.bind(asyncio.get_running_loop())
        database.add_commit_listener(signal.notify_threadsafe)
        # The worker stops when the server starts shutting down, not once requests have drained.
        stop = signal.closing
        worker = (
            DeliveryWorker(
                database, settings.webhooks, policy=_app.state.matcher.policy, signal=signal
            )
            if settings.webhooks.worker_enabled
            else None
        )
        tasks = [
            purge_idempotency_keys(database, settings.idempotency.purge_interval_seconds),
            purge_past_retention(database, settings),
            signal.watch(database, settings.feed.head_check_seconds),
        ]
        if settings.matching.reruns_enabled:
            tasks.append(
                run_matcher_reruns(
                    database, _app.state.matcher, settings.matching.rerun_check_seconds
                )
            )
        delivering = asyncio.create_task(worker.run(stop)) if worker is not None else None
        try:
            async with (
                background_tasks(*tasks),
                polling.background_polling(
                    database, _app.state.sources.polled(), matcher=_app.state.matcher
                ) as poller,
            ):
                _app.state.poller = poller
                yield
        finally:
            signal.close()
            if delivering is not None and worker is not None:
                # Deliveries in flight get a short grace to be recorded; a cut-off one is re-sent.
                with suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(delivering, settings.server.graceful_shutdown_seconds)
                await worker.aclose()
            database.remove_commit_listener(signal.notify_threadsafe)
            if owns_db:
                database.dispose()

    app = FastAPI(
        title="crc-gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by gateway.api.docs with local assets rather than FastAPI's CDN links.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.feed_signal = signal
    app.state.sources = SourceRegistry(registry.discover(), settings)
    # A broken model file or survivorship setting stops start-up, naming the problem.
    app.state.matcher = Matcher.from_settings(settings)
    problems.install(app)
    openapi.install(app)
    if settings.docs_enabled:
        docs.install(app, openapi_url="/openapi.json")
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.limits.max_body_bytes,
        max_upload_bytes=settings.limits.max_upload_bytes,
    )
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    app.include_router(metrics_router)
    for module in (
        records,
        changes,
        persons,
        identity,
        matcher,
        status,
        clients,
        quarantine,
        data_quality,
        subscriptions,
    ):
        app.include_router(module.router)
    return app
