"""Webhooks for real: the delivery worker in this process, a real HTTP receiver, a real database.

The receiver goes down, fails, hangs and recovers; afterwards every change must have arrived,
each applied once, each person's in order, none dead-lettered.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from sqlalchemy import select

from adapters.base import AdapterConfig
from adapters.canonical import CanonicalAdapter
from gateway.db import Database
from gateway.models import Delivery, DeliveryStatus, Subscription, utcnow
from gateway.services import ingest, webhooks
from gateway.services.delivery import DeliveryWorker
from gateway.services.golden import SurvivorshipPolicy
from gateway.settings import WebhookSettings
from tests.builders import SURNAMES, as_raw_records, make_case_record
from tests.e2e.webhook_receiver import (
    GONE,
    OK,
    Reply,
    WebhookReceiver,
    failing_person,
    slow,
    status,
)

pytestmark = pytest.mark.slow

ADAPTER = CanonicalAdapter(AdapterConfig())
# Long enough in attempts that no fault below can exhaust it: a dead letter is a failure here.
SCHEDULE = [0.2] * 30
TIMEOUT_SECONDS = 0.5
# Safety net for every wait; the tests finish far sooner when the gateway behaves.
DEADLINE_SECONDS = 20.0


def webhook_settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "allowed_hosts": ["127.0.0.1"],
        "require_https": False,
        "retry_schedule_seconds": SCHEDULE,
        "jitter": 0,
        "timeout_seconds": TIMEOUT_SECONDS,
        "lease_seconds": 30,
        "idle_seconds": 0.05,
        **overrides,
    }
    return WebhookSettings(**values)


def subscribe(db: Database, receiver: WebhookReceiver, secret: str) -> uuid.UUID:
    created = db.write(
        lambda s: webhooks.create_subscription(
            s,
            name="central case system",
            url=receiver.url,
            event_types=[],
            sources=[],
            secret=secret,
            client_id=None,
            settings=webhook_settings(),
            principal=None,
            now=utcnow(),
        )
    )
    return created.subscription.id


def push(db: Database, records: Sequence[dict[str, Any]]) -> list[str]:
    """Ingest records as crc-north; returns each record's person id."""
    result = db.write(
        lambda s: ingest.ingest_batch(
            s,
            source="crc-north",
            adapter=ADAPTER,
            raw_records=as_raw_records([copy.deepcopy(r) for r in records]),
            principal=None,
            received_at=utcnow(),
        )
    )
    return [str(item.person_id) for item in result.results]


