"""GET /metrics: operator-only, Prometheus text, lag and backlog read from the database at scrape
time, per-source counters, this process's webhook counters, and no personal data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from gateway.api import metrics as metrics_api
from gateway.api.metrics import status_families
from gateway.db import Database
from gateway.models import Change, Delivery, DeliveryStatus, utcnow
from gateway.services import webhooks
from gateway.services.clients import Role
from gateway.services.delivery import DeliveryWorker
from gateway.services.golden import DEFAULT_POLICY
from gateway.services.status import (
    FeedStatus,
    GatewayStatus,
    IdentityStatus,
    PollingStatus,
    SourceStatus,
)
from gateway.settings import WebhookSettings
from tests.api.conftest import assert_problem
from tests.builders import make_case_record
from tests.conftest import KeyMaker, bearer

HOOKS = WebhookSettings(allowed_hosts=["central.test"])

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def subscribe(db: Database, name: str = "central") -> webhooks.CreatedSubscription:
    return db.write(
        lambda session: webhooks.create_subscription(
            session,
            name=name,
            url="https://central.test/hook",
            event_types=[],
            sources=[],
            secret=None,
            client_id=None,
            settings=HOOKS,
            principal=None,
            now=utcnow(),
        )
    )


async def push(client: httpx.AsyncClient, key: str, *records: dict[str, Any]) -> None:
    response = await client.post(
        "/v1/sources/crc-north/records", json={"records": list(records)}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text


async def scrape(client: httpx.AsyncClient, key: str) -> str:
    response = await client.get("/metrics", headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    return response.text


def sample_map(families: Iterable[Metric]) -> Samples:
    """Every sample, keyed by sample name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }


def samples(text: str) -> Samples:
    return sample_map(text_string_to_metric_families(text))


def value(found: Samples, metric: str, /, **labels: str) -> float:
    return found[(metric, frozenset(labels.items()))]


def pending_count(db: Database) -> int:
    return db.read(
        lambda session: (
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status == DeliveryStatus.PENDING.value)
            )
            or 0
        )
    )


@pytest.mark.anyio
async def test_lag_backlog_and_source_counters_come_from_the_database(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    created = subscribe(db)
    subscription = {"subscription": str(created.subscription.id), "name": "central"}
    north = make_key(Role.SOURCE, source="crc-north")
    records = [make_case_record(), make_case_record()]
    await push(client, north, *records)
    await push(client, north, records[0])  # the same record again: unchanged
    await push(client, north, make_case_record(person={"sex": "SOMETIMES"}))  # rejected
    operator = make_key(Role.OPERATOR)

    # Nothing has waited yet: the lag is close to nothing.
    fresh = samples(await scrape(client, operator))
    assert 0 <= value(fresh, "crc_gateway_subscription_lag_seconds", **subscription) < 60

    ten_minutes_ago = utcnow() - timedelta(minutes=10)
    db.write(
        lambda session: session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.PENDING.value)
            .values(created_at=ten_minutes_ago)
        )
    )
    text = await scrape(client, operator)
    found = samples(text)

    pending = pending_count(db)
    assert 600 <= value(found, "crc_gateway_subscription_lag_seconds", **subscription) < 700
    assert value(found, "crc_gateway_subscription_backlog", **subscription) == pending
    assert value(found, "crc_gateway_subscription_due", **subscription) == pending
    assert value(found, "crc_gateway_subscription_dead_letters", **subscription) == 0
    assert value(found, "crc_gateway_subscription_active", **subscription) == 1
    # Never delivered: no timestamp sample at all, rather than a 1970 one.
    assert not any(
        name == "crc_gateway_subscription_last_success_timestamp_seconds" for name, _ in found
    )

    counts = {
        outcome: value(
            found, "crc_gateway_source_records_total", source="crc-north", outcome=outcome
        )
        for outcome in ("received", "created", "updated", "unchanged", "rejected")
    }
    assert counts == {"received": 4, "created": 2, "updated": 0, "unchanged": 1, "rejected": 1}
    received_at = value(
        found, "crc_gateway_source_last_received_timestamp_seconds", source="crc-north"
    )
    assert abs(received_at - utcnow().timestamp()) < 300

    changes = db.read(lambda session: session.scalar(select(func.count()).select_from(Change)))
    # A new person with a case is two changes; one to each subscriber, so all still owed.
    assert changes == pending == 4
    assert value(found, "crc_gateway_feed_changes") == changes
    assert value(found, "crc_gateway_feed_head_sequence") >= changes
    assert value(found, "crc_gateway_review_pending") == 0
    assert value(found, "crc_gateway_review_oldest_pending_age_seconds") == 0

    # Special-category data never leaves through the metrics.
    for record in records:
        person = record["person"]
        for secret in (
            person["surname"],
            *person["forenames"],
            person["date_of_birth"],
            *person["identifiers"].values(),
            record["provenance"]["external_id"],
        ):
            assert secret not in text


