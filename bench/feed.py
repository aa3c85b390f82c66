"""Change feed benchmark: feed read throughput and push-to-webhook latency, through a real gateway.

For each engine (SQLite and PostgreSQL by default), on a fresh migrated database:

1. **Feed read.** N changes are published straight through `gateway.services.changes.publish`
   (the fast path: no ingest), a real `crc-gateway serve` (uvicorn) is started, and the whole feed
   is read over HTTP with `GET /v1/changes?limit=1000&after=<cursor>` until `has_more` is false,
   several times; then only `type=case.created` (a tenth of the feed). The baseline, measured in
   the same run, is a plain SQLAlchemy Core keyset read of the same pages from the same database.
2. **Webhook latency.** With a subscription to `person.created` pointing at a small HTTP receiver
   in this process, single-record batches are pushed at a steady rate to
   `POST /v1/sources/crc-north/records`; for each, the time from the push's 200 response (the
   ack) to the webhook naming its person arriving, served by the in-service delivery worker. The
   baseline is the push round trip itself.

Figures are printed; nothing passes or fails on time.

    .venv/bin/python bench/feed.py                       # both engines, 2 to 2.5 minutes
    .venv/bin/python bench/feed.py --quick               # smoke run, about 25 seconds
    .venv/bin/python bench/feed.py --database sqlite --changes 100000 --duration 60
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Final, cast

import httpx
import orjson

# The database handling (fresh SQLite files, DROP/CREATE of crc_bench* databases and the refusal
# of any other name) and the server process are bench/ingest.py's, so every benchmark treats them
# the same way.
from ingest import (
    PostgresDatabases,
    SqliteDatabases,
    gateway_env,
    gateway_server,
    percentile,
)
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, Table, bindparam, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from gateway import migrate
from gateway.db import Database
from gateway.models import Change, Delivery, utcnow
from gateway.services import changes, clients, webhooks
from gateway.services.clients import Role
from gateway.services.golden import DEFAULT_POLICY, LinkedRecord, build_golden
from gateway.services.ingest import change_row
from gateway.settings import LimitSettings, Settings, WebhookSettings
from schemas import CaseRecord

REPO: Final = Path(__file__).resolve().parents[1]
SOURCE: Final = "crc-north"
DEFAULT_POSTGRES_URL: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/crc_bench_feed"
FILTERED_TYPE: Final = "case.created"
CASE_EVERY: Final = 10  # every tenth prefilled change is a case.created, the rest person.updated
PREFILL_BATCH: Final = 1000  # changes per publish transaction
SNAPSHOT_POOL: Final = 500  # distinct canonical documents the prefilled snapshots cycle through
REQUEST_TIMEOUT_S: Final = 120.0
ENGINES: Final = ("sqlite", "postgresql")


# --------------------------------------------------------------------------------------------
# Data: canonical documents from the test builders, shaped as ingest's own snapshots.
# --------------------------------------------------------------------------------------------


def case_record_builder() -> Callable[[], dict[str, Any]]:
    """`tests.builders.make_case_record`, importable from a checkout (the repository root)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.builders import make_case_record

    return make_case_record


@dataclass(frozen=True)
class SnapshotDocuments:
    """What ingest puts in a person and a case snapshot, for one synthetic record."""

    external_id: str
    person: dict[str, Any]
    provenance: dict[str, dict[str, str]]
    case: dict[str, Any]


def snapshot_documents(make_record: Callable[[], dict[str, Any]]) -> SnapshotDocuments:
    record = CaseRecord.model_validate(make_record())
    external_id = record.provenance.external_id
    # The golden record and its per-field provenance, as survivorship builds them on ingest.
    golden = build_golden(
        [
            LinkedRecord(
                source=SOURCE,
                external_id=external_id,
                received_at=utcnow(),
                person=record.person.model_dump(mode="json"),
            )
        ],
        DEFAULT_POLICY,
    )
    case = record.case.model_dump(mode="json") if record.case is not None else {}
    return SnapshotDocuments(external_id, golden.person, golden.provenance, case)


