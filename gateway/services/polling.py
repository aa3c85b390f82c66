"""Polling sources: fetch pages by cursor and store them, one transaction per page.

A poll claims the source (a lease in `source_state`, taken in a short transaction with
`FOR UPDATE SKIP LOCKED` on PostgreSQL), then loops: fetch a page with no transaction open; in
ONE write transaction check the lease is still ours, store the page's records and move the cursor
past them. A crash or a failure between pages therefore resumes from the last committed page:
nothing is skipped, and nothing is stored twice.

A `RetriableSourceError` ends the poll with the error recorded and the next poll backed off; a
`FatalSourceError` pauses the source until an operator resumes it. Replicas never poll the same
source at once: a lease held by another replica (until it expires) makes a poll skip the source.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, Final

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from adapters.base import FatalSourceError, FetchedPage, RetriableSourceError, SourceHttp
from gateway.db import Database
from gateway.errors import NotFound
from gateway.logs import source_var
from gateway.models import SourceState, utcnow
from gateway.repositories import source_state as state_repo
from gateway.services import audit, ingest
from gateway.services.clients import Principal, validate_source_name
from gateway.services.identity import Matcher
from gateway.services.ingest import Outcome
from gateway.services.source_http import (
    MAX_RETRY_AFTER_SECONDS,
    HttpxSourceHttp,
    Interrupted,
    interruptible_sleep,
)
from gateway.services.sources import ConfiguredSource
from gateway.settings import PollSettings

log = logging.getLogger(__name__)

# A failing source is polled again after interval * 2**(failures-1), capped here (but never
# sooner than its interval, nor than a Retry-After it sent).
MAX_FAILURE_BACKOFF_SECONDS: Final = 3600.0
# Pages one background poll stores before letting the other sources have a turn.
PAGES_PER_POLL: Final = 50
# How often the background poller looks for due sources, at most.
TICK_SECONDS: Final = 5.0
_LEASE_MARGIN_SECONDS: Final = 60.0


class PollOutcome(StrEnum):
    CAUGHT_UP = "caught_up"
    MORE_PENDING = "more_pending"
    FAILED = "failed"
    PAUSED = "paused"
    SKIPPED = "skipped"


@dataclass
class PollResult:
    """What one poll did. `detail` is a safe message: a reason, never a payload."""

    source: str
    outcome: PollOutcome
    pages: int = 0
    records: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    detail: str | None = None
    next_poll_at: datetime | None = None


class LeaseLost(Exception):
    """Another replica took the source over (our lease expired): stop without writing."""


def lease_seconds(poll: PollSettings) -> float:
    """How long a claim lasts: longer than one fetch with all its retries can take.

    Each page committed renews it. A replica that dies mid-poll holds the source this long.
    """
    per_attempt = 2 * poll.timeout_seconds + MAX_RETRY_AFTER_SECONDS
    return poll.max_attempts * per_attempt + _LEASE_MARGIN_SECONDS


def failure_backoff(interval: float, failures: int, retry_after: float | None) -> float:
    """Seconds until a source that failed `failures` times in a row is polled again."""
    growth = 2.0 ** min(max(0, failures - 1), 32)
    delay = min(interval * growth, max(interval, MAX_FAILURE_BACKOFF_SECONDS))
    return max(delay, retry_after or 0.0)


def lease_owner() -> str:
    """A name for one poll run: host and process for operators, and unique per run."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def is_due(state: SourceState | None, now: datetime) -> bool:
    if state is None:
        return True
    if state.paused:
        return False
    if state.leased_until is not None and state.leased_until > now:
        return False
    return state.next_poll_at is None or state.next_poll_at <= now


@dataclass(frozen=True)
class _Claim:
    granted: bool
    cursor: str | None = None
    reason: str | None = None


def _claim(
    session: Session,
    *,
    source: str,
    owner: str,
    now: datetime,
    lease: float,
    only_if_due: bool,
) -> _Claim:
    state_repo.ensure(session, source)
    state = state_repo.lock(session, source, skip_locked=True)
    if state is None:
        return _Claim(False, reason="another gateway is claiming it")
    if state.paused:
        return _Claim(False, reason="paused")
    if state.leased_until is not None and state.leased_until > now:
        return _Claim(False, reason="being polled by another gateway")
    if only_if_due and state.next_poll_at is not None and state.next_poll_at > now:
        return _Claim(False, reason="not due")
    state.leased_by = owner
    state.leased_until = now + timedelta(seconds=lease)
    state.last_poll_at = now
    return _Claim(True, cursor=state.cursor)


