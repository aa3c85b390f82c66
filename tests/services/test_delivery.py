"""The outbox worker against a mocked receiver: signing, order per person, retries on the
schedule, dead letters and replay, 410, timeouts, Retry-After, leases and write-back."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select, update

from gateway.db import Database
from gateway.models import Change, Delivery, Person, Subscription, utcnow
from gateway.services import webhooks
from gateway.services.delivery import DeliveryWorker
from gateway.services.golden import DEFAULT_POLICY
from gateway.services.ingest import BatchResult
from gateway.services.webhooks import RetryPolicy
from gateway.settings import WebhookSettings
from tests.builders import ingest_records, make_case_record, random_crn

URL = "https://central.test/hooks"


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def hook_settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "allowed_hosts": ["central.test", "other.test"],
        "retry_schedule_seconds": [5, 60],
        "jitter": 0,
    }
    return WebhookSettings(**{**values, **overrides})


def subscribe(
    db: Database, settings: WebhookSettings, **overrides: Any
) -> webhooks.CreatedSubscription:
    values: dict[str, Any] = {
        "name": "central",
        "url": URL,
        "event_types": [],
        "sources": [],
        "secret": None,
        "client_id": None,
    }
    values.update(overrides)
    return db.write(
        lambda session: webhooks.create_subscription(
            session, settings=settings, principal=None, now=utcnow(), **values
        )
    )


def push(
    db: Database, records: Sequence[dict[str, Any]], *, source: str = "crc-north"
) -> BatchResult:
    result: BatchResult = ingest_records(db, list(records), source=source)
    return result


def renamed(record: dict[str, Any], surname: str) -> dict[str, Any]:
    changed = json.loads(json.dumps(record))
    changed["person"]["surname"] = surname
    return changed


def deliveries(db: Database) -> list[Delivery]:
    return list(
        db.read(lambda session: session.scalars(select(Delivery).order_by(Delivery.seq)).all())
    )


def subscription(db: Database, subscription_id: uuid.UUID) -> Subscription:
    found = db.read(lambda session: session.get(Subscription, subscription_id))
    assert found is not None
    return found


class Receiver:
    """A mocked central system: answers by a rule and keeps what it applied, once per id."""

    def __init__(
        self, answer: Callable[[dict[str, Any], httpx.Request], httpx.Response] | None = None
    ):
        self.answer = answer or (lambda _body, _request: httpx.Response(204))
        self.requests: list[httpx.Request] = []
        self.applied: dict[str, dict[str, Any]] = {}
        self.order: list[tuple[str, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        response = self.answer(body, request)
        if 200 <= response.status_code < 300:
            webhook_id = request.headers["webhook-id"]
            if webhook_id not in self.applied:
                self.applied[webhook_id] = body
                self.order.append((body["data"]["person_id"], int(body["data"]["id"])))
        return response

    def per_person(self) -> dict[str, list[int]]:
        order: dict[str, list[int]] = {}
        for person_id, seq in self.order:
            order.setdefault(person_id, []).append(seq)
        return order


def drain(worker: DeliveryWorker, rounds: int = 20) -> int:
    """Run rounds until one claims nothing; returns how many deliveries were attempted."""

    async def run() -> int:
        attempted = 0
        for _ in range(rounds):
            result = await worker.run_once()
            if not result.claimed:
                break
            attempted += result.claimed
        return attempted

    return asyncio.run(run())


@pytest.fixture
def mock() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router


def make_worker(
    db: Database, settings: WebhookSettings, clock: Clock | None = None
) -> DeliveryWorker:
    return DeliveryWorker(
        db,
        settings,
        policy=DEFAULT_POLICY,
        clock=clock or utcnow,
        retry_policy=RetryPolicy(settings, rng=random.Random(7)),
    )


def test_every_change_is_delivered_signed_as_standard_webhooks(db: Database, mock: Any) -> None:
    settings = hook_settings()
    created = subscribe(db, settings)
    receiver = Receiver()
    mock.post(URL).mock(side_effect=receiver)
    push(db, [make_case_record(), make_case_record()])

    drain(make_worker(db, settings))

    changes = db.read(lambda session: session.scalars(select(Change).order_by(Change.seq)).all())
    assert sorted(receiver.applied) == sorted(f"evt_{change.seq}" for change in changes)
    for request in receiver.requests:
        assert webhooks.verify(created.secret, dict(request.headers), request.content)
        body = json.loads(request.content)
        assert request.headers["webhook-id"] == f"evt_{body['data']['id']}"
        assert body["type"] == body["data"]["type"]
        assert set(body["data"]) >= {
            "id",
            "type",
            "occurred_at",
            "schema_version",
            "person_id",
            "snapshot",
            "source",
        }
        assert body["data"]["source"] == "crc-north"
    assert [row.status for row in deliveries(db)] == ["delivered"] * len(changes)
    assert subscription(db, created.subscription.id).last_success_at is not None


def test_a_tampered_body_fails_verification(db: Database, mock: Any) -> None:
    settings = hook_settings()
    created = subscribe(db, settings)
    receiver = Receiver()
    mock.post(URL).mock(side_effect=receiver)
    push(db, [make_case_record()])
    drain(make_worker(db, settings))
    request = receiver.requests[0]
    assert webhooks.verify(created.secret, dict(request.headers), request.content)
    assert not webhooks.verify(created.secret, dict(request.headers), request.content + b" ")
    assert not webhooks.verify(webhooks.generate_secret(), dict(request.headers), request.content)


def test_a_persons_changes_arrive_in_order_one_at_a_time(db: Database, mock: Any) -> None:
    settings = hook_settings()
    subscribe(db, settings)
    receiver = Receiver()
    mock.post(URL).mock(side_effect=receiver)
    record = make_case_record()
    push(db, [record])
    for surname in ("Aaronson", "Beckett", "Cartwright"):
        push(db, [renamed(record, surname)])

    drain(make_worker(db, settings))

    [(_person, seqs)] = receiver.per_person().items()
    assert seqs == sorted(seqs)
    assert len(seqs) == 5  # created, case created, three renames
    assert len(receiver.requests) == 5


def test_failures_follow_the_schedule_then_dead_letter_and_hold_the_persons_later_changes(
    db: Database, mock: Any
) -> None:
    settings = hook_settings(retry_schedule_seconds=[5, 60])
    created = subscribe(db, settings)
    receiver = Receiver(lambda _body, _request: httpx.Response(500))
    mock.post(URL).mock(side_effect=receiver)
    record = make_case_record()
    push(db, [record])
    clock = Clock()
    worker = make_worker(db, settings, clock)

    assert drain(worker) == 1  # the person's first change; the second waits behind it
    [first, second] = deliveries(db)
    assert (first.attempts, first.status, first.last_status) == (1, "pending", 500)
    assert first.next_attempt_at == clock.now + timedelta(seconds=5)

    clock.advance(4)
    assert drain(worker) == 0  # not due yet
    clock.advance(1)
    assert drain(worker) == 1
    assert deliveries(db)[0].next_attempt_at == clock.now + timedelta(seconds=60)
    clock.advance(60)
    assert drain(worker) == 1
    first, second = deliveries(db)
    assert (first.status, first.attempts) == ("dead", 3)
    # Held behind the dead letter, so the person's order survives a replay.
    assert (second.status, second.attempts) == ("pending", 0)
    clock.advance(3600)
    assert drain(worker) == 0
    assert len(receiver.requests) == 3

    receiver.answer = lambda _body, _request: httpx.Response(200)
    replayed = db.write(
        lambda session: webhooks.replay_dead_letters(
            session, created.subscription.id, delivery_ids=None, principal=None, now=clock.now
        )
    )
    assert replayed == 1
    drain(worker)
    assert [row.status for row in deliveries(db)] == ["delivered", "delivered"]
    [(_person, seqs)] = receiver.per_person().items()
    assert seqs == [first.seq, second.seq]


def test_a_failing_person_does_not_hold_up_anyone_else(db: Database, mock: Any) -> None:
    settings = hook_settings(retry_schedule_seconds=[5] * 10)
    subscribe(db, settings)
    doomed = make_case_record()
    result = push(db, [doomed])
    doomed_id = str(result.results[0].person_id)
    receiver = Receiver(
        lambda body, _request: httpx.Response(
            503 if body["data"]["person_id"] == doomed_id else 200
        )
    )
    mock.post(URL).mock(side_effect=receiver)
    others = [make_case_record() for _ in range(4)]
    push(db, others)
    clock = Clock()
    worker = make_worker(db, settings, clock)

    for _ in range(3):
        drain(worker)
        clock.advance(5)

    by_person = receiver.per_person()
    assert doomed_id not in by_person
    assert len(by_person) == 4
    assert all(len(seqs) == 2 for seqs in by_person.values())
    doomed_rows = [row for row in deliveries(db) if str(row.person_id) == doomed_id]
    assert [row.status for row in doomed_rows] == ["pending", "pending"]
    assert doomed_rows[0].attempts == 3
    assert doomed_rows[1].attempts == 0


def test_timeouts_and_broken_connections_are_retried(db: Database, mock: Any) -> None:
    settings = hook_settings(retry_schedule_seconds=[1, 1, 1])
    subscribe(db, settings)
    failures: list[Exception] = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]
    receiver = Receiver()

    def answer(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return receiver(request)

    mock.post(URL).mock(side_effect=answer)
    push(db, [make_case_record()])
    clock = Clock()
    worker = make_worker(db, settings, clock)
    drain(worker)
    assert deliveries(db)[0].last_error == "could not deliver (ConnectError)"
    clock.advance(1)
    drain(worker)
    assert deliveries(db)[0].last_error == "timed out"
    clock.advance(1)
    drain(worker)
    assert [row.status for row in deliveries(db)] == ["delivered", "delivered"]
    assert deliveries(db)[0].attempts == 3


def test_a_slow_receiver_times_out_within_the_attempt_budget(db: Database, mock: Any) -> None:
    settings = hook_settings(timeout_seconds=0.2)
    subscribe(db, settings)

    async def slow(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    mock.post(URL).mock(side_effect=slow)
    push(db, [make_case_record()])
    drain(make_worker(db, settings))
    first = deliveries(db)[0]
    assert (first.status, first.attempts, first.last_error) == ("pending", 1, "timed out")


def test_retry_after_is_honoured_when_longer_than_the_schedule(db: Database, mock: Any) -> None:
    settings = hook_settings(retry_schedule_seconds=[5, 5])
    subscribe(db, settings)
    mock.post(URL).mock(return_value=httpx.Response(429, headers={"retry-after": "120"}))
    push(db, [make_case_record()])
    clock = Clock()
    drain(make_worker(db, settings, clock))
    assert deliveries(db)[0].next_attempt_at == clock.now + timedelta(seconds=120)


def test_410_disables_the_subscription_and_keeps_its_backlog(db: Database, mock: Any) -> None:
    settings = hook_settings()
    created = subscribe(db, settings)
    route = mock.post(URL).mock(return_value=httpx.Response(410))
    push(db, [make_case_record()])
    clock = Clock()
    worker = make_worker(db, settings, clock)
    drain(worker)
    disabled = subscription(db, created.subscription.id)
    assert not disabled.active
    assert disabled.disabled_reason == "the receiver answered 410 Gone"
    assert [row.status for row in deliveries(db)] == ["pending", "pending"]
    # Disabled: nothing more is tried, but new changes are still queued for it.
    push(db, [make_case_record()])
    assert drain(worker) == 0
    assert len(deliveries(db)) == 4
    assert route.call_count == 1

    route.mock(return_value=httpx.Response(200))
    db.write(
        lambda session: webhooks.update_subscription(
            session,
            created.subscription.id,
            settings=settings,
            principal=None,
            now=clock.now,
            active=True,
        )
    )
    clock.advance(1)  # past the real time the later push was queued at
    drain(worker)
    assert [row.status for row in deliveries(db)] == ["delivered"] * 4
    assert subscription(db, created.subscription.id).disabled_reason is None


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_runs_out(db: Database) -> None:
    from gateway.repositories import subscriptions as subscriptions_repo

    settings = hook_settings()
    subscribe(db, settings)
    push(db, [make_case_record(), make_case_record()])
    now = utcnow()
    lease = now + timedelta(seconds=settings.lease_seconds)

    def claim(at: datetime) -> list[int]:
        claimed = db.write(
            lambda session: subscriptions_repo.claim_due(
                session, now=at, limit=10, lease_until=at + timedelta(seconds=120)
            )
        )
        return [item.seq for item in claimed]

    first = claim(now)
    assert len(first) == 2  # one per person: the case changes wait behind them
    assert claim(now) == []
    assert claim(lease - timedelta(seconds=1)) == []
    assert sorted(claim(lease + timedelta(seconds=1))) == sorted(first)


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_new_claim(
    db: Database, mock: Any
) -> None:
    settings = hook_settings(lease_seconds=30)
    subscribe(db, settings)
    push(db, [make_case_record()])
    clock = Clock()
    slow_worker = make_worker(db, settings, clock)
    attempts = db.write(lambda session: slow_worker._claim(session, clock.now, limit=10))
    assert len(attempts) == 1
    clock.advance(31)  # the slow worker's lease ran out; another worker delivers
    mock.post(URL).mock(return_value=httpx.Response(200))
    assert drain(make_worker(db, settings, clock)) == 2
    from gateway.services.delivery import Outcome, Result

    # The slow worker comes back with a failure: it must not undo the delivery.
    slow_worker._record_safely([(attempts[0], Outcome(Result.FAILED, status=500, error="late"))])
    assert [row.status for row in deliveries(db)] == ["delivered", "delivered"]


def test_filters_pick_the_events_and_sources_a_subscriber_wants(db: Database, mock: Any) -> None:
    settings = hook_settings()
    subscribe(db, settings, event_types=["person.created"], sources=["crc-south"])
    mock.post(URL).mock(return_value=httpx.Response(200))
    push(db, [make_case_record()], source="crc-north")
    push(db, [make_case_record()], source="crc-south")
    rows = deliveries(db)
    changes = db.read(lambda session: {c.seq: c for c in session.scalars(select(Change)).all()})
    assert [(changes[r.seq].type, changes[r.seq].source) for r in rows] == [
        ("person.created", "crc-south")
    ]


def test_the_crn_a_receiver_answers_with_is_written_back_and_not_echoed(
    db: Database, mock: Any
) -> None:
    settings = hook_settings()
    central = subscribe(db, settings)
    audit_copy = subscribe(db, settings, name="audit copy", url="https://other.test/hooks")
    assigned = random_crn()
    result = push(db, [make_case_record()])
    person_id = str(result.results[0].person_id)

    def answer(body: dict[str, Any], _request: httpx.Request) -> httpx.Response:
        if body["type"] == "person.created":
            return httpx.Response(200, json={"person_id": person_id, "crn": assigned})
        return httpx.Response(200, json={"ok": True})

    central_receiver = Receiver(answer)
    other_receiver = Receiver()
    mock.post(URL).mock(side_effect=central_receiver)
    mock.post("https://other.test/hooks").mock(side_effect=other_receiver)

    drain(make_worker(db, settings))

    person = db.read(lambda session: session.get(Person, uuid.UUID(person_id)))
    assert person is not None
    assert person.crn == assigned
    assert person.record["identifiers"]["crn"] == assigned
    assert person.provenance["identifiers.crn"]["source"] == "central"
    written_back = db.read(
        lambda session: session.scalars(
            select(Change).where(Change.origin_subscription_id == central.subscription.id)
        ).all()
    )
    assert [change.type for change in written_back] == ["person.updated"]
    # The receiver that sent the CRN is not sent its own change; the other subscriber is.
    central_types = [body["type"] for body in central_receiver.applied.values()]
    other_types = [body["type"] for body in other_receiver.applied.values()]
    assert central_types == ["person.created", "case.created"]
    assert sorted(other_types) == ["case.created", "person.created", "person.updated"]
    assert audit_copy.subscription.id != central.subscription.id


def test_a_written_back_crn_outranks_what_a_source_sends_later(db: Database, mock: Any) -> None:
    settings = hook_settings()
    subscribe(db, settings)
    assigned = random_crn()
    record = make_case_record()
    result = push(db, [record])
    mock.post(URL).mock(return_value=httpx.Response(200, json={"crn": assigned}))
    drain(make_worker(db, settings))
    push(db, [renamed(record, "Fairweather")])
    person = db.read(lambda session: session.get(Person, result.results[0].person_id))
    assert person is not None
    assert (person.crn, person.record["surname"]) == (assigned, "Fairweather")


def test_a_refused_write_back_is_noted_and_the_delivery_stands(db: Database, mock: Any) -> None:
    settings = hook_settings()
    subscribe(db, settings)
    holder, other = make_case_record(), make_case_record()
    push(db, [holder])
    taken = holder["person"]["identifiers"]["crn"]
    mock.post(URL).mock(return_value=httpx.Response(200, json={"crn": "not a crn"}))
    db.write(lambda session: session.execute(update(Delivery).values(status="delivered")))
    push(db, [other])
    drain(make_worker(db, settings))
    rows = [row for row in deliveries(db) if row.status == "delivered" and row.last_error]
    assert rows
    assert rows[0].last_error == "write-back refused: invalid-request"

    mock.post(URL).mock(return_value=httpx.Response(200, json={"crn": taken}))
    push(db, [make_case_record()])
    drain(make_worker(db, settings))
    assert any(row.last_error == "write-back refused: conflict" for row in deliveries(db))


def test_the_default_schedule_spans_about_three_days_with_jitter() -> None:
    settings = WebhookSettings()
    policy = RetryPolicy(settings, rng=random.Random(1))
    assert settings.retry_schedule_seconds[:6] == [5, 300, 1800, 7200, 18000, 36000]
    assert 2.5 * 86400 <= policy.total_seconds <= 3.5 * 86400
    waits = [
        policy.after_failure(attempt)
        for attempt in range(1, len(settings.retry_schedule_seconds) + 1)
    ]
    for wait, step in zip(waits, settings.retry_schedule_seconds, strict=True):
        assert wait is not None
        assert step * 0.9 <= wait <= step * 1.1
    assert policy.after_failure(len(settings.retry_schedule_seconds) + 1) is None
    spread = {RetryPolicy(settings).after_failure(1) for _ in range(20)}
    assert len(spread) > 1


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://central.test/hooks", None),
        ("https://api.central.test/hooks", "not in the webhook allow-list"),
        ("https://hooks.example.org/x", None),
        ("https://example.org/x", "not in the webhook allow-list"),
        ("http://central.test/hooks", "must use https"),
        ("https://user:pw@central.test/hooks", "credentials"),
        ("https://169.254.169.254/latest", "not in the webhook allow-list"),
        ("https://10.0.0.7/hooks", "not in the webhook allow-list"),
        ("ftp://central.test/x", "must use https"),
        ("https:///nohost", "has no host"),
    ],
)
def test_webhook_urls_are_held_to_the_allow_list(url: str, problem: str | None) -> None:
    from gateway.errors import InvalidRequest

    settings = WebhookSettings(allowed_hosts=["central.test", "*.example.org"])
    if problem is None:
        assert webhooks.check_url(url, settings) == url
        return
    with pytest.raises(InvalidRequest) as raised:
        webhooks.check_url(url, settings)
    assert problem in raised.value.detail


def test_a_host_removed_from_the_allow_list_is_no_longer_called(db: Database, mock: Any) -> None:
    settings = hook_settings()
    subscribe(db, settings)
    route = mock.post(URL).mock(return_value=httpx.Response(200))
    push(db, [make_case_record()])
    drain(make_worker(db, hook_settings(allowed_hosts=["other.test"])))
    assert route.call_count == 0
    assert deliveries(db)[0].last_error == "the URL's host is no longer allowed"


def test_a_flaky_receiver_still_gets_everything_once_in_order(db: Database, mock: Any) -> None:
    settings = hook_settings(retry_schedule_seconds=[1] * 30, concurrency=4)
    subscribe(db, settings)
    rng = random.Random(11)

    def flaky(_body: dict[str, Any], _request: httpx.Request) -> httpx.Response:
        roll = rng.random()
        if roll < 0.3:
            return httpx.Response(rng.choice([500, 502, 503, 429]))
        if roll < 0.4:
            # Applied, but the answer is lost: the gateway will send it again.
            receiver.applied.setdefault(_request.headers["webhook-id"], _body)
            receiver.order.append((_body["data"]["person_id"], int(_body["data"]["id"])))
            return httpx.Response(504)
        return httpx.Response(200)

    receiver = Receiver(flaky)
    mock.post(URL).mock(side_effect=receiver)
    records = [make_case_record() for _ in range(6)]
    push(db, records)
    for round_ in range(3):
        push(db, [renamed(record, f"Surname{round_}") for record in records[::2]])
    clock = Clock()
    worker = make_worker(db, settings, clock)
    for _ in range(60):
        drain(worker)
        clock.advance(1)
        if all(row.status == "delivered" for row in deliveries(db)):
            break
    rows = deliveries(db)
    assert all(row.status == "delivered" for row in rows)
    assert sorted(receiver.applied) == sorted(f"evt_{row.seq}" for row in rows)
    firsts: dict[str, list[int]] = {}
    for person_id, seq in receiver.order:
        if seq not in firsts.setdefault(person_id, []):
            firsts[person_id].append(seq)
    assert all(seqs == sorted(seqs) for seqs in firsts.values())


def test_a_merged_persons_undelivered_changes_go_out_before_the_merge(
    db: Database, mock: Any
) -> None:
    from gateway.services import review

    settings = hook_settings(retry_schedule_seconds=[5] * 5)
    subscribe(db, settings)
    [kept] = push(db, [make_case_record()]).results
    [gone] = push(db, [make_case_record()]).results
    receiver = Receiver(lambda _body, _request: httpx.Response(503))
    mock.post(URL).mock(side_effect=receiver)
    clock = Clock()
    worker = make_worker(db, settings, clock)
    drain(worker)  # both persons' first changes fail and wait
    # An operator links the second person's only record to the first: the second is merged.
    db.write(
        lambda session: review.link_record(
            session,
            kept.person_id,
            source_record_id=gone.source_record_id,
            note=None,
            principal=None,
            policy=DEFAULT_POLICY,
            now=clock.now,
        )
    )
    receiver.answer = lambda _body, _request: httpx.Response(200)
    for _ in range(6):
        clock.advance(5)
        drain(worker)
    rows = deliveries(db)
    assert all(row.status == "delivered" for row in rows)
    assert {row.person_id for row in rows} == {kept.person_id}
    # One queue now: every change, the merged person's included, in feed order; the merge last.
    seqs = [seq for _person, seq in receiver.order]
    assert seqs == sorted(seqs)
    assert receiver.applied[f"evt_{seqs[-1]}"]["type"] == "person.merged"


def test_a_worker_claims_no_more_than_it_can_send_at_once(db: Database, mock: Any) -> None:
    settings = hook_settings(concurrency=2)
    subscribe(db, settings)
    mock.post(URL).mock(return_value=httpx.Response(200))
    push(db, [make_case_record() for _ in range(5)])
    result = asyncio.run(make_worker(db, settings).run_once())
    assert (result.claimed, result.delivered) == (2, 2)


def test_a_lease_shorter_than_two_attempts_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="lease_seconds"):
        WebhookSettings(timeout_seconds=30, lease_seconds=45)
    assert WebhookSettings(timeout_seconds=30, lease_seconds=60).lease_seconds == 60


async def eventually(check: Callable[[], bool], *, within: float = 20) -> None:
    """Wait for state another task changes; `within` is a safety net, not a timing claim."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the state is not ours to signal
            await asyncio.sleep(0.01)