def feed_rows(count: int, pool: Sequence[SnapshotDocuments], now: datetime) -> list[dict[str, Any]]:
    """`count` change rows: every CASE_EVERY-th a case.created, the others person.updated."""
    rows = []
    for index in range(count):
        documents = pool[index % len(pool)]
        person_id = uuid.uuid4()
        if index % CASE_EVERY == CASE_EVERY - 1:
            case_id = uuid.uuid4()
            rows.append(
                change_row(
                    FILTERED_TYPE,
                    now,
                    person_id=person_id,
                    case_id=case_id,
                    source=SOURCE,
                    snapshot={
                        "case_id": str(case_id),
                        "person_id": str(person_id),
                        "source": SOURCE,
                        "external_id": documents.external_id,
                        "version": 1,
                        "case": documents.case,
                    },
                )
            )
        else:
            rows.append(
                change_row(
                    "person.updated",
                    now,
                    person_id=person_id,
                    source=SOURCE,
                    snapshot={
                        "person_id": str(person_id),
                        "version": 2,
                        "person": documents.person,
                        "provenance": documents.provenance,
                    },
                )
            )
    return rows


def prefill(database: Database, rows: Sequence[dict[str, Any]]) -> float:
    """Publish the rows in PREFILL_BATCH-change transactions; wall seconds."""
    started = time.perf_counter()
    for start in range(0, len(rows), PREFILL_BATCH):
        database.write(functools.partial(_publish, batch=list(rows[start : start + PREFILL_BATCH])))
    return time.perf_counter() - started


def _publish(session: Session, *, batch: list[dict[str, Any]]) -> list[int]:
    return changes.publish(session, batch, now=utcnow())


# --------------------------------------------------------------------------------------------
# Databases: bench/ingest.py's, except that this benchmark drops its PostgreSQL database after.
# --------------------------------------------------------------------------------------------


class ScratchPostgres(PostgresDatabases):
    """A crc_bench* PostgreSQL database created for one engine's run and dropped after it."""

    def drop(self, label: str) -> None:
        from psycopg import sql

        with self._admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self._name(label))
                )
            )

    def check_reachable(self) -> None:
        import psycopg

        try:
            with self._admin() as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as error:
            raise SystemExit(
                f"PostgreSQL at {self.url.host}:{self.url.port} is not reachable "
                f"({type(error).__name__}); use --database sqlite or --postgres-url"
            ) from None


# --------------------------------------------------------------------------------------------
# The feed read: over HTTP through the gateway, and the Core floor beside it.
# --------------------------------------------------------------------------------------------


@dataclass
class FeedRead:
    changes: int
    pages: int
    wall_s: float
    page_ms: list[float]
    types: Counter[str] = field(default_factory=Counter)

    @property
    def changes_per_s(self) -> float:
        return self.changes / self.wall_s


def read_over_http(
    client: httpx.Client, *, page_size: int, types: Sequence[str], max_pages: int | None = None
) -> FeedRead:
    """Follow `next_cursor` from the start until `has_more` is false; checks the order."""
    cursor: str | None = None
    page_ms: list[float] = []
    seen, last_id = Counter[str](), 0
    started = time.perf_counter()
    while True:
        params: dict[str, Any] = {"limit": page_size}
        if cursor is not None:
            params["after"] = cursor
        if types:
            params["type"] = list(types)
        sent = time.perf_counter()
        response = client.get("/v1/changes", params=params)
        page_ms.append((time.perf_counter() - sent) * 1000)
        if response.status_code != 200:
            raise RuntimeError(
                f"GET /v1/changes: HTTP {response.status_code}: {response.text[:500]}"
            )
        document = orjson.loads(response.content)
        for change in document["changes"]:
            position = int(change["id"])
            if position <= last_id:
                raise RuntimeError(f"the feed went back from {last_id} to {position}")
            last_id = position
            seen[change["type"]] += 1
        if not document["has_more"] or len(page_ms) == max_pages:
            break
        cursor = document["next_cursor"]
    wall = time.perf_counter() - started
    return FeedRead(sum(seen.values()), len(page_ms), wall, page_ms, seen)