def renamed(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same records with a new surname each: one person.updated per person when pushed."""
    changed = []
    for record in records:
        record = copy.deepcopy(record)
        person = record["person"]
        person["surname"] = next(s for s in SURNAMES if s != person["surname"])
        changed.append(record)
    return changed


def deliveries(db: Database, subscription_id: uuid.UUID) -> list[Delivery]:
    return list(
        db.read(
            lambda s: s.scalars(
                select(Delivery)
                .where(Delivery.subscription_id == subscription_id)
                .order_by(Delivery.seq)
            ).all()
        )
    )


def owed(db: Database, subscription_id: uuid.UUID) -> dict[str, list[int]]:
    """Per person, the seqs of every change queued for the subscriber, in order."""
    per_person: dict[str, list[int]] = {}
    for row in deliveries(db, subscription_id):
        per_person.setdefault(str(row.person_id), []).append(row.seq)
    return per_person


def subscription(db: Database, subscription_id: uuid.UUID) -> Subscription:
    found = db.read(lambda s: s.get(Subscription, subscription_id))
    assert found is not None
    return found


def assert_all_delivered_in_order(
    db: Database, subscription_id: uuid.UUID, receiver: WebhookReceiver
) -> dict[str, Any]:
    """Every queued change applied once, each person's in increasing seq, nothing left over."""
    expected = owed(db, subscription_id)
    score = receiver.snapshot()
    assert score["bad_signatures"] == 0
    assert score["order"] == expected
    for seqs in score["order"].values():
        assert seqs == sorted(set(seqs))
    statuses = {row.status for row in deliveries(db, subscription_id)}
    assert statuses == {DeliveryStatus.DELIVERED.value}
    return score


async def eventually(condition: Callable[[], bool], *, what: str) -> None:
    """Wait for `condition` (polled off the event loop), failing after the safety deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await anyio.to_thread.run_sync(condition):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        await asyncio.sleep(0.05)


def all_applied(db: Database, subscription_id: uuid.UUID, receiver: WebhookReceiver) -> bool:
    expected = sum(len(seqs) for seqs in owed(db, subscription_id).values())
    return receiver.applied_count() >= expected


def failed_with(
    db: Database, subscription_id: uuid.UUID, error: str, *, attempts_over: int
) -> Callable[[], bool]:
    """Some pending delivery's last try failed with `error`, after more than `attempts_over`."""

    def check() -> bool:
        return any(
            row.status == DeliveryStatus.PENDING.value
            and row.last_error is not None
            and error in row.last_error
            and row.attempts > attempts_over
            for row in deliveries(db, subscription_id)
        )

    return check


def most_attempts(db: Database, subscription_id: uuid.UUID) -> int:
    return max((row.attempts for row in deliveries(db, subscription_id)), default=0)


@asynccontextmanager
async def delivering(db: Database, settings: WebhookSettings) -> AsyncIterator[DeliveryWorker]:
    """The delivery worker looping in this event loop until the block ends."""
    worker = DeliveryWorker(db, settings, policy=SurvivorshipPolicy())
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            await worker.aclose()


@pytest.mark.anyio
async def test_every_event_arrives_once_and_in_order_through_outage_errors_and_timeouts(
    db: Database,
) -> None:
    secret = webhooks.generate_secret()
    receiver = WebhookReceiver(secret)  # not started: the receiver is down
    subscription_id = subscribe(db, receiver, secret)
    records = [make_case_record() for _ in range(5)]
    await anyio.to_thread.run_sync(push, db, records)

    try:
        async with delivering(db, webhook_settings()):
            # Down: nothing listens on the port.
            await eventually(
                failed_with(db, subscription_id, "ConnectError", attempts_over=1),
                what="connection refused while the receiver is down",
            )
            records = renamed(records)
            await anyio.to_thread.run_sync(push, db, records)

            # Up, but failing every request.
            receiver.behave(status(500))
            receiver.start()
            tried = most_attempts(db, subscription_id)
            await eventually(
                failed_with(db, subscription_id, "answered 500", attempts_over=tried + 1),
                what="500s from the receiver",
            )
            records = renamed(records)
            await anyio.to_thread.run_sync(push, db, records)

            # Hanging past the gateway's timeout.
            receiver.behave(slow(TIMEOUT_SECONDS + 1.0))
            tried = most_attempts(db, subscription_id)
            await eventually(
                failed_with(db, subscription_id, "timed out", attempts_over=tried + 1),
                what="timeouts against a hanging receiver",
            )

            # Slow but inside the timeout: deliveries succeed.
            receiver.behave(slow(TIMEOUT_SECONDS / 3))
            applied = receiver.applied_count()
            await eventually(
                lambda: receiver.applied_count() >= applied + 5, what="slow deliveries"
            )

            receiver.behave(OK)
            records = renamed(records)
            await anyio.to_thread.run_sync(push, db, records)
            await eventually(
                lambda: all_applied(db, subscription_id, receiver), what="every event applied"
            )
    finally:
        receiver.stop()

    score = assert_all_delivered_in_order(db, subscription_id, receiver)
    assert sum(len(seqs) for seqs in score["order"].values()) == 5 * 5
    assert score["answered"][500] > 0
    assert score["abandoned"] > 0, "no request outlived the gateway's timeout"
    assert most_attempts(db, subscription_id) < len(SCHEDULE)


@pytest.mark.anyio
async def test_a_410_disables_the_subscription_and_keeps_its_backlog_for_re_enabling(
    db: Database,
) -> None:
    secret = webhooks.generate_secret()
    with WebhookReceiver(secret) as receiver:
        subscription_id = subscribe(db, receiver, secret)
        records = [make_case_record() for _ in range(3)]
        await anyio.to_thread.run_sync(push, db, records)

        async with delivering(db, webhook_settings()):
            await eventually(
                lambda: all_applied(db, subscription_id, receiver), what="the first events"
            )
            receiver.behave(GONE)
            # One transaction, so the whole backlog is queued before the first 410 lands.
            backlog = [*renamed(records), make_case_record(), make_case_record()]
            await anyio.to_thread.run_sync(push, db, backlog)
            await eventually(
                lambda: not subscription(db, subscription_id).active, what="disabled on 410"
            )
            await asyncio.sleep(0.3)  # let a round already under way finish
            arrived = len(receiver.snapshot()["arrivals"])
            await asyncio.sleep(0.7)  # ~14 idle rounds of the worker

            assert len(receiver.snapshot()["arrivals"]) == arrived, "sent to a disabled receiver"
            disabled = subscription(db, subscription_id)
            assert disabled.disabled_reason is not None
            assert "410" in disabled.disabled_reason
            rows = deliveries(db, subscription_id)
            waiting = [row for row in rows if row.status != DeliveryStatus.DELIVERED.value]
            assert len(waiting) == 3 + 2 * 2
            assert {row.status for row in waiting} == {DeliveryStatus.PENDING.value}
            assert {row.attempts for row in waiting} == {0}, "a 410 is not the event's failure"
            assert receiver.applied_count() == 3 * 2

            receiver.behave(OK)
            await anyio.to_thread.run_sync(
                lambda: db.write(
                    lambda s: webhooks.update_subscription(
                        s,
                        subscription_id,
                        settings=webhook_settings(),
                        principal=None,
                        now=utcnow(),
                        active=True,
                    )
                )
            )
            await eventually(
                lambda: all_applied(db, subscription_id, receiver), what="the backlog delivered"
            )

    assert_all_delivered_in_order(db, subscription_id, receiver)
    assert receiver.applied_count() == 3 * 2 + 3 + 2 * 2


@pytest.mark.anyio
async def test_a_failing_person_holds_back_only_its_own_later_events(db: Database) -> None:
    secret = webhooks.generate_secret()
    with WebhookReceiver(secret) as receiver:
        subscription_id = subscribe(db, receiver, secret)
        records = [make_case_record() for _ in range(5)]
        person_ids = await anyio.to_thread.run_sync(push, db, records)
        stuck = person_ids[0]
        receiver.behave(failing_person(stuck, reply=Reply(500)))
        await anyio.to_thread.run_sync(push, db, renamed(records))
        expected = owed(db, subscription_id)
        head, *held_back = expected[stuck]
        others = sum(len(seqs) for person, seqs in expected.items() if person != stuck)

        def others_done_and_stuck_retried() -> bool:
            if receiver.applied_count() < others:
                return False
            return any(r.seq == head and r.attempts >= 3 for r in deliveries(db, subscription_id))

        async with delivering(db, webhook_settings()):
            await eventually(
                others_done_and_stuck_retried,
                what="the other persons' events, and retries of the stuck one",
            )

            score = receiver.snapshot()
            assert stuck not in score["order"]
            assert {a.seq for a in score["arrivals"] if a.person_id == stuck} == {head}
            assert score["order"] == {p: s for p, s in expected.items() if p != stuck}
            rows = {row.seq: row for row in deliveries(db, subscription_id)}
            assert rows[head].status == DeliveryStatus.PENDING.value
            assert rows[head].attempts >= 3
            assert rows[head].last_error == "the receiver answered 500"
            assert all(rows[seq].attempts == 0 for seq in held_back)

            receiver.behave(OK)
            await eventually(
                lambda: all_applied(db, subscription_id, receiver), what="the stuck person's events"
            )

    score = assert_all_delivered_in_order(db, subscription_id, receiver)
    assert score["order"][stuck] == [head, *held_back]