def statuses(db: Database) -> list[str]:
    return [row.status for row in deliveries(db)]


@pytest.mark.anyio
async def test_a_slow_receiver_for_one_person_holds_only_its_own_slot(
    db: Database, mock: Any
) -> None:
    settings = hook_settings(concurrency=3, idle_seconds=0.05, timeout_seconds=30, lease_seconds=60)
    subscribe(db, settings)
    [slow] = push(db, [make_case_record()]).results
    push(db, [make_case_record() for _ in range(4)])
    release = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["data"]["person_id"] == str(slow.person_id):
            await release.wait()
        return httpx.Response(200)

    mock.post(URL).mock(side_effect=answer)
    worker = make_worker(db, settings)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    # Everyone else's changes go out while the slow person's first one is still in flight.
    await eventually(lambda: statuses(db).count("delivered") == 8)
    assert statuses(db).count("pending") == 2
    release.set()
    await eventually(lambda: statuses(db) == ["delivered"] * 10)
    stop.set()
    await running
    await worker.aclose()


@pytest.mark.anyio
async def test_a_worker_wakes_on_a_commit_rather_than_its_idle_tick(
    db: Database, mock: Any
) -> None:
    from gateway.services.feed_signal import FeedSignal

    # An idle tick longer than the safety net below: only the commit can wake the worker.
    settings = hook_settings(idle_seconds=60)
    subscribe(db, settings)
    mock.post(URL).mock(return_value=httpx.Response(200))
    signal = FeedSignal()
    signal.bind(asyncio.get_running_loop())
    db.add_commit_listener(signal.notify_threadsafe)
    worker = DeliveryWorker(db, settings, policy=DEFAULT_POLICY, signal=signal)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.sleep(0.1)  # the worker found nothing and is idle
        await asyncio.to_thread(push, db, [make_case_record()])
        await eventually(lambda: statuses(db) == ["delivered", "delivered"], within=20)
    finally:
        stop.set()
        await running
        await worker.aclose()
        db.remove_commit_listener(signal.notify_threadsafe)