@pytest.mark.anyio
async def test_a_delivered_backlog_clears_the_lag_and_counts_the_attempts(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    created = subscribe(db)
    subscription = {"subscription": str(created.subscription.id), "name": "central"}
    await push(client, make_key(Role.SOURCE, source="crc-north"), make_case_record())
    operator = make_key(Role.OPERATOR)
    owed = pending_count(db)
    assert owed > 0
    before = samples(await scrape(client, operator))
    assert value(before, "crc_gateway_subscription_backlog", **subscription) == owed

    worker = DeliveryWorker(
        db,
        HOOKS,
        policy=DEFAULT_POLICY,
        transport=httpx.MockTransport(lambda _request: httpx.Response(204)),
    )
    delivered = 0
    try:
        # One change per person in flight at a time: a round per change of the person.
        for _ in range(owed):
            delivered += (await worker.run_once()).delivered
    finally:
        await worker.aclose()
    assert delivered == owed
    assert pending_count(db) == 0

    after = samples(await scrape(client, operator))
    assert value(after, "crc_gateway_subscription_backlog", **subscription) == 0
    assert value(after, "crc_gateway_subscription_lag_seconds", **subscription) == 0
    last_success = value(
        after, "crc_gateway_subscription_last_success_timestamp_seconds", **subscription
    )
    assert abs(last_success - utcnow().timestamp()) < 300

    # The process counters live in this app's registry and count this process's attempts.
    attempts = "crc_gateway_webhook_attempts_total"
    assert value(after, attempts, result="delivered") == (
        before.get((attempts, frozenset({("result", "delivered")})), 0) + owed
    )
    assert value(after, "crc_gateway_webhook_attempt_seconds_count") >= owed


@pytest.mark.anyio
async def test_an_empty_gateway_scrapes_cleanly(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    text = await scrape(client, make_key(Role.OPERATOR))
    families = {family.name for family in text_string_to_metric_families(text)}

    assert {
        "crc_gateway_subscription_lag_seconds",
        "crc_gateway_source_records",
        "crc_gateway_feed_head_sequence",
        "crc_gateway_webhook_attempts",
        "crc_gateway_webhook_attempt_seconds",
    } <= families
    found = samples(text)
    assert value(found, "crc_gateway_feed_head_sequence") == 0
    assert not any(name.startswith("crc_gateway_subscription_") for name, _ in found)
    assert not any(name == "crc_gateway_feed_last_change_timestamp_seconds" for name, _ in found)


@pytest.mark.anyio
async def test_metrics_need_an_operator_key(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    body = assert_problem(await client.get("/metrics"), 401)
    assert body["type"].endswith("/unauthenticated")

    source = bearer(make_key(Role.SOURCE, source="crc-north"))
    assert_problem(await client.get("/metrics", headers=source), 403)
    central = bearer(make_key(Role.CENTRAL))
    assert_problem(await client.get("/metrics", headers=central), 403)

    admin = await client.get("/metrics", headers=bearer(make_key(Role.ADMIN)))
    assert admin.status_code == 200


def test_a_polled_source_reports_its_polling_and_omits_what_never_happened() -> None:
    now = utcnow()
    polling = PollingStatus.of(None)
    failing = replace(
        polling,
        consecutive_failures=3,
        last_poll_at=now - timedelta(minutes=1),
        last_error_at=now - timedelta(minutes=1),
        records_polled=40,
    )
    status = GatewayStatus(
        sources=[SourceStatus.of("crc-west", None, failing)],
        feed=FeedStatus(head_cursor="", head_seq=0, changes=0, last_change_at=None),
        identity=IdentityStatus(review_pending=2, oldest_pending_at=now - timedelta(hours=1)),
        subscriptions=[],
    )
    found = sample_map(status_families(status, now=now))

    west = {"source": "crc-west"}
    assert value(found, "crc_gateway_source_poll_consecutive_failures", **west) == 3
    assert value(found, "crc_gateway_source_poll_paused", **west) == 0
    assert value(found, "crc_gateway_source_polled_records_total", **west) == 40
    assert value(found, "crc_gateway_source_last_poll_timestamp_seconds", **west) == (
        (now - timedelta(minutes=1)).timestamp()
    )
    # Never succeeded, never received: no sample, so `time() - x` alerts cannot misfire on 0.
    assert (
        "crc_gateway_source_last_poll_success_timestamp_seconds",
        frozenset(west.items()),
    ) not in found
    assert (
        "crc_gateway_source_last_received_timestamp_seconds",
        frozenset(west.items()),
    ) not in found
    assert value(found, "crc_gateway_review_pending") == 2
    assert value(found, "crc_gateway_review_oldest_pending_age_seconds") == 3600


@pytest.mark.anyio
async def test_an_unreachable_database_fails_the_scrape(
    client: httpx.AsyncClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 (Prometheus records up == 0), never gauges that look healthy."""
    operator = bearer(make_key(Role.OPERATOR))

    def unreachable(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError())

    monkeypatch.setattr(metrics_api, "gateway_status", unreachable)
    body = assert_problem(await client.get("/metrics", headers=operator), 503)
    assert "database" in body["detail"]


@pytest.mark.anyio
async def test_a_scraper_that_asks_for_openmetrics_gets_it(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    response = await client.get(
        "/metrics",
        headers={
            **bearer(make_key(Role.OPERATOR)),
            "Accept": "application/openmetrics-text; version=1.0.0",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
