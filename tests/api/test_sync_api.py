"""Sync over HTTP: subscriptions and dead letters, the feed's filters and long polling, the
CRN write-back, retention, and lag in /v1/status."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from gateway.db import Database
from gateway.main import create_app
from gateway.models import Change, Delivery, Subscription, utcnow
from gateway.services import clients, retention
from gateway.services.changes import envelope
from gateway.services.clients import Role
from gateway.services.feed_signal import FeedSignal
from gateway.settings import FeedSettings, Settings, WebhookSettings
from tests.api.conftest import assert_problem
from tests.builders import ingest_records, make_case_record, random_crn
from tests.conftest import KeyMaker, bearer

HOOK = "https://central.test/hooks"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        log_format="text",
        webhooks=WebhookSettings(allowed_hosts=["central.test"], worker_enabled=False),
        feed=FeedSettings(head_check_seconds=0.05),
    )


@pytest.fixture
async def live(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose lifespan runs (feed watcher, background tasks)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield http


async def push(
    client: httpx.AsyncClient, key: str, *records: Any, source: str = "crc-north"
) -> list[Any]:
    response = await client.post(
        f"/v1/sources/{source}/records", json={"records": list(records)}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    results: list[Any] = response.json()["results"]
    return results


async def subscribe(
    client: httpx.AsyncClient, admin: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/subscriptions", json={"name": "central", "url": HOOK, **body}, headers=admin
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def eventually(check: Callable[[], bool], *, within: float = 20) -> None:
    """Wait for state another task changes; `within` is a safety net, not a timing claim."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the state is not ours to signal
            await asyncio.sleep(0.01)


def record_id_of(db: Database, external_id: str) -> uuid.UUID:
    from gateway.models import SourceRecord

    found = db.read(
        lambda session: session.scalars(
            select(SourceRecord.id).where(SourceRecord.external_id == external_id)
        ).one()
    )
    return found


def client_id_of(db: Database, key: str) -> uuid.UUID:
    principal = db.read(lambda session: clients.authenticate(session, key))
    assert principal is not None
    return principal.client_id


