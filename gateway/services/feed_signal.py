"""Waking waiting feed readers and idle delivery workers as soon as the feed moves."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from gateway.db import Database
from gateway.repositories import changes as changes_repo

log = logging.getLogger(__name__)


class FeedSignal:
    """A broadcast: everyone waiting wakes when a change commits.

    Commits in this process signal at once (the database calls `notify_threadsafe` after any
    commit that published changes); commits by other replicas or a CLI import are seen by
    `watch`, which looks at the feed head while anyone waits. Waiters take the event before
    they read, so a change committed between their read and their wait still wakes them.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()
        self.waiters = 0
        # Set when the server starts shutting down: waiters answer now, workers stop.
        self.closing = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self.closing.is_set()

    def close(self) -> None:
        """Wake every waiter now and let none wait again (the server is shutting down)."""
        self.closing.set()
        self.fire()

    def close_threadsafe(self) -> None:
        """`close` from a signal handler or another thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(self.close)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a serving life on `loop` (an app's lifespan may run more than once)."""
        self._loop = loop
        self.closing = asyncio.Event()

    def current(self) -> asyncio.Event:
        return self._event

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def notify_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(self.fire)

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait on an event taken earlier with `current()`; whether it fired in time."""
        if self.closed:
            return False
        self.waiters += 1
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self.waiters -= 1

    async def watch(self, database: Database, interval: float) -> None:
        """Fire when the feed head moves, looking only while someone is waiting.

        `seen` changes only here, so a head that moved after a waiter's read differs from it;
        the first look always fires. A spurious wake costs a waiter one empty read.
        """
        seen: int | None = None
        while True:
            await asyncio.sleep(interval)
            if not self.waiters:
                continue
            try:
                head = await run_in_threadpool(database.read, changes_repo.head_seq)
            except SQLAlchemyError:
                log.warning("feed head check failed; will retry", exc_info=True)
                continue
            if head != seen:
                self.fire()
            seen = head
