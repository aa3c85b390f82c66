"""Polling a source: cursor kept in the database, no gap and no duplicate across failures, pause
and resume, one replica at a time, the background poller and the `poll` command.

The source is a test double of the case system's `/cases` served through respx (or, where a test
needs to hold a fetch open, a SourceHttp of its own). Nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import select, update
from typer.testing import CliRunner

from adapters import registry
from adapters.base import Adapter
from adapters.canonical import CanonicalAdapter
from adapters.rest_json import RestJsonAdapter
from adapters.rest_json.writer import case_item
from gateway import cli
from gateway.cli import poll as poll_cli
from gateway.db import Database
from gateway.main import create_app
from gateway.models import AuditEntry, Change, SourceRecord, SourceState, utcnow
from gateway.services import ingest, polling
from gateway.services.clients import Role
from gateway.services.polling import PollOutcome, failure_backoff, poll_source
from gateway.services.source_http import HttpxSourceHttp, Interrupted, interruptible_sleep
from gateway.services.sources import ConfiguredSource, SourceRegistry
from gateway.settings import PollSettings, Settings, SourceSettings, get_settings
from schemas import CaseRecord
from tests.api.conftest import assert_problem
from tests.builders import make_case_record
from tests.conftest import KeyMaker, bearer

SOURCE = "crc-vendor"
BASE_URL = "https://vendor.example/api"
TOKEN_ENV = "CRC_VENDOR_TOKEN"
ADAPTERS: dict[str, type[Adapter[Any]]] = {
    "canonical": CanonicalAdapter,
    "rest_json": RestJsonAdapter,
}
INTERVAL = 60.0
MAX_ATTEMPTS = 3


def vendor_items(count: int) -> list[dict[str, Any]]:
    """Synthetic `/cases` items, each a different person (fresh identifiers)."""
    return [case_item(CaseRecord.model_validate(make_case_record())) for _ in range(count)]


class CaseApi:
    """The case system's `GET /cases`: items in change order, cursors `c<offset>`.

    `failures[offset]` answers that many requests for the page at `offset` with `status`.
    """

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.failures: dict[int, int] = {}
        self.status = 500
        self.served: list[str] = []
        self.cursors: list[str | None] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            cursor = request.url.params.get("cursor")
            self.cursors.append(cursor)
            offset = int(cursor[1:]) if cursor else 0
            if self.failures.get(offset, 0) > 0:
                self.failures[offset] -= 1
                return httpx.Response(self.status)
            limit = int(request.url.params["limit"])
            page = self.items[offset : offset + limit]
            self.served.extend(item["id"] for item in page)
            end = offset + len(page)
            next_cursor = f"c{end}" if end < len(self.items) else None
            return httpx.Response(200, json={"items": page, "nextCursor": next_cursor})

    @property
    def ids(self) -> set[str]:
        return {item["id"] for item in self.items}


def source_settings(**poll: Any) -> SourceSettings:
    return SourceSettings(
        adapter="rest_json",
        config={"page_size": 2},
        poll=PollSettings.model_validate(
            {
                "base_url": BASE_URL,
                "interval_seconds": INTERVAL,
                "max_attempts": MAX_ATTEMPTS,
                "token_env": TOKEN_ENV,
                **poll,
            }
        ),
    )


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, log_format="text", sources={SOURCE: source_settings()}
    )


@pytest.fixture
def app(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    # Until rest_json is registered as an entry point, the app is given it here.
    monkeypatch.setattr(registry, "discover", lambda: dict(ADAPTERS))
    return create_app(settings, db=db)


@pytest.fixture
def source(settings: Settings) -> ConfiguredSource:
    return SourceRegistry(ADAPTERS, settings).sources[SOURCE]


def new_http() -> HttpxSourceHttp:
    """A fresh client each time: what carries over between polls is the database, not memory."""
    settings = source_settings().poll
    assert settings is not None
    return HttpxSourceHttp(SOURCE, settings, sleep=lambda _s: None, environ={TOKEN_ENV: "t0ken"})


@pytest.fixture
def vendor() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as router:
        yield router


def serve(vendor: respx.MockRouter, api: CaseApi) -> respx.Route:
    return vendor.get("/cases").mock(side_effect=api)


def poll(db: Database, source: ConfiguredSource, **kwargs: Any) -> polling.PollResult:
    with new_http() as http:
        return poll_source(db, source, http, **kwargs)


def state_of(db: Database) -> SourceState:
    state = db.read(lambda session: session.get(SourceState, SOURCE))
    assert state is not None
    return state


def stored_ids(db: Database) -> list[str]:
    return list(
        db.read(
            lambda s: s.scalars(
                select(SourceRecord.external_id).where(SourceRecord.source == SOURCE)
            ).all()
        )
    )


def assert_each_record_once_in_the_feed(db: Database, expected_ids: set[str]) -> None:
    """Every stored record: once in source_records, one case.created, no updates, nothing else."""
    assert Counter(stored_ids(db)) == Counter(expected_ids)
    rows = db.read(
        lambda s: s.execute(
            select(Change.type, SourceRecord.external_id).join(
                SourceRecord, SourceRecord.id == Change.source_record_id, isouter=True
            )
        ).all()
    )
    case_changes = Counter((kind, external_id) for kind, external_id in rows if external_id)
    assert case_changes == Counter({("case.created", i): 1 for i in expected_ids})
    assert Counter(kind for kind, _ in rows) == Counter(
        {"person.created": len(expected_ids), "case.created": len(expected_ids)}
    )


# --- incremental polling -------------------------------------------------------------------------


def test_polling_is_incremental_with_the_cursor_kept_in_the_database(
    db: Database, source: ConfiguredSource, vendor: respx.MockRouter
) -> None:
    api = CaseApi(vendor_items(5))
    serve(vendor, api)

    first = poll(db, source)

    assert (first.outcome, first.pages, first.records) == (PollOutcome.CAUGHT_UP, 3, 5)
    assert first.counts["created"] == 5
    assert api.cursors == [None, "c2", "c4"]
    state = state_of(db)
    # Caught up: kept the last page's cursor, to see what is appended after it.
    assert (state.cursor, state.records_polled, state.leased_by) == ("c4", 5, None)
    assert state.next_poll_at == state.last_success_at + timedelta(seconds=INTERVAL)  # type: ignore[operator]

    api.items.extend(vendor_items(2))
    second = poll(db, source)

    assert api.cursors[3:] == ["c4", "c6"]
    assert (second.outcome, second.pages) == (PollOutcome.CAUGHT_UP, 2)
    assert (second.counts["created"], second.counts["unchanged"]) == (2, 1)
    assert state_of(db).cursor == "c6"
    assert_each_record_once_in_the_feed(db, api.ids)


def test_an_empty_source_is_caught_up_with_no_cursor(
    db: Database, source: ConfiguredSource, vendor: respx.MockRouter
) -> None:
    serve(vendor, CaseApi([]))

    result = poll(db, source)

    assert (result.outcome, result.pages, result.records) == (PollOutcome.CAUGHT_UP, 1, 0)
    assert state_of(db).cursor is None
    assert stored_ids(db) == []


def test_max_pages_stops_early_and_leaves_the_source_due(
    db: Database, source: ConfiguredSource, vendor: respx.MockRouter
) -> None:
    api = CaseApi(vendor_items(5))
    serve(vendor, api)

    partial = poll(db, source, max_pages=2)
    state = state_of(db)
    rest = poll(db, source, only_if_due=True)

    assert (partial.outcome, partial.records) == (PollOutcome.MORE_PENDING, 4)
    assert (state.cursor, state.next_poll_at) == ("c4", state.last_success_at)
    assert (rest.outcome, rest.records) == (PollOutcome.CAUGHT_UP, 1)
    assert_each_record_once_in_the_feed(db, api.ids)


def test_a_source_not_due_is_skipped_when_only_due_ones_are_polled(
    db: Database, source: ConfiguredSource, vendor: respx.MockRouter
) -> None:
    api = CaseApi(vendor_items(1))
    serve(vendor, api)
    poll(db, source)

    again = poll(db, source, only_if_due=True)

    assert (again.outcome, again.detail) == (PollOutcome.SKIPPED, "not due")
    assert len(api.cursors) == 1


def test_a_rejected_record_is_quarantined_and_polling_moves_on(
    db: Database, source: ConfiguredSource, vendor: respx.MockRouter
) -> None:
    items = vendor_items(3)
    items[1]["riskLevel"] = "Q"
    api = CaseApi(items)
    serve(vendor, api)

    result = poll(db, source)

    assert (result.outcome, result.counts["created"], result.counts["rejected"]) == (
        PollOutcome.CAUGHT_UP,
        2,
        1,
    )
    assert sorted(stored_ids(db)) == sorted([items[0]["id"], items[2]["id"]])


# --- failures: no gap, no duplicate --------------------------------------------------------------


def test_a_failure_mid_poll_resumes_with_no_gap_and_no_duplicate(
    db: Database, source: ConfiguredSource, vendor: respx.MockRouter
) -> None:
    api = CaseApi(vendor_items(7))
    api.failures[4] = MAX_ATTEMPTS  # page 3 answers 500 until the retries run out
    serve(vendor, api)

    failed = poll(db, source)

    assert (failed.outcome, failed.pages, failed.records) == (PollOutcome.FAILED, 2, 4)
    assert failed.detail is not None
    assert "500" in failed.detail
    state = state_of(db)
    assert (state.cursor, state.consecutive_failures, state.leased_by) == ("c4", 1, None)
    assert state.last_error == failed.detail
    assert state.next_poll_at == state.last_error_at + timedelta(seconds=INTERVAL)  # type: ignore[operator]
    assert set(stored_ids(db)) == {item["id"] for item in api.items[:4]}

    recovered = poll(db, source)

    assert (recovered.outcome, recovered.pages, recovered.records) == (PollOutcome.CAUGHT_UP, 2, 3)
    assert api.cursors == [None, "c2", *["c4"] * MAX_ATTEMPTS, "c4", "c6"]
    assert set(api.served) == api.ids
    assert_each_record_once_in_the_feed(db, api.ids)
    state = state_of(db)
    assert (state.consecutive_failures, state.cursor) == (0, "c6")
    assert state.last_error is not None  # kept, with its time, as history


def test_a_crash_while_storing_a_page_stores_none_of_it_and_the_next_poll_resumes(
    db: Database,
    source: ConfiguredSource,
    vendor: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = CaseApi(vendor_items(6))
    serve(vendor, api)
    real_ingest = ingest.ingest_batch
    calls = 0

    def crash_on_the_second_page(*args: Any, **kwargs: Any) -> ingest.BatchResult:
        nonlocal calls
        calls += 1
        result = real_ingest(*args, **kwargs)
        if calls == 2:
            raise RuntimeError("the process died mid-transaction")
        return result

    monkeypatch.setattr(ingest, "ingest_batch", crash_on_the_second_page)

    with pytest.raises(RuntimeError):
        poll(db, source)

    state = state_of(db)
    assert (state.cursor, state.records_polled, state.leased_by) == ("c2", 2, None)
    assert state.last_error == "internal error while storing (RuntimeError); see the logs"
    assert set(stored_ids(db)) == {item["id"] for item in api.items[:2]}

    monkeypatch.setattr(ingest, "ingest_batch", real_ingest)
    poll(db, source)

    assert_each_record_once_in_the_feed(db, api.ids)


def test_repeated_failures_back_off_longer_each_time(
    db: Database, source: ConfiguredSource, vendor: respx.MockRouter
) -> None:
    api = CaseApi(vendor_items(1))
    api.failures[0] = 3 * MAX_ATTEMPTS
    serve(vendor, api)
    gaps = []

    for _ in range(3):
        assert poll(db, source).outcome is PollOutcome.FAILED
        state = state_of(db)
        gaps.append((state.next_poll_at - state.last_error_at).total_seconds())  # type: ignore[operator]

    assert gaps == [INTERVAL, 2 * INTERVAL, 4 * INTERVAL]
    assert state_of(db).consecutive_failures == 3


def test_a_long_retry_after_sets_the_next_poll(
    db: Database, source: ConfiguredSource, vendor: respx.MockRouter
) -> None:
    vendor.get("/cases").respond(429, headers={"Retry-After": "900"})

    result = poll(db, source)

    state = state_of(db)
    assert result.outcome is PollOutcome.FAILED
    assert (state.next_poll_at - state.last_error_at).total_seconds() == 900  # type: ignore[operator]


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [
        (1, None, 60),
        (2, None, 120),
        (4, None, 480),
        (7, None, 3600),
        (50, None, 3600),
        (1, 300.0, 300),
        (3, 10.0, 240),
    ],
)
def test_failure_backoff_doubles_to_an_hour_and_honours_retry_after(
    failures: int, retry_after: float | None, expected: float
) -> None:
    assert failure_backoff(60, failures, retry_after) == expected


def test_the_failure_backoff_never_falls_below_a_long_interval() -> None:
    assert failure_backoff(7200, 5, None) == 7200


# --- pause and resume ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_fatal_error_pauses_the_source_until_an_operator_resumes_it(
    db: Database,
    source: ConfiguredSource,
    client: httpx.AsyncClient,
    make_key: KeyMaker,
) -> None:
    operator = bearer(make_key(Role.OPERATOR))
    api = CaseApi(vendor_items(3))
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as vendor:
        vendor.get("/cases").respond(401)
        paused = poll(db, source)
        skipped = poll(db, source)

        status = (await client.get("/v1/status", headers=operator)).json()
        one = (await client.get(f"/v1/sources/{SOURCE}/status", headers=operator)).json()

    assert paused.outcome is PollOutcome.PAUSED
    assert (skipped.outcome, skipped.detail) == (PollOutcome.SKIPPED, "paused")
    [listed] = [s for s in status["sources"] if s["source"] == SOURCE]
    for shown in (listed["polling"], one["polling"]):
        assert shown["paused"] is True
        assert "401" in shown["paused_reason"]
        assert shown["consecutive_failures"] == 1
        assert shown["next_poll_at"] is None

    with respx.mock(base_url=BASE_URL, assert_all_called=True) as vendor:
        resumed = await client.post(f"/v1/sources/{SOURCE}/resume", headers=operator)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["polling"]["paused"] is False
        assert resumed.json()["polling"]["paused_reason"] is None
        vendor.get("/cases").mock(side_effect=api)
        after = poll(db, source, only_if_due=True)

    assert after.outcome is PollOutcome.CAUGHT_UP
    assert_each_record_once_in_the_feed(db, api.ids)
    audits = db.read(
        lambda s: s.scalars(select(AuditEntry).where(AuditEntry.resource == "sources")).all()
    )
    assert [(a.action, a.detail) for a in audits] == [
        ("administer", {"source": SOURCE, "resumed": True})
    ]


@pytest.mark.anyio
async def test_status_shows_whether_there_is_a_cursor_never_the_cursor(
    db: Database, source: ConfiguredSource, client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    operator = bearer(make_key(Role.OPERATOR))
    before = (await client.get(f"/v1/sources/{SOURCE}/status", headers=operator)).json()
    listed = (await client.get("/v1/status", headers=operator)).json()
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as vendor:
        vendor.get("/cases").mock(side_effect=CaseApi(vendor_items(3)))
        poll(db, source)
    after = await client.get(f"/v1/sources/{SOURCE}/status", headers=operator)

    # Polled but never polled yet: listed, with empty polling state.
    assert [s["source"] for s in listed["sources"]] == [SOURCE]
    assert before["polling"]["cursor_present"] is False
    assert before["polling"]["records_polled"] == 0
    polling_state = after.json()["polling"]
    assert polling_state["cursor_present"] is True
    assert polling_state["records_polled"] == 3
    assert polling_state["last_success_at"] is not None
    assert after.json()["created"] == 3
    assert "c2" not in after.text


@pytest.mark.anyio
async def test_resuming_a_running_source_changes_nothing_and_an_unpolled_one_is_404(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    operator = bearer(make_key(Role.OPERATOR))

    running = await client.post(f"/v1/sources/{SOURCE}/resume", headers=operator)
    pushed = await client.post("/v1/sources/crc-north/resume", headers=operator)
    invalid = await client.post("/v1/sources/NOT%20A%20SOURCE/resume", headers=operator)

    assert running.status_code == 200
    assert running.json()["polling"]["paused"] is False
    assert_problem(pushed, 404)
    assert_problem(invalid, 422)


@pytest.mark.anyio
async def test_a_pushing_source_shows_no_polling(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    response = await client.get(
        "/v1/sources/crc-north/status", headers=bearer(make_key(Role.OPERATOR))
    )

    assert response.json()["polling"] is None


# --- one replica at a time -----------------------------------------------------------------------


class HeldHttp:
    """A SourceHttp whose first fetch waits until released, to hold a poll mid-flight."""

    def __init__(self, answer: Callable[[Mapping[str, str]], Any]) -> None:
        self.answer = answer
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.release.wait(timeout=30), "the test never released the fetch"
        return self.answer(params or {})


def page_answer(items: list[dict[str, Any]]) -> Callable[[Mapping[str, str]], Any]:
    """Serve `items` as pages through a SourceHttp (no HTTP involved)."""

    def answer(params: Mapping[str, str]) -> Any:
        offset = int(params["cursor"][1:]) if "cursor" in params else 0
        limit = int(params["limit"])
        end = min(offset + limit, len(items))
        return {"items": items[offset:end], "nextCursor": f"c{end}" if end < len(items) else None}

    return answer


def test_a_source_being_polled_is_skipped_by_another_poller(
    db: Database, source: ConfiguredSource
) -> None:
    items = vendor_items(4)
    held = HeldHttp(page_answer(items))
    other = _free(items)
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(poll_source, db, source, held)
        assert held.entered.wait(timeout=30)

        second = poll_source(db, source, other)

        held.release.set()
        finished = first.result(timeout=60)

    assert (second.outcome, second.detail) == (
        PollOutcome.SKIPPED,
        "being polled by another gateway",
    )
    assert other.calls == 1  # it never fetched
    assert finished.outcome is PollOutcome.CAUGHT_UP
    assert_each_record_once_in_the_feed(db, {item["id"] for item in items})


def test_an_expired_lease_is_taken_over_and_the_late_poller_stores_nothing(
    db: Database, source: ConfiguredSource
) -> None:
    items = vendor_items(4)
    stalled = HeldHttp(page_answer(items))
    with ThreadPoolExecutor(max_workers=1) as pool:
        late = pool.submit(poll_source, db, source, stalled)
        assert stalled.entered.wait(timeout=30)
        # The stalled replica's lease runs out (it hung, say, far past its timeouts).
        db.write(
            lambda s: s.execute(
                update(SourceState)
                .where(SourceState.source == SOURCE)
                .values(leased_until=utcnow() - timedelta(seconds=1))
            )
        )

        takeover = poll_source(db, source, _free(items))

        stalled.release.set()
        late_result = late.result(timeout=60)

    assert takeover.outcome is PollOutcome.CAUGHT_UP
    assert (late_result.outcome, late_result.detail) == (
        PollOutcome.SKIPPED,
        "another gateway took the source over",
    )
    assert late_result.records == 0
    assert state_of(db).leased_by is None
    assert_each_record_once_in_the_feed(db, {item["id"] for item in items})


def _free(items: list[dict[str, Any]]) -> HeldHttp:
    """A HeldHttp that never holds."""
    held = HeldHttp(page_answer(items))
    held.calls = 1
    return held


@pytest.mark.postgres_only
def test_a_claim_skips_a_row_another_replica_has_locked(
    db: Database, source: ConfiguredSource
) -> None:
    db.write(lambda s: polling.state_repo.ensure(s, SOURCE))
    locked = threading.Event()
    done = threading.Event()

    def hold_the_row() -> None:
        def work(session: Any) -> None:
            polling.state_repo.lock(session, SOURCE)
            locked.set()
            assert done.wait(timeout=30)

        db.write(work)

    http = _free(vendor_items(1))
    with ThreadPoolExecutor(max_workers=1) as pool:
        holder = pool.submit(hold_the_row)
        assert locked.wait(timeout=30)
        # Does not wait for the other transaction: SKIP LOCKED passes the row by.
        result = poll_source(db, source, http)
        done.set()
        holder.result(timeout=30)

    assert (result.outcome, result.detail) == (
        PollOutcome.SKIPPED,
        "another gateway is claiming it",
    )
    assert http.calls == 1


class CountingHttp:
    """Serves pages to many pollers at once and records how many fetches overlapped."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.answer = page_answer(items)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fetches = 0
        self.pause = threading.Event()

    def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        with self.lock:
            self.in_flight += 1
            self.fetches += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            # Long enough that other pollers come knocking while this one fetches.
            self.pause.wait(timeout=0.005)
            return self.answer(params or {})
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.mark.postgres_only
def test_concurrent_pollers_on_postgresql_never_poll_a_source_at_once(
    db: Database, source: ConfiguredSource
) -> None:
    items = vendor_items(20)
    http = CountingHttp(items)
    start = threading.Barrier(6)

    def replica() -> Counter[PollOutcome]:
        outcomes: Counter[PollOutcome] = Counter()
        start.wait(timeout=30)
        for _ in range(15):
            outcomes[poll_source(db, source, http).outcome] += 1
        return outcomes

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = [f.result(timeout=120) for f in [pool.submit(replica) for _ in range(6)]]

    total = sum(results, Counter())
    assert total[PollOutcome.SKIPPED] > 0, "the replicas did overlap"
    assert total[PollOutcome.CAUGHT_UP] > 0
    assert http.most_in_flight == 1
    assert_each_record_once_in_the_feed(db, {item["id"] for item in items})