def test_after_a_rotation_deliveries_carry_both_signatures_until_the_grace_ends(
    db: Database, mock: Any
) -> None:
    settings = hook_settings()
    created = subscribe(db, settings)
    receiver = Receiver()
    mock.post(URL).mock(side_effect=receiver)
    clock = Clock()
    rotated = db.write(
        lambda session: webhooks.rotate_secret(
            session,
            created.subscription.id,
            secret=None,
            grace=timedelta(hours=1),
            principal=None,
            now=clock.now,
        )
    )
    assert rotated.secret != created.secret
    push(db, [make_case_record()])
    clock.advance(1)
    worker = make_worker(db, settings, clock)
    drain(worker)
    during = receiver.requests[-1]
    assert len(during.headers["webhook-signature"].split()) == 2
    for secret in (created.secret, rotated.secret):
        assert webhooks.verify(secret, dict(during.headers), during.content)

    clock.advance(3600)
    push(db, [make_case_record()])
    clock.advance(1)
    drain(worker)
    after = receiver.requests[-1]
    assert len(after.headers["webhook-signature"].split()) == 1
    assert webhooks.verify(rotated.secret, dict(after.headers), after.content)
    assert not webhooks.verify(created.secret, dict(after.headers), after.content)


def wildcard_worker(
    db: Database, settings: WebhookSettings, addresses: list[str]
) -> DeliveryWorker:
    async def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("hooks.example.org", 443)
        return addresses

    return DeliveryWorker(
        db,
        settings,
        policy=DEFAULT_POLICY,
        retry_policy=RetryPolicy(settings, rng=random.Random(7)),
        resolve=resolve,
    )


