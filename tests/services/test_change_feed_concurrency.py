"""The change feed under concurrent writers: every committed change is read once, in commit order.

Writers go through the real ingest path in their own threads while a reader pages the feed with
random page sizes and now and then starts again from a cursor it saved earlier. Runs on SQLite
and, when GATEWAY_TEST_DATABASE_URL points at one, on PostgreSQL.
"""

from __future__ import annotations

import copy
import functools
import itertools
import random
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from adapters.base import AdapterConfig
from adapters.canonical import CanonicalAdapter
from gateway.db import Database
from gateway.models import Change, FeedHead, Person, utcnow
from gateway.services import changes, ingest
from gateway.services.golden import DEFAULT_POLICY
from gateway.services.identity import Matcher
from gateway.settings import MatchingSettings
from tests.builders import SURNAMES, as_raw_records, make_case_record

WRITERS = 6
BATCHES_PER_WRITER = 12
# Safety nets only: nothing here asserts how long anything took.
WAIT_SECONDS = 10.0
JOIN_SECONDS = 120.0
TIERS = tuple(f"{protect}{change}" for protect in "ABCD" for change in "0123")

# What a reader keeps of a change to compare it with the table: enough to tell any two apart.
Seen = tuple[int, str, uuid.UUID, uuid.UUID | None]


def _seen(change: Change) -> Seen:
    return (change.seq, change.type, change.person_id, change.case_id)


@dataclass
class WriterPlan:
    """One writer's batches, built up front (the builders are not thread-safe), and what each
    batch must report and emit."""

    source: str
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    outcomes: list[list[str]] = field(default_factory=list)
    emits: Counter[str] = field(default_factory=Counter)
    created: int = 0


def plan_writer(rng: random.Random, source: str) -> WriterPlan:
    """New records, real updates of the writer's own earlier records, and identical re-sends."""
    plan = WriterPlan(source=source)
    sent: dict[str, dict[str, Any]] = {}
    for _ in range(BATCHES_PER_WRITER):
        batch: list[dict[str, Any]] = []
        outcomes: list[str] = []
        in_batch: set[str] = set()
        for _ in range(rng.randint(1, 4)):
            known = sorted(set(sent) - in_batch)
            roll = rng.random()
            if not known or roll < 0.4:
                record = make_case_record()
                outcomes.append("created")
                plan.emits.update(["person.created", "case.created"])
                plan.created += 1
            elif roll < 0.75:
                record = copy.deepcopy(sent[rng.choice(known)])
                if rng.random() < 0.5:
                    tier = record["case"]["tier"]
                    tier["value"] = rng.choice([t for t in TIERS if t != tier["value"]])
                    plan.emits["case.updated"] += 1
                else:
                    person = record["person"]
                    person["surname"] = rng.choice([s for s in SURNAMES if s != person["surname"]])
                    plan.emits["person.updated"] += 1
                outcomes.append("updated")
            else:
                record = copy.deepcopy(sent[rng.choice(known)])
                outcomes.append("unchanged")
            external_id = record["provenance"]["external_id"]
            in_batch.add(external_id)
            sent[external_id] = record
            batch.append(record)
        plan.batches.append(batch)
        plan.outcomes.append(outcomes)
    return plan


def read_page(db: Database, after: str | None, limit: int) -> changes.ChangePage:
    return db.write(
        lambda session: changes.read_page(
            session, after=after, limit=limit, principal=None, now=utcnow()
        )
    )


class FeedReader:
    """Pages the feed the way a subscriber would, remembering every change it was handed."""

    def __init__(self, db: Database, rng: random.Random) -> None:
        self.db = db
        self.rng = rng
        self.cursor: str | None = None
        self.seen: list[Seen] = []
        # (cursor, how many changes had been seen when it was issued)
        self.saved: list[tuple[str | None, int]] = [(None, 0)]
        self.restarts = 0
        self.changes_seen = threading.Event()

    def step(self) -> int:
        page = read_page(self.db, self.cursor, self.rng.randint(1, 7))
        self.seen.extend(_seen(change) for change in page.changes)
        self.cursor = page.next_cursor
        if self.seen:
            self.changes_seen.set()
        return len(page.changes)

    def save_cursor(self) -> None:
        self.saved.append((self.cursor, len(self.seen)))

    def restart_from(self, cursor: str | None, index: int) -> None:
        """Re-read from a saved cursor up to where the reader is: it must be the same changes."""
        self.restarts += 1
        expected = self.seen[index:]
        reread: list[Seen] = []
        position = cursor
        while len(reread) < len(expected):
            page = read_page(
                self.db, position, min(self.rng.randint(1, 7), len(expected) - len(reread))
            )
            assert page.changes, "re-reading from a saved cursor ran out before the first read"
            reread.extend(_seen(change) for change in page.changes)
            position = page.next_cursor
        assert reread == expected, "a saved cursor gave a different sequence the second time"
        assert position == self.cursor, "the same position did not give the same cursor"

    def restart_from_random_saved(self) -> None:
        self.restart_from(*self.rng.choice(self.saved))