# --- the background poller and the app -----------------------------------------------------------


async def wait_until(condition: Callable[[], bool]) -> None:
    """Yield to the poller until `condition` holds (a hang guard, not a timing assertion)."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


@pytest.mark.anyio
async def test_the_background_poller_polls_due_sources_until_stopped(
    db: Database, source: ConfiguredSource
) -> None:
    items = vendor_items(5)
    async with polling.background_polling(
        db, [source], http_factory=lambda _s: _free(items)
    ) as poller:
        assert poller is not None
        await wait_until(lambda: len(stored_ids(db)) == len(items))

    assert poller.stopping.is_set()
    assert poller.rounds >= 1
    assert_each_record_once_in_the_feed(db, {item["id"] for item in items})
    assert state_of(db).leased_by is None


@pytest.mark.anyio
async def test_stopping_the_poller_cuts_a_retry_wait_short_and_hands_the_source_back(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "t0ken")
    settings = Settings(
        database_url=database_url, sources={SOURCE: source_settings(max_attempts=20)}
    )
    patient = SourceRegistry(ADAPTERS, settings).sources[SOURCE]
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as vendor:
        route = vendor.get("/cases").respond(503)
        async with polling.background_polling(db, [patient]):
            # 20 attempts with growing waits: once called, the poll is somewhere in its retries.
            await wait_until(lambda: route.called)

    state = state_of(db)
    assert route.call_count < 20
    assert (state.leased_by, state.consecutive_failures, state.last_error) == (None, 0, None)
    assert state.next_poll_at is not None


def test_an_interruptible_sleep_raises_once_stopping() -> None:
    stopping = threading.Event()
    sleep = interruptible_sleep(stopping)

    sleep(0)
    stopping.set()

    with pytest.raises(Interrupted):
        sleep(3600)


@pytest.mark.anyio
async def test_the_app_polls_in_the_background_only_when_a_source_is_polled(
    app: FastAPI, db: Database, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "t0ken")
    api = CaseApi(vendor_items(3))
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as vendor:
        route = vendor.get("/cases").mock(side_effect=api)
        async with app.router.lifespan_context(app):
            poller = app.state.poller
            assert isinstance(poller, polling.BackgroundPoller)
            await wait_until(lambda: len(stored_ids(db)) == 3)
        assert poller.stopping.is_set()
    assert route.calls.last.request.headers["Authorization"] == "Bearer t0ken"
    assert_each_record_once_in_the_feed(db, api.ids)

    plain = create_app(Settings(database_url=database_url, log_format="text"), db=db)
    async with plain.router.lifespan_context(plain):
        assert plain.state.poller is None


# --- the poll command ----------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'poll.db'}")
    monkeypatch.setenv(
        "GATEWAY_SOURCES", json.dumps({SOURCE: source_settings().model_dump(mode="json")})
    )
    monkeypatch.setenv(TOKEN_ENV, "t0ken")
    monkeypatch.setattr(registry, "discover", lambda: dict(ADAPTERS))
    # The command sets up logging for a process of its own; leave pytest's alone.
    monkeypatch.setattr(poll_cli, "configure_logging", lambda **_kw: None)
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(cli.app, ["migrate"]).exit_code == 0
    yield
    get_settings.cache_clear()


def test_poll_once_polls_due_sources_and_reports(cli_env: None) -> None:
    runner = CliRunner()
    api = CaseApi(vendor_items(3))
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as vendor:
        vendor.get("/cases").mock(side_effect=api)
        first = runner.invoke(cli.app, ["poll", "--once"])
        not_due = runner.invoke(cli.app, ["poll", "--once", "--source", SOURCE])
        forced = runner.invoke(cli.app, ["poll", "--once", "--force"])

    assert first.exit_code == 0, first.output
    assert f"{SOURCE}: caught up; 2 page(s), 3 record(s) (created 3," in first.output
    assert not_due.exit_code == 0
    assert f"{SOURCE}: skipped (not due)" in not_due.output
    assert forced.exit_code == 0
    assert "unchanged 1" in forced.output


def test_poll_once_exits_1_when_a_source_fails_and_2_for_an_unknown_source(cli_env: None) -> None:
    runner = CliRunner()
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as vendor:
        vendor.get("/cases").respond(403)
        failed = runner.invoke(cli.app, ["poll", "--once"])
    unknown = runner.invoke(cli.app, ["poll", "--once", "--source", "crc-nowhere"])

    assert failed.exit_code == 1
    assert f"{SOURCE}: paused after 0 page(s)" in failed.output
    assert "403" in failed.output
    assert unknown.exit_code == 2
    assert "not a polled source: crc-nowhere" in unknown.output