def read_from_table(engine: Engine, *, page_size: int, types: Sequence[str]) -> FeedRead:
    """The floor: a Core keyset read of the same pages, snapshots decoded, no HTTP."""
    table = cast(Table, Change.__table__)
    statement = select(table).where(table.c.seq > bindparam("after"))
    if types:
        statement = statement.where(table.c.type.in_(list(types)))
    statement = statement.order_by(table.c.seq).limit(page_size)
    page_ms: list[float] = []
    seen, after = Counter[str](), 0
    with engine.connect() as connection:  # opened outside the clock, as the server's pool is
        started = time.perf_counter()
        while True:
            sent = time.perf_counter()
            rows = connection.execute(statement, {"after": after}).all()
            page_ms.append((time.perf_counter() - sent) * 1000)
            for row in rows:
                seen[row.type] += 1
            if len(rows) < page_size:
                break
            after = rows[-1].seq
        wall = time.perf_counter() - started
    return FeedRead(sum(seen.values()), len(page_ms), wall, page_ms, seen)


@dataclass
class FeedFigures:
    label: str
    changes: int
    pages: int
    changes_per_s: float  # median over the timed reads
    page_p50_ms: float  # over every page of every timed read
    page_p99_ms: float
    baseline_changes_per_s: float
    baseline_page_p50_ms: float
    ratio: float  # median of the per-read gateway / baseline ratios
    reads_per_s: list[float]
    baseline_reads_per_s: list[float]


def bench_feed(
    label: str,
    client: httpx.Client,
    engine: Engine,
    *,
    page_size: int,
    reads: int,
    types: Sequence[str],
    expected: Counter[str],
    console: Console,
) -> FeedFigures:
    """An untimed warm-up page, then `reads` timed reads of each side, alternating first."""
    read_over_http(client, page_size=page_size, types=types, max_pages=1)
    gateway: list[FeedRead] = []
    baseline: list[FeedRead] = []
    for number in range(reads):
        sides: list[Callable[[], None]] = [
            lambda: gateway.append(read_over_http(client, page_size=page_size, types=types)),
            lambda: baseline.append(read_from_table(engine, page_size=page_size, types=types)),
        ]
        for side in sides if number % 2 == 0 else reversed(sides):
            side()
        for read, side_name in ((gateway[-1], "gateway"), (baseline[-1], "baseline")):
            if read.types != expected:
                raise RuntimeError(
                    f"{label}: the {side_name} read {dict(read.types)}, expected {dict(expected)}"
                )
        console.print(
            f"  {label} read {number + 1}/{reads}: {gateway[-1].changes_per_s:,.0f} changes/s "
            f"over HTTP in {gateway[-1].wall_s:.2f}s ({gateway[-1].pages} pages); "
            f"baseline {baseline[-1].changes_per_s:,.0f} changes/s"
        )
    pages = [ms for read in gateway for ms in read.page_ms]
    base_pages = [ms for read in baseline for ms in read.page_ms]
    return FeedFigures(
        label=label,
        changes=gateway[0].changes,
        pages=gateway[0].pages,
        changes_per_s=statistics.median(read.changes_per_s for read in gateway),
        page_p50_ms=percentile(pages, 0.50),
        page_p99_ms=percentile(pages, 0.99),
        baseline_changes_per_s=statistics.median(read.changes_per_s for read in baseline),
        baseline_page_p50_ms=percentile(base_pages, 0.50),
        ratio=statistics.median(
            g.changes_per_s / b.changes_per_s for g, b in zip(gateway, baseline, strict=True)
        ),
        reads_per_s=[read.changes_per_s for read in gateway],
        baseline_reads_per_s=[read.changes_per_s for read in baseline],
    )


