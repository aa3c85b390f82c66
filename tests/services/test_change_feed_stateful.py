"""The change feed, as a state machine: every committed change is delivered once, in commit order.

Hypothesis drives one reader through random page sizes, cursor saves and crashes (a restart
forgets everything processed since the last save, a restart from scratch forgets everything)
while changes are committed around it by:

- background writers, 0 to 3 threads committing 1-4 changes a transaction, sometimes pausing
  inside the transaction before or after taking their numbers, so commits interleave at random;
- a `write` rule committing from the test itself (deterministic, so failures shrink well) or,
  on PostgreSQL, opening a transaction in a thread and holding it across the following rules,
  either before it takes its numbers (it began early, commits late) or after: the late
  committer, holding numbers a reader must not move past while other writers queue behind it.

After every step the changes processed are numbers 1..n with no repeat and no hole. A hole is
the failure this guards against: a number taken by a transaction not yet committed, which the
cursor has now passed for good. (The counter is gap-free by design: a rolled-back transaction
rolls back its numbers.) At the end the writers stop, the reader drains the feed, and what it
processed is exactly every committed change, each transaction's changes together, with a
transaction that committed before another began numbered before it.

Not marked postgres_only: it takes seconds on SQLite and is a valid run there. Every SQLite
write transaction holds the database's one write lock (BEGIN IMMEDIATE), so writers and reader
are serialised, and a held transaction would block the reader too (reading the feed records an
audit entry): there `write` always commits at once. PostgreSQL adds the held transactions and
writers that truly overlap.
"""

from __future__ import annotations

import functools
import itertools
import random
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.models import Change, utcnow
from gateway.repositories import changes as changes_repo
from gateway.services import changes
from gateway.services.ingest import change_row
from tests.conftest import empty_all_tables

# Safety nets only: nothing here asserts how long anything took.
WAIT_SECONDS = 30.0
MAX_OPEN = 4  # transactions running in threads of their own at once (PostgreSQL)
# Each background writer's share of an example: enough to overlap the reader's steps, few
# enough that re-reading them all after a restart from scratch stays cheap.
TRANSACTIONS_PER_WRITER = 25

MACHINE_SETTINGS = settings(
    max_examples=30,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# A transaction run in a thread of its own: held open before or after it takes its numbers,
# or (None) not held, just queued behind one that holds the feed head.
Hold = Literal["before_append", "after_append"] | None
HOLDS: tuple[Hold, ...] = (None, "before_append", "after_append")

# What the reader keeps of a change: its number and the person id, unique to each change here.
Seen = tuple[int, uuid.UUID]


@dataclass(frozen=True)
class Committed:
    """One committed transaction: its changes in append order, their numbers, and when it ran."""

    person_ids: tuple[uuid.UUID, ...]
    seqs: tuple[int, ...]
    started: float  # before Database.write was called
    committed: float  # after it returned


@dataclass
class Ledger:
    """Every transaction the writers saw commit, shared by their threads."""

    transactions: list[Committed] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, transaction: Committed) -> None:
        with self.lock:
            self.transactions.append(transaction)


@dataclass
class Exercised:
    """Across all examples, whether the situations the property is about actually came up."""

    concurrent_commits: int = 0
    reads_while_numbers_held: int = 0
    redeliveries: int = 0


def new_changes(count: int, writer: str) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        change_row(
            "person.updated", now, person_id=uuid.uuid4(), snapshot={"writer": writer, "row": row}
        )
        for row in range(count)
    ]


def append_only(rows: list[dict[str, Any]], session: Session) -> list[int]:
    return changes_repo.append(session, rows)


def commit(
    db: Database, ledger: Ledger, rows: list[dict[str, Any]], work: Callable[[Session], list[int]]
) -> None:
    """Run `work` (which appends the rows) in one write transaction and record the commit."""
    started = time.monotonic()
    seqs = db.write(work)
    committed = time.monotonic()
    ledger.add(Committed(tuple(row["person_id"] for row in rows), tuple(seqs), started, committed))