@pytest.mark.anyio
async def test_a_subscription_is_created_shown_without_its_secret_and_changed(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    admin = bearer(make_key(Role.ADMIN))
    created = await subscribe(client, admin, event_types=["person.created"], sources=["crc-north"])
    assert created["secret"].startswith("whsec_")
    assert created["active"] is True
    assert created["status"]["backlog"] == 0
    listed = (await client.get("/v1/subscriptions", headers=admin)).json()
    assert [item["id"] for item in listed] == [created["id"]]
    assert "secret" not in listed[0]
    one = await client.get(f"/v1/subscriptions/{created['id']}", headers=admin)
    assert "secret" not in one.json()

    paused = await client.patch(
        f"/v1/subscriptions/{created['id']}", json={"active": False}, headers=admin
    )
    assert paused.status_code == 200, paused.text
    assert (paused.json()["active"], paused.json()["disabled_reason"]) == (
        False,
        "disabled by an administrator",
    )
    owed = await client.get(f"/v1/subscriptions/{created['id']}", headers=admin)
    assert owed.json()["active"] is False
    resumed = await client.patch(
        f"/v1/subscriptions/{created['id']}",
        json={"active": True, "event_types": []},
        headers=admin,
    )
    assert (resumed.json()["active"], resumed.json()["event_types"]) == (True, [])

    rotated = await client.post(
        f"/v1/subscriptions/{created['id']}/secret",
        json={"keep_previous_hours": 2},
        headers=admin,
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]
    bad = await client.post(
        f"/v1/subscriptions/{created['id']}/secret", json={"secret": "whsec_x"}, headers=admin
    )
    assert assert_problem(bad, 422)["errors"][0]["path"] == "secret"

    deleted = await client.delete(f"/v1/subscriptions/{created['id']}", headers=admin)
    assert deleted.status_code == 204
    assert (await client.get("/v1/subscriptions", headers=admin)).json() == []
    again = await client.delete(f"/v1/subscriptions/{created['id']}", headers=admin)
    assert_problem(again, 404)


@pytest.mark.anyio
async def test_a_paused_subscription_is_still_owed_its_changes_and_deleting_drops_them(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    admin = bearer(make_key(Role.ADMIN))
    created = await subscribe(client, admin)
    await client.patch(f"/v1/subscriptions/{created['id']}", json={"active": False}, headers=admin)
    await push(client, make_key(Role.SOURCE, source="crc-north"), make_case_record())
    paused = (await client.get(f"/v1/subscriptions/{created['id']}", headers=admin)).json()
    assert (paused["active"], paused["status"]["backlog"]) == (False, 2)
    await client.delete(f"/v1/subscriptions/{created['id']}", headers=admin)
    assert db.read(lambda session: session.scalars(select(Delivery)).all()) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"url": "https://elsewhere.test/hooks"}, "url"),
        ({"url": "http://central.test/hooks"}, "url"),
        ({"event_types": ["person.exploded"]}, "event_types"),
        ({"secret": "whsec_too-short"}, "secret"),
        ({"sources": ["Not A Source"]}, "source"),
        ({"client_id": str(uuid.uuid4())}, "client_id"),
    ],
)
async def test_a_bad_subscription_is_refused_with_the_field_named(
    client: httpx.AsyncClient, make_key: KeyMaker, body: dict[str, Any], path: str
) -> None:
    admin = bearer(make_key(Role.ADMIN))
    response = await client.post(
        "/v1/subscriptions", json={"name": "bad", "url": HOOK, **body}, headers=admin
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["path"] == path
    assert (await client.get("/v1/subscriptions", headers=admin)).json() == []


@pytest.mark.anyio
async def test_dead_letters_are_listed_and_replayed_by_an_operator(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    admin, operator = bearer(make_key(Role.ADMIN)), bearer(make_key(Role.OPERATOR))
    source = make_key(Role.SOURCE, source="crc-north")
    created = await subscribe(client, admin)
    await push(client, source, make_case_record(), make_case_record())
    # Two of the four deliveries ran out of tries.
    rows = db.read(lambda session: session.scalars(select(Delivery).order_by(Delivery.seq)).all())
    dead_ids = [rows[0].id, rows[2].id]
    db.write(
        lambda session: session.execute(
            update(Delivery)
            .where(Delivery.id.in_(dead_ids))
            .values(
                status="dead", attempts=12, dead_at=utcnow(), last_error="the receiver answered 500"
            )
        )
    )
    status = (await client.get("/v1/status", headers=operator)).json()["subscriptions"]
    assert [(s["backlog"], s["dead_letters"]) for s in status] == [(2, 2)]

    page = await client.get(
        f"/v1/subscriptions/{created['id']}/dead-letters", params={"limit": 1}, headers=operator
    )
    assert page.status_code == 200, page.text
    [first] = page.json()["dead_letters"]
    assert (first["type"], first["attempts"]) == ("person.created", 12)
    rest = await client.get(
        f"/v1/subscriptions/{created['id']}/dead-letters",
        params={"after": page.json()["next_after"]},
        headers=operator,
    )
    assert len(rest.json()["dead_letters"]) == 1
    assert rest.json()["next_after"] is None

    one = await client.post(
        f"/v1/subscriptions/{created['id']}/dead-letters/replay",
        json={"delivery_ids": [dead_ids[0]]},
        headers=operator,
    )
    assert one.json() == {"replayed": 1}
    everything = await client.post(
        f"/v1/subscriptions/{created['id']}/dead-letters/replay", headers=operator
    )
    assert everything.json() == {"replayed": 1}
    rows = db.read(lambda session: session.scalars(select(Delivery)).all())
    assert {(row.status, row.attempts) for row in rows} == {("pending", 0)}
    missing = await client.post(
        f"/v1/subscriptions/{uuid.uuid4()}/dead-letters/replay", headers=operator
    )
    assert_problem(missing, 404)


@pytest.mark.anyio
async def test_status_shows_each_subscribers_lag(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    admin, operator = bearer(make_key(Role.ADMIN)), bearer(make_key(Role.OPERATOR))
    await subscribe(client, admin)
    await push(client, make_key(Role.SOURCE, source="crc-north"), make_case_record())
    an_hour_ago = utcnow() - timedelta(hours=1)
    db.write(lambda session: session.execute(update(Delivery).values(created_at=an_hour_ago)))
    [lag] = (await client.get("/v1/status", headers=operator)).json()["subscriptions"]
    assert lag["backlog"] == 2
    assert lag["due"] == 2
    assert 3600 <= lag["lag_seconds"] < 3600 + 300
    assert lag["oldest_undelivered_at"] is not None
    assert lag["last_success_at"] is None


@pytest.mark.anyio
async def test_the_feed_filters_by_type_and_source(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    central = bearer(make_key(Role.CENTRAL))
    await push(client, make_key(Role.SOURCE, source="crc-north"), make_case_record())
    await push(
        client, make_key(Role.SOURCE, source="crc-south"), make_case_record(), source="crc-south"
    )
    page = (await client.get("/v1/changes", headers=central)).json()
    # Webhooks carry the envelope as the service builds it: byte for byte what the feed says.
    rows = db.read(lambda session: session.scalars(select(Change).order_by(Change.seq)).all())
    assert [envelope(row) for row in rows] == page["changes"]
    everything = page["changes"]
    assert [(c["type"], c["source"]) for c in everything] == [
        ("person.created", "crc-north"),
        ("case.created", "crc-north"),
        ("person.created", "crc-south"),
        ("case.created", "crc-south"),
    ]
    south_people = await client.get(
        "/v1/changes", params={"type": "person.created", "source": "crc-south"}, headers=central
    )
    [only] = south_people.json()["changes"]
    assert (only["type"], only["source"]) == ("person.created", "crc-south")
    # Nothing more matches: the cursor moves to the head, past what the filter left out.
    assert south_people.json()["next_cursor"] == everything[-1]["cursor"]
    listed = await client.get(
        "/v1/changes", params=[("type", "case.created,person.created")], headers=central
    )
    assert len(listed.json()["changes"]) == 4
    unknown = await client.get("/v1/changes", params={"type": "person.exploded"}, headers=central)
    assert_problem(unknown, 422)
    bad_source = await client.get("/v1/changes", params={"source": "NOT OK"}, headers=central)
    assert_problem(bad_source, 422)


def test_the_envelope_names_merged_and_split_persons() -> None:
    from gateway.services.changes import envelope

    survivor, loser, origin = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def change(kind: str, snapshot: dict[str, Any]) -> Change:
        return Change(
            seq=7,
            type=kind,
            occurred_at=utcnow(),
            person_id=survivor,
            case_id=None,
            source=None,
            schema_version=1,
            snapshot=snapshot,
        )

    merged = envelope(change("person.merged", {"merged_person_ids": [str(loser)]}))
    split = envelope(change("person.split", {"split_from_person_id": str(origin)}))
    plain = envelope(change("person.updated", {}))
    assert merged["related_person_ids"] == [str(loser)]
    assert split["related_person_ids"] == [str(origin)]
    assert plain["related_person_ids"] == []
    assert set(plain) == {
        "id",
        "cursor",
        "type",
        "occurred_at",
        "schema_version",
        "person_id",
        "related_person_ids",
        "case_id",
        "source",
        "snapshot",
    }


@pytest.mark.anyio
async def test_a_long_poll_returns_as_soon_as_a_change_commits(
    live: httpx.AsyncClient, app: FastAPI, make_key: KeyMaker
) -> None:
    central = bearer(make_key(Role.CENTRAL))
    source = make_key(Role.SOURCE, source="crc-north")
    head = (await live.get("/v1/changes", headers=central)).json()["next_cursor"]
    signal: FeedSignal = app.state.feed_signal
    waiting = asyncio.create_task(
        live.get("/v1/changes", params={"after": head, "wait": 30}, headers=central)
    )
    await eventually(lambda: signal.waiters > 0)
    await push(live, source, make_case_record())
    # Far below `wait`: the push woke the reader.
    response = await asyncio.wait_for(waiting, timeout=20)
    assert [c["type"] for c in response.json()["changes"]][:1] == ["person.created"]


@pytest.mark.anyio
async def test_a_long_poll_sees_a_change_another_replica_committed(
    live: httpx.AsyncClient, app: FastAPI, make_key: KeyMaker, settings: Settings
) -> None:

    central = bearer(make_key(Role.CENTRAL))
    signal: FeedSignal = app.state.feed_signal
    waiting = asyncio.create_task(live.get("/v1/changes", params={"wait": 30}, headers=central))
    await eventually(lambda: signal.waiters > 0)
    # Another process's engine: its commit does not signal this app; the head watcher sees it.
    replica = Database.from_settings(settings)
    try:
        ingest_records(replica, [make_case_record()])
    finally:
        replica.dispose()
    response = await asyncio.wait_for(waiting, timeout=20)
    assert len(response.json()["changes"]) == 2


@pytest.mark.anyio
async def test_a_long_poll_with_nothing_new_ends_empty_with_the_same_cursor(
    live: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    central = bearer(make_key(Role.CENTRAL))
    response = await live.get("/v1/changes", params={"wait": 0.2}, headers=central)
    assert response.status_code == 200
    assert response.json()["changes"] == []


@pytest.mark.anyio
async def test_the_central_system_writes_back_the_crn_it_assigned(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    central_key = make_key(Role.CENTRAL)
    central = bearer(central_key)
    admin = bearer(make_key(Role.ADMIN))
    source = make_key(Role.SOURCE, source="crc-north")
    mine = await subscribe(client, admin, client_id=str(client_id_of(db, central_key)))
    theirs = await subscribe(client, admin, name="someone else")
    [result] = await push(client, source, make_case_record())
    cursor = (await client.get("/v1/changes", headers=central)).json()["next_cursor"]
    crn = random_crn()

    put = await client.put(
        f"/v1/persons/{result['person_id']}/identifiers", json={"crn": crn.lower()}, headers=central
    )
    assert put.status_code == 200, put.text
    assert put.json()["person"]["identifiers"]["crn"] == crn
    assert put.json()["provenance"]["identifiers.crn"]["source"] == "central"
    found = await client.get("/v1/persons", params={"crn": crn}, headers=central)
    assert [p["id"] for p in found.json()["items"]] == [result["person_id"]]

    # Not echoed to the system that sent it: neither in its feed nor to its subscription.
    own_feed = await client.get("/v1/changes", params={"after": cursor}, headers=central)
    assert own_feed.json()["changes"] == []
    with_own = await client.get(
        "/v1/changes", params={"after": cursor, "include_own": "true"}, headers=central
    )
    assert [c["type"] for c in with_own.json()["changes"]] == ["person.updated"]
    other_reader = bearer(make_key(Role.CENTRAL))
    theirs_feed = await client.get("/v1/changes", params={"after": cursor}, headers=other_reader)
    assert [c["type"] for c in theirs_feed.json()["changes"]] == ["person.updated"]
    seq = int(with_own.json()["changes"][0]["id"])
    owed = db.read(
        lambda session: session.scalars(
            select(Delivery.subscription_id).where(Delivery.seq == seq)
        ).all()
    )
    assert owed == [uuid.UUID(theirs["id"])]
    assert uuid.UUID(mine["id"]) not in owed

    again = await client.put(
        f"/v1/persons/{result['person_id']}/identifiers", json={"crn": crn}, headers=central
    )
    assert again.status_code == 200
    count = db.read(lambda session: len(session.scalars(select(Change)).all()))
    assert count == 3  # person.created, case.created, one person.updated


@pytest.mark.anyio
async def test_a_bad_or_taken_crn_is_refused(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    central = bearer(make_key(Role.CENTRAL))
    source = make_key(Role.SOURCE, source="crc-north")
    holder = make_case_record()
    [held, other] = await push(client, source, holder, make_case_record())
    bad = await client.put(
        f"/v1/persons/{other['person_id']}/identifiers", json={"crn": "nope"}, headers=central
    )
    assert assert_problem(bad, 422)["errors"][0]["path"] == "body.crn"
    taken = await client.put(
        f"/v1/persons/{other['person_id']}/identifiers",
        json={"crn": holder["person"]["identifiers"]["crn"]},
        headers=central,
    )
    assert_problem(taken, 409)
    missing = await client.put(
        f"/v1/persons/{uuid.uuid4()}/identifiers", json={"crn": random_crn()}, headers=central
    )
    assert_problem(missing, 404)
    extra = await client.put(
        f"/v1/persons/{held['person_id']}/identifiers",
        json={"crn": random_crn(), "pnc": "x"},
        headers=central,
    )
    assert_problem(extra, 422)


@pytest.mark.anyio
async def test_changes_past_retention_are_purged_and_an_old_cursor_is_gone(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database, settings: Settings
) -> None:
    central = bearer(make_key(Role.CENTRAL))
    admin = bearer(make_key(Role.ADMIN))
    source = make_key(Role.SOURCE, source="crc-north")
    await push(client, source, make_case_record())
    first_page = (await client.get("/v1/changes", params={"limit": 1}, headers=central)).json()
    old_cursor = first_page["next_cursor"]
    await subscribe(client, admin)
    await push(client, source, make_case_record())
    long_ago = utcnow() - timedelta(days=400)
    db.write(lambda session: session.execute(update(Change).values(occurred_at=long_ago)))

    kept = settings.model_copy(update={"feed": FeedSettings(retention_days=365)})
    purged = db.write(lambda session: retention.purge(session, settings=kept, now=utcnow()))
    # The second record's changes are still owed to the subscriber: they stay.
    assert purged.changes == 2
    remaining = (await client.get("/v1/changes", headers=central)).json()["changes"]
    assert [c["id"] for c in remaining] == ["3", "4"]
    gone = await client.get("/v1/changes", params={"after": old_cursor}, headers=central)
    assert_problem(gone, 410)


def test_delivered_rows_are_purged_after_their_retention(db: Database, settings: Settings) -> None:
    from gateway.services import webhooks

    db.write(
        lambda session: webhooks.create_subscription(
            session,
            name="x",
            url=HOOK,
            event_types=[],
            sources=[],
            secret=None,
            client_id=None,
            settings=settings.webhooks,
            principal=None,
            now=utcnow(),
        )
    )
    ingest_records(db, [make_case_record()])
    old = utcnow() - timedelta(days=30)
    db.write(
        lambda session: session.execute(
            update(Delivery).values(status="delivered", delivered_at=old)
        )
    )
    purged = db.write(lambda session: retention.purge(session, settings=settings, now=utcnow()))
    assert (purged.deliveries, purged.changes) == (2, 0)
    assert db.read(lambda session: session.scalars(select(Subscription)).all())


@pytest.mark.anyio
async def test_the_service_delivers_from_its_own_worker(
    database_url: str, db: Database, make_key: KeyMaker
) -> None:
    import respx

    settings = Settings(
        database_url=database_url,
        log_format="text",
        webhooks=WebhookSettings(allowed_hosts=["central.test"], idle_seconds=0.05),
    )
    app = create_app(settings, db=db)
    admin = bearer(make_key(Role.ADMIN))
    source = make_key(Role.SOURCE, source="crc-north")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK).mock(return_value=httpx.Response(204))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
                await subscribe(http, admin)
                await push(http, source, make_case_record())
                # A safety net, not a timing assertion: the worker wakes on the commit.
                await eventually(lambda: route.call_count >= 2)
    statuses = db.read(lambda session: session.scalars(select(Delivery.status)).all())
    assert statuses == ["delivered", "delivered"]


@pytest.mark.anyio
async def test_writing_back_to_a_merged_person_answers_where_the_survivor_is(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    from gateway.services import review
    from gateway.services.golden import DEFAULT_POLICY

    central = bearer(make_key(Role.CENTRAL))
    source = make_key(Role.SOURCE, source="crc-north")
    [kept, gone] = await push(client, source, make_case_record(), make_case_record())
    db.write(
        lambda session: review.link_record(
            session,
            uuid.UUID(kept["person_id"]),
            source_record_id=record_id_of(db, gone["external_id"]),
            note=None,
            principal=None,
            policy=DEFAULT_POLICY,
            now=utcnow(),
        )
    )
    moved = await client.put(
        f"/v1/persons/{gone['person_id']}/identifiers", json={"crn": random_crn()}, headers=central
    )
    assert moved.status_code == 308
    assert moved.headers["location"] == f"/v1/persons/{kept['person_id']}/identifiers"
    survivor = await client.get(f"/v1/persons/{kept['person_id']}", headers=central)
    assert survivor.json()["provenance"]["identifiers.crn"]["source"] != "central"


@pytest.mark.anyio
async def test_beyond_the_waiter_limit_a_long_poll_is_answered_at_once(
    database_url: str, db: Database, make_key: KeyMaker
) -> None:
    app = create_app(
        Settings(
            database_url=database_url,
            log_format="text",
            webhooks=WebhookSettings(worker_enabled=False),
            feed=FeedSettings(max_waiters=0),
        ),
        db=db,
    )
    central = bearer(make_key(Role.CENTRAL))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
            # A safety net far below `wait`: the request must not be held at all.
            response = await asyncio.wait_for(
                http.get("/v1/changes", params={"wait": 30}, headers=central), timeout=10
            )
    assert response.status_code == 200
    assert response.json()["changes"] == []