# --------------------------------------------------------------------------------------------
# Webhooks: a receiver in this process, and pushes at a steady rate.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    at: float  # time.perf_counter() when the whole request had been read
    webhook_id: str
    type: str | None
    person_id: str | None


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a worker opening ten connections at
    # once, and each dropped one costs a 1 s retransmit that would be counted as latency.
    request_queue_size = 128


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 answering 200 at once and noting each arrival."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the worker's httpx client expects

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                at = time.perf_counter()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                receiver.note(at, self.headers.get("webhook-id") or "", body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = _ReceiverServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def note(self, at: float, webhook_id: str, body: bytes) -> None:
        try:
            document = orjson.loads(body)
            data = document.get("data") or {}
            kind, person_id = document.get("type"), data.get("person_id")
        except (orjson.JSONDecodeError, AttributeError):
            kind, person_id = None, None
        with self._arrived:
            self.arrivals.append(Arrival(at, webhook_id, kind, person_id))
            self._arrived.notify_all()

    def wait_for(self, person_ids: set[str], timeout: float) -> None:
        """Until a webhook has arrived for every one of `person_ids`, or `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                missing = person_ids - {arrival.person_id for arrival in self.arrivals}
                remaining = deadline - time.monotonic()
                if not missing or remaining <= 0:
                    return
                self._arrived.wait(min(remaining, 0.5))

    def snapshot(self) -> list[Arrival]:
        with self._arrived:
            return list(self.arrivals)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@dataclass
class Push:
    index: int
    scheduled: float
    sent: float
    acked: float
    person_id: str


def push_steadily(
    base_url: str,
    key: str,
    bodies: Sequence[bytes],
    *,
    rate: float,
    pushers: int,
    warm_up: Sequence[bytes],
    on_warm: Callable[[set[str]], None],
    on_ack: Callable[[], None],
) -> list[Push]:
    """Push body i at start + i/rate from `pushers` keep-alive clients; returns every push.

    Before the clock, each client pushes one of `warm_up` (the first ingest, match and delivery
    of a fresh server are slower) and `on_warm` is handed their persons to wait for.
    """
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    pool = [
        httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)
        for _ in range(pushers)
    ]
    pushes: list[Push | None] = [None] * len(bodies)
    cursor = itertools.count()
    lock, failed, errors = threading.Lock(), threading.Event(), list[str]()
    path = f"/v1/sources/{SOURCE}/records"

    def fail(message: str) -> None:
        with lock:
            errors.append(message)
        failed.set()

    def worker(client: httpx.Client, start: float) -> None:
        while not failed.is_set():
            with lock:
                index = next(cursor)
            if index >= len(bodies):
                return
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            try:
                response = client.post(path, content=bodies[index])
            except httpx.HTTPError as error:
                fail(f"push {index}: {type(error).__name__}: {error}")
                return
            acked = time.perf_counter()
            if response.status_code != 200:
                fail(f"push {index}: HTTP {response.status_code}: {response.text[:500]}")
                return
            try:
                result = orjson.loads(response.content)["results"][0]
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                fail(f"push {index}: unreadable answer {response.text[:500]}")
                return
            if result.get("outcome") != "created" or not result.get("person_id"):
                fail(
                    f"push {index}: outcome {result.get('outcome')!r}, "
                    f"errors {result.get('errors')}"
                )
                return
            pushes[index] = Push(index, scheduled, sent, acked, str(result["person_id"]))
            on_ack()

    try:
        warm_persons: set[str] = set()
        for client, body in zip(pool, warm_up, strict=True):
            # Outside the clock: opens the connection, authenticates, ingests once.
            warm = client.post(path, content=body)
            if warm.status_code != 200:
                raise RuntimeError(f"warm-up failed: HTTP {warm.status_code}: {warm.text[:500]}")
            warm_persons.add(str(orjson.loads(warm.content)["results"][0]["person_id"]))
        on_warm(warm_persons)
        start = time.perf_counter() + 0.05
        threads = [
            threading.Thread(target=worker, args=(client, start), daemon=True) for client in pool
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for client in pool:
            client.close()
    if errors:
        raise RuntimeError("the gateway refused a push:\n" + "\n".join(errors))
    done = [push for push in pushes if push is not None]
    if len(done) != len(bodies):
        raise RuntimeError(f"only {len(done)} of {len(bodies)} pushes completed")
    return done


@dataclass
class WebhookFigures:
    pushes: int
    target_rate: float
    achieved_rate: float  # pushes / (last send - first send) * (n - 1) / n
    schedule_lag_max_ms: float  # how far behind its slot the latest push went out
    webhooks: int  # distinct persons whose person.created webhook arrived
    missing: int
    duplicates: int  # further deliveries of a webhook-id already received
    unexpected: int  # webhooks naming no pushed person
    before_ack: int  # webhooks that arrived before their push's response did
    latency_p50_ms: float | None  # ack -> webhook received
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    send_to_webhook_p50_ms: float | None
    send_to_webhook_p99_ms: float | None
    rtt_p50_ms: float  # the baseline: push sent -> response read
    rtt_p99_ms: float
    ratio_p50: float | None  # latency p50 / round trip p50
    outbox: dict[str, int]
    # Per push, in push order (for --json): ack -> webhook (None if missing) and round trip.
    ack_to_webhook_ms: list[float | None] = field(default_factory=list, repr=False)
    round_trip_ms: list[float] = field(default_factory=list, repr=False)


def webhook_figures(
    pushes: Sequence[Push],
    arrivals: Sequence[Arrival],
    *,
    rate: float,
    outbox: dict[str, int],
    ignored: set[str],
) -> WebhookFigures:
    arrivals = [arrival for arrival in arrivals if arrival.person_id not in ignored]
    first: dict[str, Arrival] = {}
    ids = Counter(arrival.webhook_id for arrival in arrivals)
    for arrival in sorted(arrivals, key=lambda a: a.at):
        if arrival.person_id is not None and arrival.type == "person.created":
            first.setdefault(arrival.person_id, arrival)
    pushed = {push.person_id for push in pushes}
    latencies = [(first[p.person_id].at - p.acked) * 1000 for p in pushes if p.person_id in first]
    from_send = [(first[p.person_id].at - p.sent) * 1000 for p in pushes if p.person_id in first]
    rtts = [(push.acked - push.sent) * 1000 for push in pushes]
    sends = sorted(push.sent for push in pushes)
    span = sends[-1] - sends[0]

    def pct(values: Sequence[float], fraction: float) -> float | None:
        return percentile(values, fraction) if values else None

    p50 = pct(latencies, 0.50)
    rtt_p50 = percentile(rtts, 0.50)
    return WebhookFigures(
        pushes=len(pushes),
        target_rate=rate,
        achieved_rate=(len(sends) - 1) / span if span > 0 else float("nan"),
        schedule_lag_max_ms=max((push.sent - push.scheduled) * 1000 for push in pushes),
        webhooks=len(pushed & first.keys()),
        missing=len(pushed - first.keys()),
        duplicates=sum(count - 1 for count in ids.values()),
        unexpected=sum(1 for arrival in arrivals if arrival.person_id not in pushed),
        before_ack=sum(1 for latency in latencies if latency < 0),
        latency_p50_ms=p50,
        latency_p95_ms=pct(latencies, 0.95),
        latency_p99_ms=pct(latencies, 0.99),
        latency_max_ms=max(latencies) if latencies else None,
        send_to_webhook_p50_ms=pct(from_send, 0.50),
        send_to_webhook_p99_ms=pct(from_send, 0.99),
        rtt_p50_ms=rtt_p50,
        rtt_p99_ms=percentile(rtts, 0.99),
        ratio_p50=p50 / rtt_p50 if p50 is not None else None,
        outbox=outbox,
        ack_to_webhook_ms=[
            (first[p.person_id].at - p.acked) * 1000 if p.person_id in first else None
            for p in pushes
        ],
        round_trip_ms=rtts,
    )


def outbox_counts(database: Database, *, settle_s: float) -> dict[str, int]:
    """Deliveries by status, once none is pending or after `settle_s` seconds.

    The worker records an outcome after the receiver has answered, so the last few rows can
    still be pending just after their webhooks arrived.
    """
    deadline = time.monotonic() + settle_s
    while True:
        rows = database.read(
            lambda session: session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)
            ).all()
        )
        counts = {str(status): int(count) for status, count in rows}
        if not counts.get("pending") or time.monotonic() >= deadline:
            return counts
        time.sleep(0.2)


def bench_webhooks(
    base_url: str,
    source_key: str,
    database: Database,
    receiver: WebhookReceiver,
    bodies: Sequence[bytes],
    warm_up: Sequence[bytes],
    *,
    args: argparse.Namespace,
    console: Console,
) -> WebhookFigures:
    warm_persons: set[str] = set()

    def warmed(persons: set[str]) -> None:
        warm_persons.update(persons)
        receiver.wait_for(persons, args.drain_timeout)

    with Progress(
        TextColumn("  pushes"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=4,
    ) as progress:
        task = progress.add_task("pushes", total=len(bodies))
        pushes = push_steadily(
            base_url,
            source_key,
            bodies,
            rate=args.rate,
            pushers=args.pushers,
            warm_up=warm_up,
            on_warm=warmed,
            on_ack=lambda: progress.advance(task),
        )
    receiver.wait_for({push.person_id for push in pushes}, args.drain_timeout)
    outbox = outbox_counts(database, settle_s=5.0)
    return webhook_figures(
        pushes, receiver.snapshot(), rate=args.rate, outbox=outbox, ignored=warm_persons
    )


# --------------------------------------------------------------------------------------------
# One engine: database, clients, subscription, server, both measurements.
# --------------------------------------------------------------------------------------------


@dataclass
class Workload:
    """Built once, before any clock, and given to every engine alike."""

    rows: list[dict[str, Any]]  # the prefilled feed
    bodies: list[bytes]  # one single-record push each
    warm_up: list[bytes]  # one untimed push per pushing client

    @property
    def expected(self) -> Counter[str]:
        return Counter(row["type"] for row in self.rows)


def build_workload(args: argparse.Namespace, make_record: Callable[[], dict[str, Any]]) -> Workload:
    pool = [snapshot_documents(make_record) for _ in range(min(SNAPSHOT_POOL, args.changes))]
    rows = feed_rows(args.changes, pool, utcnow())

    def body() -> bytes:
        return orjson.dumps({"records": [make_record()]})

    bodies = [body() for _ in range(round(args.rate * args.duration))]
    return Workload(rows, bodies, [body() for _ in range(args.pushers)])


@dataclass
class EngineResult:
    engine: str
    version: str
    prefill_s: float
    feed: list[FeedFigures]
    webhooks: WebhookFigures


@contextmanager
def fresh_database(databases: SqliteDatabases | ScratchPostgres) -> Iterator[str]:
    url = databases.fresh("gateway")
    try:
        yield url
    finally:
        databases.drop("gateway")


def bench_engine(
    databases: SqliteDatabases | ScratchPostgres,
    args: argparse.Namespace,
    workload: Workload,
    workdir: Path,
    console: Console,
) -> EngineResult:
    engine_name = databases.engine
    started = time.monotonic()
    console.print(f"[bold]{engine_name}[/bold]")
    rows = workload.rows
    expected_all = workload.expected
    expected_filtered = Counter({FILTERED_TYPE: expected_all[FILTERED_TYPE]})
    pushes = len(workload.bodies)

    with fresh_database(databases) as url, WebhookReceiver() as receiver:
        database = Database.from_settings(Settings(database_url=url))
        try:
            migrate.upgrade(database.engine)
            version = databases.version(url)
            now = utcnow()
            (_, central_key), (_, source_key) = database.write(
                lambda session: (
                    clients.create(
                        session, name="bench central", role=Role.CENTRAL, source=None, now=now
                    ),
                    clients.create(
                        session, name="bench source", role=Role.SOURCE, source=SOURCE, now=now
                    ),
                )
            )
            prefill_s = prefill(database, rows)
            console.print(
                f"  {engine_name} ({version}): {len(rows):,} changes published in "
                f"{prefill_s:.1f}s ({len(rows) / prefill_s:,.0f} changes/s)"
            )
            # Before any push: a subscription is owed only changes committed after it.
            database.write(
                lambda session: webhooks.create_subscription(
                    session,
                    name="bench",
                    url=receiver.url,
                    event_types=["person.created"],
                    sources=[],
                    secret=None,
                    client_id=None,
                    settings=WebhookSettings(allowed_hosts=["127.0.0.1"], require_https=False),
                    principal=None,
                    now=utcnow(),
                )
            )
            env = gateway_env(url, 1, 0)
            env["GATEWAY_WEBHOOKS__ALLOWED_HOSTS"] = '["127.0.0.1"]'
            env["GATEWAY_WEBHOOKS__REQUIRE_HTTPS"] = "false"
            with (
                gateway_server(env, workdir / f"server-{engine_name}.log") as base_url,
                httpx.Client(
                    base_url=base_url,
                    headers={"Authorization": f"Bearer {central_key}"},
                    timeout=REQUEST_TIMEOUT_S,
                ) as reader,
            ):
                feed = [
                    bench_feed(
                        "whole feed",
                        reader,
                        database.engine,
                        page_size=args.page_size,
                        reads=args.reads,
                        types=(),
                        expected=expected_all,
                        console=console,
                    ),
                    bench_feed(
                        f"type={FILTERED_TYPE}",
                        reader,
                        database.engine,
                        page_size=args.page_size,
                        reads=args.reads,
                        types=(FILTERED_TYPE,),
                        expected=expected_filtered,
                        console=console,
                    ),
                ]
                console.print(
                    f"  webhooks: {pushes:,} single-record pushes at {args.rate:g}/s "
                    f"({args.pushers} clients)"
                )
                hooks = bench_webhooks(
                    base_url,
                    source_key,
                    database,
                    receiver,
                    workload.bodies,
                    workload.warm_up,
                    args=args,
                    console=console,
                )
        finally:
            database.dispose()
    console.print(f"  {engine_name} done in {time.monotonic() - started:.0f}s")
    return EngineResult(engine_name, version, prefill_s, feed, hooks)


# --------------------------------------------------------------------------------------------
# The report.
# --------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_engine(result: EngineResult, args: argparse.Namespace) -> None:
    print()
    print(
        f"{result.engine} ({result.version}): {args.changes:,} changes prefilled through "
        f"changes.publish ({args.changes / result.prefill_s:,.0f} changes/s), 1 in {CASE_EVERY} "
        f"a {FILTERED_TYPE}; pages of {args.page_size:,}; {args.reads} timed reads per side "
        "after 1 warm-up"
    )
    header = (
        f"{'feed read':<20} {'changes':>8} {'pages':>5} {'changes/s':>10} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'base ch/s':>10} {'base p50':>8} {'gw/base':>7}"
    )
    print(header)
    print("-" * len(header))
    for feed in result.feed:
        print(
            f"{feed.label:<20} {feed.changes:>8,} {feed.pages:>5} {feed.changes_per_s:>10,.0f} "
            f"{feed.page_p50_ms:>7.1f} {feed.page_p99_ms:>7.1f} "
            f"{feed.baseline_changes_per_s:>10,.0f} {feed.baseline_page_p50_ms:>8.1f} "
            f"{feed.ratio:>7.3f}"
        )
    hooks = result.webhooks
    print()
    print(
        f"webhooks: {hooks.pushes:,} pushes of 1 record, target {hooks.target_rate:g}/s, "
        f"achieved {hooks.achieved_rate:.2f}/s (latest send {hooks.schedule_lag_max_ms:.0f} ms "
        f"behind its slot), {args.pushers} pushing clients"
    )
    header = f"{'':<28} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}   (ms)"
    print(header)
    print("-" * len(header))
    print(
        f"{'push ack -> webhook':<28} {_ms(hooks.latency_p50_ms):>7} "
        f"{_ms(hooks.latency_p95_ms):>7} {_ms(hooks.latency_p99_ms):>7} "
        f"{_ms(hooks.latency_max_ms):>7}"
    )
    print(
        f"{'push sent -> webhook':<28} {_ms(hooks.send_to_webhook_p50_ms):>7} {'':>7} "
        f"{_ms(hooks.send_to_webhook_p99_ms):>7}"
    )
    print(
        f"{'push round trip (baseline)':<28} {hooks.rtt_p50_ms:>7.1f} {'':>7} "
        f"{hooks.rtt_p99_ms:>7.1f}"
    )
    ratio = "-" if hooks.ratio_p50 is None else f"{hooks.ratio_p50:.2f}"
    outbox = ", ".join(f"{status} {count:,}" for status, count in sorted(hooks.outbox.items()))
    print(
        f"ack->webhook p50 / round trip p50: {ratio}; "
        f"webhooks {hooks.webhooks:,}/{hooks.pushes:,}, "
        f"missing {hooks.missing}, duplicates {hooks.duplicates}, unexpected {hooks.unexpected}, "
        f"before the ack {hooks.before_ack}; outbox (warm-up pushes included): {outbox or 'empty'}"
    )


def environment(args: argparse.Namespace, results: Sequence[EngineResult]) -> dict[str, Any]:
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "engines": {result.engine: result.version for result in results},
        "changes": args.changes,
        "page_size": args.page_size,
        "reads": args.reads,
        "rate": args.rate,
        "duration_s": args.duration,
        "pushers": args.pushers,
        "seed": args.seed,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else None,
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------------------------
# Driving it.
# --------------------------------------------------------------------------------------------


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


QUICK: Final = {"changes": 2000, "duration": 4.0}
DEFAULTS: Final = {"changes": 20_000, "duration": 30.0}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Change feed read throughput over HTTP and push-ack to webhook latency, "
        "through a real crc-gateway on SQLite and PostgreSQL. Prints figures; never passes or "
        "fails on time."
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql", "both"),
        default="both",
        help="(default both)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="its database (named crc_bench*) is dropped, created and dropped again "
        f"(default {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK['changes']:,} changes, {QUICK['duration']:g}s of pushes",
    )
    parser.add_argument(
        "--changes", type=_positive, default=None, help="changes in the feed (default 20000)"
    )
    limits = LimitSettings()
    parser.add_argument(
        "--page-size",
        type=_positive,
        default=limits.max_page_size,
        help=f"limit= of each feed page (default and most {limits.max_page_size})",
    )
    parser.add_argument(
        "--reads", type=_positive, default=3, help="timed reads of the feed per side (default 3)"
    )
    parser.add_argument(
        "--rate", type=_positive_float, default=20.0, help="pushes per second (default 20)"
    )
    parser.add_argument(
        "--duration", type=_positive_float, default=None, help="seconds of pushing (default 30)"
    )
    parser.add_argument(
        "--pushers", type=_positive, default=4, help="pushing clients at once (default 4)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=_positive_float,
        default=30.0,
        help="seconds to wait for the last webhooks after the last push (default 30)",
    )
    parser.add_argument("--seed", type=int, default=20210626, help="seed of the synthetic data")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    args.changes = args.changes or base["changes"]
    args.duration = args.duration or base["duration"]
    if round(args.rate * args.duration) < 2:
        parser.error("--rate x --duration must make at least 2 pushes")
    if args.page_size > limits.max_page_size:
        parser.error(f"--page-size is at most {limits.max_page_size} (the gateway's limit)")
    return args


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM becomes KeyboardInterrupt so every `finally` (stopping the server) still runs.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    random.seed(args.seed)  # the builders draw names, dates and identifiers from `random`
    make_record = case_record_builder()
    workload = build_workload(args, make_record)
    engines = ENGINES if args.database == "both" else (args.database,)
    console = Console(stderr=True, soft_wrap=True)
    results: list[EngineResult] = []
    with tempfile.TemporaryDirectory(prefix="crc-bench-feed-") as tmp:
        workdir = Path(tmp)
        plan: list[SqliteDatabases | ScratchPostgres] = []
        for name in engines:
            if name == "sqlite":
                plan.append(SqliteDatabases(None, workdir))
            else:
                postgres = ScratchPostgres(args.postgres_url)
                postgres.check_reachable()  # before any run, not after the SQLite one
                plan.append(postgres)
        try:
            for databases in plan:
                results.append(bench_engine(databases, args, workload, workdir, console))
        except KeyboardInterrupt:
            console.print("interrupted; the server has been stopped and the databases dropped")
            return 130
        except OperationalError as error:
            raise SystemExit(f"database error: {error}") from None
    env = environment(args, results)
    print()
    print(
        f"crc-gateway change feed benchmark: {', '.join(env['engines'])}; Python {env['python']}, "
        f"{env['cpu_count']} cores ({env['usable_cpus']} usable), {env['platform']}"
    )
    print(
        "changes/s: changes / wall time of a whole read, median of the timed reads; p50/p99: "
        "per-page round trip (nearest rank, every page of every timed read); base: a Core keyset "
        "read of the same pages from the same database; gw/base: median of per-read ratios"
    )
    for result in results:
        print_engine(result, args)
    if args.json is not None:
        document = {
            "environment": env,
            "engines": [asdict(result) for result in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