def test_a_wildcard_host_is_called_at_the_public_address_it_was_checked_at(
    db: Database, mock: Any
) -> None:
    settings = hook_settings(allowed_hosts=["*.example.org"])
    subscribe(db, settings, url="https://hooks.example.org/events")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    mock.post("https://93.184.216.34/events").mock(side_effect=answer)
    push(db, [make_case_record()])
    drain(wildcard_worker(db, settings, ["93.184.216.34"]))
    assert statuses(db) == ["delivered", "delivered"]
    assert {request.headers["host"] for request in seen} == {"hooks.example.org"}
    assert {request.extensions["sni_hostname"] for request in seen} == {"hooks.example.org"}


@pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1", "169.254.169.254", "::1"])
def test_a_wildcard_host_that_resolves_inside_is_not_called(
    db: Database, mock: Any, address: str
) -> None:
    settings = hook_settings(allowed_hosts=["*.example.org"])
    subscribe(db, settings, url="https://hooks.example.org/events")
    route = mock.route().mock(return_value=httpx.Response(200))
    push(db, [make_case_record()])
    drain(wildcard_worker(db, settings, ["93.184.216.34", address]))
    assert route.call_count == 0
    first = deliveries(db)[0]
    assert (first.status, first.last_error) == (
        "pending",
        "the host resolves to a non-public address",
    )