def _held(session: Session, source: str, owner: str) -> SourceState:
    state = state_repo.lock(session, source)
    # Owner ids are unique per run: if ours is still there, nobody has claimed since, even if
    # the lease ran out meanwhile.
    if state is None or state.leased_by != owner:
        raise LeaseLost(source)
    return state


def _release(state: SourceState) -> None:
    state.leased_by = None
    state.leased_until = None


def _commit_page(
    session: Session,
    *,
    source: ConfiguredSource,
    owner: str,
    fetched_from: str | None,
    page: FetchedPage,
    finished: bool,
    caught_up: bool,
    now: datetime,
    lease: float,
    interval: float,
    matcher: Matcher | None = None,
) -> ingest.BatchResult | None:
    """Store one page's records and move the cursor past them, in the caller's transaction."""
    state = _held(session, source.name, owner)
    if state.cursor != fetched_from:
        raise LeaseLost(source.name)
    state.cursor = page.next_cursor
    state.records_polled += len(page.records)
    state.last_success_at = now
    state.consecutive_failures = 0
    if finished:
        _release(state)
        state.next_poll_at = now + timedelta(seconds=interval) if caught_up else now
    else:
        state.leased_until = now + timedelta(seconds=lease)
    if not page.records:
        return None
    # Last: ingest appends to the change feed, whose lock is held until commit.
    return ingest.ingest_batch(
        session,
        source=source.name,
        adapter=source.adapter,
        raw_records=page.records,
        principal=None,
        received_at=now,
        matcher=matcher,
        strict=source.strict,
    )


def _interrupted(session: Session, *, source: str, owner: str, now: datetime) -> None:
    """Give the source back, due at once, without counting a failure."""
    try:
        state = _held(session, source, owner)
    except LeaseLost:
        return
    _release(state)
    state.next_poll_at = now


def _record_failure(
    session: Session,
    *,
    source: str,
    owner: str,
    message: str,
    now: datetime,
    interval: float,
    retry_after: float | None,
    pause: bool,
) -> datetime | None:
    """Note the failure, back off or pause, and release the lease; returns the next poll time."""
    try:
        state = _held(session, source, owner)
    except LeaseLost:
        return None
    state.consecutive_failures += 1
    state.last_error = message[:500]
    state.last_error_at = now
    _release(state)
    if pause:
        state.paused = True
        state.paused_reason = message[:500]
        state.next_poll_at = None
        return None
    backoff = failure_backoff(interval, state.consecutive_failures, retry_after)
    state.next_poll_at = now + timedelta(seconds=backoff)
    return state.next_poll_at


def poll_source(
    db: Database,
    source: ConfiguredSource,
    http: SourceHttp,
    *,
    max_pages: int | None = None,
    only_if_due: bool = False,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], datetime] = utcnow,
    matcher: Matcher | None = None,
) -> PollResult:
    """Poll one source from its stored cursor until caught up (or `max_pages`, or told to stop).

    Skips a paused source and one another replica is polling; with `only_if_due`, also one
    whose next poll is not due yet.
    """
    if source.poll is None:
        raise ValueError(f"source {source.name} is not polled")
    poll = source.poll
    context = source_var.set(source.name)
    try:
        return _poll(db, source, http, poll, max_pages, only_if_due, should_stop, clock, matcher)
    finally:
        source_var.reset(context)