class BackgroundWriters:
    """Threads committing small transactions until done or stopped, pausing inside some."""

    def __init__(self, db: Database, ledger: Ledger, count: int, seed: int) -> None:
        self.db = db
        self.ledger = ledger
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(
                target=self.run, args=(f"writer-{n}", random.Random(seed + n)), daemon=True
            )
            for n in range(count)
        ]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def work(
        rows: list[dict[str, Any]], before: float, after: float, session: Session
    ) -> list[int]:
        session.execute(text("SELECT 1"))  # the transaction is open from here
        time.sleep(before)
        seqs = changes_repo.append(session, rows)
        time.sleep(after)  # a late commit, holding numbers taken
        return seqs

    def run(self, name: str, rng: random.Random) -> None:
        try:
            for _ in range(TRANSACTIONS_PER_WRITER):
                if self.stopping.is_set():
                    return
                rows = new_changes(rng.randint(1, 4), name)
                before, after = (rng.choice([0.0, 0.0, rng.uniform(0, 0.003)]) for _ in "ab")
                commit(
                    self.db,
                    self.ledger,
                    rows,
                    functools.partial(self.work, rows, before, after),
                )
                time.sleep(rng.uniform(0, 0.01))
        except BaseException:
            self.errors.append(traceback.format_exc())

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(WAIT_SECONDS)
        stuck = [thread.name for thread in self.threads if thread.is_alive()]
        assert not stuck, f"background writers did not stop: {stuck}"


