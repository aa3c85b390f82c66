"""GET /metrics: this process's counters and, read at scrape time, how far behind everything is."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import require
from gateway.db import Database
from gateway.errors import ServiceUnavailable
from gateway.metrics import PROCESS_METRICS
from gateway.models import utcnow
from gateway.services.clients import Principal, Role
from gateway.services.sources import SourceRegistry
from gateway.services.status import GatewayStatus, gateway_status

router = APIRouter(tags=["metrics"])

PREFIX = "crc_gateway_"
SUBSCRIPTION_LABELS = ("subscription", "name")
SOURCE_OUTCOMES = ("received", "created", "updated", "unchanged", "rejected")


def _gauge(name: str, documentation: str, labels: Collection[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=list(labels))


def _timestamp(family: GaugeMetricFamily, labels: list[str], value: datetime | None) -> None:
    # No sample rather than 0: "never" is not 1970, and `time() - x` alerts must not fire on it.
    if value is not None:
        family.add_metric(labels, value.timestamp())


def status_families(status: GatewayStatus | None, *, now: datetime) -> list[Metric]:
    """The database-backed families; with no status, the families alone (for describe)."""
    backlog = _gauge(
        "subscription_backlog",
        "Changes owed to the subscriber and not yet delivered (dead letters not included).",
        SUBSCRIPTION_LABELS,
    )
    due = _gauge(
        "subscription_due",
        "Undelivered changes whose next delivery attempt is due now.",
        SUBSCRIPTION_LABELS,
    )
    dead_letters = _gauge(
        "subscription_dead_letters",
        "Changes that exhausted the retry policy and wait for an operator's replay.",
        SUBSCRIPTION_LABELS,
    )
    lag = _gauge(
        "subscription_lag_seconds",
        "Age of the oldest change the subscriber is still owed; 0 when it is owed nothing.",
        SUBSCRIPTION_LABELS,
    )
    active = _gauge(
        "subscription_active",
        "1 while the subscription is delivered to, 0 once disabled.",
        SUBSCRIPTION_LABELS,
    )
    last_success = _gauge(
        "subscription_last_success_timestamp_seconds",
        "When a delivery to the subscriber last succeeded (absent if never).",
        SUBSCRIPTION_LABELS,
    )
    last_failure = _gauge(
        "subscription_last_failure_timestamp_seconds",
        "When a delivery to the subscriber last failed (absent if never).",
        SUBSCRIPTION_LABELS,
    )
    head = _gauge("feed_head_sequence", "Sequence number of the newest change in the feed.")
    changes = _gauge(
        "feed_changes", "Changes held in the feed (older ones are purged after retention)."
    )
    last_change = _gauge(
        "feed_last_change_timestamp_seconds",
        "When the newest change in the feed happened (absent if the feed is empty).",
    )
    records = CounterMetricFamily(
        PREFIX + "source_records",
        "Records received from the source: outcome=received counts all of them, the others "
        "split them into created, updated, unchanged and rejected.",
        labels=["source", "outcome"],
    )
    last_received = _gauge(
        "source_last_received_timestamp_seconds",
        "When the source last sent a record (absent if never).",
        ["source"],
    )
    poll_paused = _gauge(
        "source_poll_paused",
        "1 while a polled source is paused by a fatal error until an operator resumes it.",
        ["source"],
    )
    poll_failures = _gauge(
        "source_poll_consecutive_failures",
        "Polls of the source that have failed in a row since its last success.",
        ["source"],
    )
    polled_records = CounterMetricFamily(
        PREFIX + "source_polled_records",
        "Records fetched by polling the source, pages read again included.",
        labels=["source"],
    )
    last_poll = _gauge(
        "source_last_poll_timestamp_seconds",
        "When a poll of the source last started (absent if never).",
        ["source"],
    )
    last_poll_success = _gauge(
        "source_last_poll_success_timestamp_seconds",
        "When a poll of the source last stored a page (absent if never).",
        ["source"],
    )
    last_poll_error = _gauge(
        "source_last_poll_error_timestamp_seconds",
        "When a poll of the source last failed (absent if never).",
        ["source"],
    )
    review_pending = _gauge(
        "review_pending", "Possible matches waiting for a person to decide them."
    )
    review_age = _gauge(
        "review_oldest_pending_age_seconds",
        "How long the oldest possible match has waited for review; 0 when none waits.",
    )

    if status is not None:
        for subscription in status.subscriptions:
            labels = [str(subscription.subscription_id), subscription.name]
            backlog.add_metric(labels, subscription.backlog)
            due.add_metric(labels, subscription.due)
            dead_letters.add_metric(labels, subscription.dead_letters)
            lag.add_metric(labels, subscription.lag_seconds)
            active.add_metric(labels, 1 if subscription.active else 0)
            _timestamp(last_success, labels, subscription.last_success_at)
            _timestamp(last_failure, labels, subscription.last_failure_at)
        head.add_metric([], status.feed.head_seq)
        changes.add_metric([], status.feed.changes)
        _timestamp(last_change, [], status.feed.last_change_at)
        for source in status.sources:
            for outcome in SOURCE_OUTCOMES:
                records.add_metric([source.source, outcome], getattr(source, outcome))
            _timestamp(last_received, [source.source], source.last_received_at)
            polling = source.polling
            if polling is None:
                continue
            poll_paused.add_metric([source.source], 1 if polling.paused else 0)
            poll_failures.add_metric([source.source], polling.consecutive_failures)
            polled_records.add_metric([source.source], polling.records_polled)
            _timestamp(last_poll, [source.source], polling.last_poll_at)
            _timestamp(last_poll_success, [source.source], polling.last_success_at)
            _timestamp(last_poll_error, [source.source], polling.last_error_at)
        review_pending.add_metric([], status.identity.review_pending)
        oldest = status.identity.oldest_pending_at
        review_age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)

    return [
        backlog,
        due,
        dead_letters,
        lag,
        active,
        last_success,
        last_failure,
        head,
        changes,
        last_change,
        records,
        last_received,
        poll_paused,
        poll_failures,
        polled_records,
        last_poll,
        last_poll_success,
        last_poll_error,
        review_pending,
        review_age,
    ]


class StatusCollector:
    """Reads the gateway's status from the database on every collect (so in a worker thread)."""

    def __init__(self, db: Database, polled: Callable[[], Collection[str]]) -> None:
        self._db = db
        self._polled = polled

    def describe(self) -> list[Metric]:
        return status_families(None, now=utcnow())

    def collect(self) -> list[Metric]:
        now = utcnow()
        polled = self._polled()
        try:
            status = self._db.read(lambda session: gateway_status(session, polled=polled, now=now))
        except SQLAlchemyError:
            # A failed scrape (Prometheus records up == 0), not gauges that look healthy.
            raise ServiceUnavailable("the database is not reachable") from None
        return status_families(status, now=now)