def _poll(
    db: Database,
    source: ConfiguredSource,
    http: SourceHttp,
    poll: PollSettings,
    max_pages: int | None,
    only_if_due: bool,
    should_stop: Callable[[], bool] | None,
    clock: Callable[[], datetime],
    matcher: Matcher | None,
) -> PollResult:
    result = PollResult(source=source.name, outcome=PollOutcome.SKIPPED)
    if only_if_due and not is_due(db.read(lambda s: state_repo.get(s, source.name)), clock()):
        result.detail = "not due"
        return result
    owner, lease = lease_owner(), lease_seconds(poll)
    claim = db.write(
        partial(
            _claim,
            source=source.name,
            owner=owner,
            now=clock(),
            lease=lease,
            only_if_due=only_if_due,
        )
    )
    if not claim.granted:
        result.detail = claim.reason
        return result
    cursor = claim.cursor

    def fail(message: str, *, pause: bool, retry_after: float | None = None) -> PollResult:
        result.outcome = PollOutcome.PAUSED if pause else PollOutcome.FAILED
        result.detail = message
        result.next_poll_at = db.write(
            partial(
                _record_failure,
                source=source.name,
                owner=owner,
                message=message,
                now=clock(),
                interval=poll.interval_seconds,
                retry_after=retry_after,
                pause=pause,
            )
        )
        _log_result(result)
        return result

    while True:
        try:
            page = source.adapter.fetch(cursor, http)
        except Interrupted:
            db.write(partial(_interrupted, source=source.name, owner=owner, now=clock()))
            result.outcome, result.detail = PollOutcome.MORE_PENDING, "interrupted: shutting down"
            return result
        except KeyboardInterrupt:
            # Ctrl-C on `crc-gateway poll`: hand the source back rather than hold it to expiry.
            db.write(partial(_interrupted, source=source.name, owner=owner, now=clock()))
            raise
        except RetriableSourceError as error:
            return fail(str(error), pause=False, retry_after=error.retry_after)
        except FatalSourceError as error:
            return fail(str(error), pause=True)
        except Exception as error:
            _note_internal_error(fail, f"internal error while fetching ({type(error).__name__})")
            raise
        if page.has_more and page.next_cursor == cursor:
            return fail(
                "the source gave back the cursor it was sent, with more to come", pause=True
            )
        result.pages += 1
        stopping = (max_pages is not None and result.pages >= max_pages) or (
            should_stop is not None and should_stop()
        )
        finished = not page.has_more or stopping
        now = clock()
        try:
            batch = db.write(
                partial(
                    _commit_page,
                    source=source,
                    owner=owner,
                    fetched_from=cursor,
                    page=page,
                    finished=finished,
                    caught_up=not page.has_more,
                    now=now,
                    lease=lease,
                    interval=poll.interval_seconds,
                    matcher=matcher,
                )
            )
        except LeaseLost:
            result.detail = "another gateway took the source over"
            log.warning("lease lost while polling; stopped without storing the page")
            return result
        except Exception as error:
            _note_internal_error(fail, f"internal error while storing ({type(error).__name__})")
            raise
        result.records += len(page.records)
        if batch is not None:
            for name, count in batch.counts().items():
                result.counts[name] += count
        cursor = page.next_cursor
        if finished:
            result.outcome = PollOutcome.MORE_PENDING if page.has_more else PollOutcome.CAUGHT_UP
            caught_up = not page.has_more
            result.next_poll_at = now + timedelta(seconds=poll.interval_seconds if caught_up else 0)
            _log_result(result)
            return result


def _note_internal_error(fail: Callable[..., PollResult], message: str) -> None:
    """Record an unexpected error as a failure, if the database lets us; the caller re-raises."""
    try:
        fail(f"{message}; see the logs", pause=False)
    except Exception:
        log.error("could not record a poll failure", exc_info=True)


def _log_result(result: PollResult) -> None:
    extra: dict[str, Any] = {
        "outcome": result.outcome.value,
        "pages": result.pages,
        "records": result.records,
        **{f"records_{name}": count for name, count in result.counts.items()},
    }
    if result.outcome in (PollOutcome.FAILED, PollOutcome.PAUSED):
        # The detail is our own message or the adapter's error class's message: no payload.
        log.warning("source poll failed", extra={**extra, "reason": result.detail})
    else:
        log.info("source polled", extra=extra)


def poll_round(
    db: Database,
    sources: Sequence[ConfiguredSource],
    https: dict[str, SourceHttp],
    *,
    only_if_due: bool = True,
    max_pages: int | None = PAGES_PER_POLL,
    should_stop: Callable[[], bool] | None = None,
    matcher: Matcher | None = None,
) -> list[PollResult]:
    """Poll each source once (those due, by default); one that raises does not stop the rest."""
    results: list[PollResult] = []
    for source in sources:
        if should_stop is not None and should_stop():
            break
        context = source_var.set(source.name)
        try:
            results.append(
                poll_source(
                    db,
                    source,
                    https[source.name],
                    max_pages=max_pages,
                    only_if_due=only_if_due,
                    should_stop=should_stop,
                    matcher=matcher,
                )
            )
        except Exception:
            # poll_source has recorded the failure; the type is logged, never the message.
            log.error("polling a source failed", exc_info=True)
            results.append(
                PollResult(source=source.name, outcome=PollOutcome.FAILED, detail="internal error")
            )
        finally:
            source_var.reset(context)
    return results