def run_threads(targets: list[Callable[[], None]]) -> list[str]:
    """Run each target in its own thread; returns the tracebacks of any that failed."""
    errors: list[str] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=guarded, args=(target,), daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"threads did not finish (deadlock?): {stuck}"
    return errors


def committed_changes(db: Database) -> list[Seen]:
    return db.read(
        lambda session: [_seen(c) for c in session.scalars(select(Change).order_by(Change.seq))]
    )


def test_every_committed_change_is_read_exactly_once_in_order_while_writers_commit(
    db: Database,
) -> None:
    rng = random.Random(20210626)
    # Pairs of writers share a source, so they also contend for its counters row.
    plans = [plan_writer(rng, f"crc-{('north', 'south', 'east')[n % 3]}") for n in range(WRITERS)]
    reader = FeedReader(db, random.Random(rng.random()))
    start = threading.Barrier(WRITERS + 1, timeout=WAIT_SECONDS)
    writers_done = threading.Event()
    adapter = CanonicalAdapter(AdapterConfig())

    def write(plan: WriterPlan) -> None:
        start.wait()
        for number, (batch, outcomes) in enumerate(zip(plan.batches, plan.outcomes, strict=True)):
            if number == BATCHES_PER_WRITER // 2:
                # Make sure the reader is demonstrably reading while half the work is to come.
                assert reader.changes_seen.wait(WAIT_SECONDS), "the reader never saw a change"
            work = functools.partial(
                ingest.ingest_batch,
                source=plan.source,
                adapter=adapter,
                raw_records=as_raw_records(batch),
                principal=None,
                received_at=utcnow(),
            )
            result = db.write(work)
            assert [item.outcome.value for item in result.results] == outcomes

    def read() -> None:
        reader.step()  # the feed is empty before any writer starts
        assert reader.seen == []
        start.wait()
        steps = 0
        while not writers_done.is_set():
            steps += 1
            if not reader.step():
                time.sleep(0.001)  # nothing new: let the writers in
            if steps % 4 == 0:
                reader.save_cursor()
            if steps % 9 == 0:
                reader.restart_from_random_saved()
        while reader.step():
            pass
        reader.save_cursor()
        for cursor, index in reader.rng.sample(reader.saved, min(4, len(reader.saved))):
            reader.restart_from(cursor, index)
        reader.restart_from(None, 0)

    def write_all() -> None:
        try:
            errors = run_threads([functools.partial(write, plan) for plan in plans])
            assert not errors, "\n".join(errors)
        finally:
            writers_done.set()

    errors = run_threads([write_all, read])
    assert not errors, "\n".join(errors)

    table = committed_changes(db)
    seqs = [row[0] for row in table]
    assert seqs == list(range(1, len(table) + 1)), "the counter left a gap or a repeat"
    assert db.read(lambda s: s.get(FeedHead, 1)).seq == len(table)  # type: ignore[union-attr]

    read_seqs = [row[0] for row in reader.seen]
    assert all(a < b for a, b in itertools.pairwise(read_seqs))
    assert reader.seen == table, "the reader missed or repeated a committed change"

    expected = sum((plan.emits for plan in plans), Counter[str]())
    assert Counter(row[1] for row in table) == expected
    created = sum(plan.created for plan in plans)
    assert Counter(row[1] for row in table)["person.created"] == created
    assert db.read(lambda s: len(s.scalars(select(Person.id)).all())) == created
    assert reader.restarts > 0


# --- PostgreSQL: the late committer --------------------------------------------------------------


FEED_ONLY = Matcher.build(MatchingSettings(enabled=False), DEFAULT_POLICY)