def build_registry(db: Database, sources: SourceRegistry) -> CollectorRegistry:
    """One app's registry: this process's counters and the database-backed families."""
    registry = CollectorRegistry()
    for metric in PROCESS_METRICS:
        registry.register(metric)
    registry.register(
        StatusCollector(db, lambda: frozenset(source.name for source in sources.polled()))
    )
    return registry


def _registry(app: FastAPI) -> CollectorRegistry:
    # Built on the event loop with no await in between, so two first scrapes cannot race.
    registry: CollectorRegistry | None = getattr(app.state, "metrics_registry", None)
    if registry is None:
        registry = build_registry(app.state.db, app.state.sources)
        app.state.metrics_registry = registry
    return registry


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    description=(
        "Prometheus text exposition: per subscriber backlog, lag and dead letters; per source "
        "records by outcome and polling health; the feed head and the review queue; and this "
        "process's webhook delivery counters. Scrape with an operator key as "
        "`Authorization: Bearer <key>`. Names, dates of birth and identifiers never appear."
    ),
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {"schema": {"type": "string"}}}}},
)
async def metrics(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
) -> Response:
    registry = _registry(request.app)
    # The text format Prometheus asks for (OpenMetrics or the classic 0.0.4 text).
    encode, media_type = choose_encoder(request.headers.get("accept", ""))
    # Collecting reads the database: keep it off the event loop.
    body = await run_in_threadpool(encode, registry)
    return Response(content=body, headers={"content-type": media_type})