class OpenTransaction:
    """A write transaction in its own thread, maybe held open before or after it takes numbers."""

    def __init__(
        self, db: Database, ledger: Ledger, rows: list[dict[str, Any]], *, hold: Hold
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.rows = rows
        self.hold = hold
        self.pid: int | None = None
        self.opened = threading.Event()
        self.appended = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()
        self.error: str | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        reached = self.appended if hold == "after_append" else self.opened
        assert reached.wait(WAIT_SECONDS) or self.done.is_set(), "the transaction never opened"
        assert self.error is None, self.error

    def wait_for_release(self) -> None:
        if not self.release.wait(WAIT_SECONDS):
            raise TimeoutError("never released")

    def work(self, session: Session) -> list[int]:
        self.pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        self.opened.set()
        if self.hold == "before_append":
            self.wait_for_release()
        seqs = changes_repo.append(session, self.rows)
        self.appended.set()
        if self.hold == "after_append":
            self.wait_for_release()
        return seqs

    def run(self) -> None:
        try:
            commit(self.db, self.ledger, self.rows, self.work)
        except BaseException:
            self.error = traceback.format_exc()
        finally:
            self.done.set()

    def wait_done(self) -> None:
        assert self.done.wait(WAIT_SECONDS), "a released transaction never committed"
        assert self.error is None, self.error

    def join(self) -> None:
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive(), "a held transaction did not finish"


class ChangeFeedMachine(RuleBasedStateMachine):
    def __init__(self, db: Database, exercised: Exercised) -> None:
        super().__init__()
        self.db = db
        self.exercised = exercised
        self.postgres = db.dialect == "postgresql"
        empty_all_tables(db)  # the counter starts again at 0
        self.ledger = Ledger()
        self.writers: BackgroundWriters | None = None
        self.held: list[OpenTransaction] = []  # open, not yet released
        self.released: list[OpenTransaction] = []  # released, maybe queued for the feed head
        self.cursor: str | None = None
        self.processed: list[Seen] = []
        self.saved: tuple[str | None, int] = (None, 0)  # the cursor and the work done up to it
        self.delivered: dict[int, uuid.UUID] = {}  # every number ever handed out, across restarts
        self.steps = -1
        self.stage = "the start"
        self.violation: str | None = None

    def violated(self, message: str) -> None:
        """Note the first broken expectation; the teardown raises it.

        With background writers a broken feed shows at a different step each run. A step that
        raised would end the run there, and Hypothesis, seeing the same choices draw different
        amounts of data, would report FlakyStrategyDefinition instead of the failure.
        """
        if self.violation is None:
            self.violation = f"{self.stage}: {message}"

    # --- writers -----------------------------------------------------------------------------

    @initialize(count=st.integers(0, 3), seed=st.integers(0, 2**32))
    def start_background_writers(self, count: int, seed: int) -> None:
        self.writers = BackgroundWriters(self.db, self.ledger, count, seed)

    def feed_head_held(self) -> bool:
        return any(held.hold == "after_append" for held in self.held)

    # One rule for every kind of write, so that swarm testing (Hypothesis switching whole rules
    # off for an example) cannot leave a run with commits but never a held transaction.
    @precondition(lambda self: len(self.held) + len(self.released) < MAX_OPEN)
    @rule(count=st.integers(1, 5), hold=st.sampled_from(HOLDS))
    def write(self, count: int, hold: Hold) -> None:
        rows = new_changes(count, "machine")
        if not self.postgres:
            hold = None  # a held SQLite writer would block the reader as well
        if hold == "after_append" and self.feed_head_held():
            hold = "before_append"  # a second would queue behind the first, never reaching its hold
        if hold is None and not self.feed_head_held():
            commit(self.db, self.ledger, rows, functools.partial(append_only, rows))
            return
        transaction = OpenTransaction(self.db, self.ledger, rows, hold=hold)
        if hold is None:
            self.settle(transaction)  # it queues behind the transaction holding the feed head
        else:
            self.held.append(transaction)

    @precondition(lambda self: bool(self.held))
    @rule(pick=st.integers(0, MAX_OPEN - 1))
    def commit_held_transaction(self, pick: int) -> None:
        held = self.held.pop(pick % len(self.held))
        held.release.set()
        self.settle(held)

    def settle(self, transaction: OpenTransaction) -> None:
        """Wait for a running transaction to commit or, while the feed head is held, to queue."""
        if self.feed_head_held():
            # Its numbers must come after those held: waiting for its commit would hang, so
            # wait until it is done (a broken feed) or waits for the lock.
            self.released.append(transaction)
            self.wait_done_or_queued(transaction)
            return
        transaction.wait_done()
        for queued in self.released:
            queued.wait_done()
        self.released.clear()

    def wait_done_or_queued(self, transaction: OpenTransaction) -> None:
        assert transaction.pid is not None
        query = text("SELECT cardinality(pg_blocking_pids(:pid))")
        pid = {"pid": transaction.pid}
        give_up = time.monotonic() + WAIT_SECONDS
        while not transaction.done.wait(0.002):
            if self.db.read(lambda session: session.execute(query, pid).scalar()):
                return
            assert time.monotonic() < give_up, "a running transaction neither committed nor waited"
        assert transaction.error is None, transaction.error

    # --- the reader ----------------------------------------------------------------------------

    def read_page(self, page_size: int) -> bool:
        """Read and process one page from the cursor; returns whether the feed has more."""
        after = self.cursor
        page = self.db.write(
            lambda session: changes.read_page(
                session, after=after, limit=page_size, principal=None, now=utcnow()
            )
        )
        got = [(change.seq, change.person_id) for change in page.changes]
        if len(got) > page_size:
            self.violated(f"asked for {page_size} changes, got {len(got)}")
        if page.has_more and len(got) < page_size:
            self.violated("has_more on a short page")
        position = got[-1][0] if got else changes.decode_cursor(after)
        if changes.decode_cursor(page.next_cursor) != position:
            self.violated(f"the next cursor is not at {position}, the last change read")
        for seq, person_id in got:
            if self.delivered.setdefault(seq, person_id) != person_id:
                self.violated(f"number {seq} was a different change the second time")
        if self.feed_head_held():
            self.exercised.reads_while_numbers_held += 1
        self.processed.extend(got)
        self.cursor = page.next_cursor
        return page.has_more

    @rule(page_size=st.integers(1, 50))
    def read(self, page_size: int) -> None:
        self.read_page(page_size)

    # Not from 1: catching up on a few hundred changes one at a time is slow and adds nothing.
    @rule(page_size=st.integers(5, 50))
    def catch_up(self, page_size: int) -> None:
        """Read up to the head as it is now (writers may keep adding faster than small pages)."""
        head = self.db.read(lambda session: changes_repo.head(session)[0])
        while self.position() < head:
            if not self.read_page(page_size) and self.position() < head:
                self.violated(f"the feed ended at {self.position()}, below its head {head}")
                return

    def position(self) -> int:
        return self.processed[-1][0] if self.processed else 0

    @rule()
    def save_cursor(self) -> None:
        self.saved = (self.cursor, len(self.processed))

    @rule()
    def restart(self) -> None:
        """A crash: everything processed since the last save is lost and will come again."""
        self.cursor, kept = self.saved
        if len(self.processed) > kept:
            self.exercised.redeliveries += 1
        del self.processed[kept:]

    @rule()
    def restart_from_scratch(self) -> None:
        self.cursor, self.saved, self.processed = None, (None, 0), []

    @invariant()
    def processed_once_in_order_with_no_hole(self) -> None:
        self.steps += 1
        self.stage = f"after step {self.steps}"
        self.check_processed()

    def check_processed(self) -> None:
        person_ids = [person_id for _, person_id in self.processed]
        seqs = [seq for seq, _ in self.processed]
        if len(set(person_ids)) != len(person_ids):
            self.violated(f"a change was processed twice: {seqs}")
        elif any(a >= b for a, b in itertools.pairwise(seqs)):
            self.violated(f"changes processed out of order: {seqs}")
        elif seqs != list(range(1, len(seqs) + 1)):
            # Numbers not yet committed may lie ahead of the cursor, never behind it.
            due = next(n for n, seq in enumerate(seqs, start=1) if seq != n)
            self.violated(
                f"read {seqs[due - 1]} where {due} was due: the cursor has passed change {due} "
                f"(dropped, or not yet committed when a later one was read), so it is lost"
            )

    # --- the end -------------------------------------------------------------------------------

    def teardown(self) -> None:
        # After a failed step only clean up: the final checks would hide the real failure.
        failing = sys.exc_info()[1] is not None
        unfinished = [*self.held, *self.released]
        for held in unfinished:  # all first: one may be queued behind another
            held.release.set()
        for held in unfinished:
            held.join()
        if self.writers is not None:
            self.writers.stop()
        if failing:
            return
        if self.writers is not None:
            assert not self.writers.errors, "\n".join(self.writers.errors)
        for held in unfinished:
            assert held.error is None, held.error
        self.held, self.released = [], []
        self.stage = "draining the feed at the end"
        self.catch_up(50)
        self.check_processed()
        # Raised here and only here, so a failure always has the same origin (see violated).
        assert self.violation is None, self.violation
        self.check_every_commit_delivered_once_in_commit_order()

    def check_every_commit_delivered_once_in_commit_order(self) -> None:
        transactions = sorted(self.ledger.transactions, key=lambda t: t.seqs[0])
        for transaction in transactions:
            first = transaction.seqs[0]
            assert list(transaction.seqs) == list(range(first, first + len(transaction.seqs))), (
                "a transaction's changes were not numbered together"
            )
        expected = [
            (seq, person_id)
            for transaction in transactions
            for seq, person_id in zip(transaction.seqs, transaction.person_ids, strict=True)
        ]
        missing = set(expected) - set(self.processed)
        extra = set(self.processed) - set(expected)
        assert not missing, f"committed but never delivered: {sorted(missing)}"
        assert not extra, f"delivered but never committed: {sorted(extra)}"
        assert self.processed == expected

        table = self.db.read(
            lambda session: [
                (change.seq, change.person_id)
                for change in session.scalars(select(Change).order_by(Change.seq))
            ]
        )
        assert table == expected, "the table holds changes no transaction committed"

        # A transaction that committed before another began is numbered before it: in number
        # order, each committed after every earlier-numbered one began.
        latest_start = float("-inf")
        for transaction in transactions:
            assert transaction.committed > latest_start, (
                f"{transaction.seqs} committed before a transaction numbered below it began"
            )
            latest_start = max(latest_start, transaction.started)

        overlapping = sum(
            later.started < earlier.committed for earlier, later in itertools.pairwise(transactions)
        )
        self.exercised.concurrent_commits += overlapping


def test_the_feed_delivers_every_commit_once_in_commit_order(db: Database) -> None:
    exercised = Exercised()

    def feed_machine() -> ChangeFeedMachine:
        return ChangeFeedMachine(db, exercised)

    # Any factory of machines will do (documented); the annotation asks for the class itself.
    run_state_machine_as_test(feed_machine, settings=MACHINE_SETTINGS)  # type: ignore[arg-type]
    # The property is only as good as the situations it met.
    assert exercised.redeliveries > 0
    assert exercised.concurrent_commits > 0
    if db.dialect == "postgresql":
        assert exercised.reads_while_numbers_held > 0