@dataclass
class PausedWriter:
    """A write transaction in a thread that can be held just before it commits."""

    db: Database
    source: str
    records: list[dict[str, Any]]
    hold: bool = False
    pid: int | None = None
    started: threading.Event = field(default_factory=threading.Event)
    appended: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    person_ids: list[uuid.UUID] = field(default_factory=list)
    error: str | None = None

    def work(self, session: Session) -> None:
        self.pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        self.started.set()
        result = ingest.ingest_batch(
            session,
            source=self.source,
            adapter=CanonicalAdapter(AdapterConfig()),
            raw_records=as_raw_records(self.records),
            principal=None,
            received_at=utcnow(),
            # Matching off: with it, unrelated writers may also take turns on a key stripe
            # (tests/services/test_identity_concurrency.py), hiding the feed-head wait shown here.
            matcher=FEED_ONLY,
        )
        self.person_ids = [item.person_id for item in result.results if item.person_id]
        self.appended.set()
        if self.hold and not self.release.wait(WAIT_SECONDS):
            raise TimeoutError("never released")

    def run(self) -> None:
        try:
            self.db.write(self.work)
        except BaseException:
            self.error = traceback.format_exc()
        finally:
            self.done.set()


def feed_from_start(db: Database) -> list[tuple[int, uuid.UUID]]:
    return [(change.seq, change.person_id) for change in read_page(db, None, 1000).changes]


def lock_wait(db: Database, pid: int) -> tuple[list[int], str | None, str]:
    """Which backends block this one, what it waits on, and the statement it is running."""

    def query(session: Session) -> tuple[list[int], str | None, str]:
        blocking = session.execute(text("SELECT pg_blocking_pids(:pid)"), {"pid": pid})
        wait_type, statement = session.execute(
            text("SELECT wait_event_type, query FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": pid},
        ).one()
        return list(blocking.scalar_one()), wait_type, statement

    return db.read(query)


@pytest.mark.postgres_only
def test_a_later_writer_waits_for_a_late_committer_so_no_reader_skips_it(db: Database) -> None:
    """A appends and pauses before commit; B, begun later, cannot take a number until A commits.

    With numbers handed out before commit (a plain sequence), B would commit first and a reader
    would move its cursor past A's numbers, never to see A's changes.
    """
    late = PausedWriter(db, "crc-north", [make_case_record() for _ in range(2)], hold=True)
    later = PausedWriter(db, "crc-south", [make_case_record()])
    snapshots: list[list[tuple[int, uuid.UUID]]] = []
    stop_polling = threading.Event()

    def poll() -> None:
        while not stop_polling.is_set():
            snapshots.append(feed_from_start(db))
            time.sleep(0.002)

    threads = [threading.Thread(target=target, daemon=True) for target in (late.run, poll)]
    later_thread = threading.Thread(target=later.run, daemon=True)
    try:
        for thread in threads:
            thread.start()
        assert late.appended.wait(WAIT_SECONDS), late.error
        assert late.pid is not None
        later_thread.start()
        assert later.started.wait(WAIT_SECONDS), later.error
        assert later.pid is not None

        give_up = time.monotonic() + WAIT_SECONDS  # a safety net, not a measurement
        while True:
            blocking, wait_type, statement = lock_wait(db, later.pid)
            if late.pid in blocking:
                break
            assert not later.done.is_set(), "B committed while A still held its numbers"
            assert time.monotonic() < give_up, "B never waited for A"
            time.sleep(0.005)
        assert wait_type == "Lock"
        assert "feed_head" in statement, "B should wait on the feed head, not elsewhere"

        # A holds numbers it has not committed and B is parked behind it: a reader sees neither.
        assert feed_from_start(db) == []
        assert not later.done.is_set()

        late.release.set()
        assert late.done.wait(WAIT_SECONDS)
        assert later.done.wait(WAIT_SECONDS)
    finally:
        late.release.set()
        stop_polling.set()
        for thread in [*threads, later_thread]:
            if thread.ident is not None:
                thread.join(WAIT_SECONDS)
    assert late.error is None, late.error
    assert later.error is None, later.error

    final = feed_from_start(db)
    assert [seq for seq, _ in final] == list(range(1, 7))
    # A took its numbers first and keeps them; B's come after, though B committed last.
    assert {person_id for _, person_id in final[:4]} == set(late.person_ids)
    assert {person_id for _, person_id in final[4:]} == set(later.person_ids)
    for snapshot in snapshots:
        assert snapshot == final[: len(snapshot)], "a reader saw B's change without A's"