def tick_seconds(sources: Sequence[ConfiguredSource]) -> float:
    intervals = [s.poll.interval_seconds for s in sources if s.poll is not None]
    return max(0.5, min([TICK_SECONDS, *intervals]))


class BackgroundPoller:
    """Polls the app's polled sources from a worker thread, round after round, until stopped."""

    def __init__(
        self,
        db: Database,
        sources: Sequence[ConfiguredSource],
        *,
        http_factory: Callable[[ConfiguredSource], SourceHttp] | None = None,
        matcher: Matcher | None = None,
    ) -> None:
        self.db = db
        self.matcher = matcher
        self.sources = list(sources)
        self.stopping = threading.Event()
        self._wake: asyncio.Event | None = None
        factory = http_factory or self._httpx_for
        self.https: dict[str, SourceHttp] = {s.name: factory(s) for s in self.sources}
        self.rounds = 0

    async def run(self) -> None:
        """Poll due sources every tick; returns soon after `stop`, once the round in hand ends."""
        self._wake = asyncio.Event()
        tick = tick_seconds(self.sources)
        while not self.stopping.is_set():
            await run_in_threadpool(
                partial(
                    poll_round,
                    self.db,
                    self.sources,
                    self.https,
                    should_stop=self.stopping.is_set,
                    matcher=self.matcher,
                )
            )
            self.rounds += 1
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick)

    def _httpx_for(self, source: ConfiguredSource) -> SourceHttp:
        if source.poll is None:
            raise ValueError(f"source {source.name} is not polled")
        # Waits between retries end at once when the gateway stops.
        return HttpxSourceHttp(source.name, source.poll, sleep=interruptible_sleep(self.stopping))

    def stop(self) -> None:
        """Ask the poller to finish: the round in hand ends after its current page or request."""
        self.stopping.set()
        if self._wake is not None:
            self._wake.set()

    def grace_seconds(self) -> float:
        """How long a round can take to end once stopped: one request in flight, then a write."""
        timeouts = [s.poll.timeout_seconds for s in self.sources if s.poll is not None]
        return 2 * max(timeouts, default=0.0) + 10.0

    def close(self) -> None:
        for http in self.https.values():
            close = getattr(http, "close", None)
            if close is not None:
                close()


@asynccontextmanager
async def background_polling(
    db: Database,
    sources: Sequence[ConfiguredSource],
    *,
    http_factory: Callable[[ConfiguredSource], SourceHttp] | None = None,
    matcher: Matcher | None = None,
) -> AsyncIterator[BackgroundPoller | None]:
    """Run a BackgroundPoller for the app's lifetime; nothing at all when no source is polled.

    On the way out the poller is stopped and awaited, not cancelled: cancelling would abandon a
    worker thread mid-page, still writing as the database is disposed. Only a round that
    overruns its grace period is cancelled (its lease then expires on its own).
    """
    if not sources:
        yield None
        return
    poller = BackgroundPoller(db, sources, http_factory=http_factory, matcher=matcher)
    task = asyncio.create_task(poller.run(), name="source-poller")
    try:
        yield poller
    finally:
        poller.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), poller.grace_seconds())
        except TimeoutError:
            log.warning("the source poller did not stop in time; cancelled")
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        except Exception:
            log.error("the source poller had failed", exc_info=True)
        finally:
            poller.close()


def resume_source(
    session: Session,
    *,
    source: str,
    polled_sources: Collection[str],
    principal: Principal,
    now: datetime,
) -> SourceState:
    """Un-pause a polled source and make it due at once (audited); a running one is left as is."""
    validate_source_name(source)
    if source not in polled_sources:
        raise NotFound(f"{source} is not a polled source")
    state_repo.ensure(session, source)
    state = state_repo.lock(session, source)
    if state is None:  # pragma: no cover - ensured just above
        raise NotFound(f"{source} is not a polled source")
    was_paused = state.paused
    if was_paused:
        state.paused = False
        state.paused_reason = None
        state.consecutive_failures = 0
        state.next_poll_at = None
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.ADMINISTER,
        resource="sources",
        person_ids=[],
        now=now,
        detail={"source": source, "resumed": was_paused},
    )
    return state
