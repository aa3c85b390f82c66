"""Outbound HTTP to the sources the gateway polls: the one module that retries, with tenacity.

`HttpxSourceHttp` is what the gateway lends an adapter's `fetch` (`adapters.base.SourceHttp`).
It owns the client, the bearer token, timeouts and retries:

- timeouts, broken connections, 5xx, 408 and 429 are retried with exponential backoff and jitter,
  up to the source's `max_attempts`; a `Retry-After` on 429 or 503 (seconds or an HTTP date) is
  waited at least, and one longer than `max_retry_after` ends the retries at once, so the poller
  comes back later instead of holding a worker that long;
- when the attempts run out the caller gets `RetriableSourceError` (with the Retry-After, if any);
- a 3xx (redirects are not followed: the token must not travel), any other 4xx, a body that is
  not JSON or is too large, or a missing token all raise `FatalSourceError`.

Logs and error messages name the method, the path (never the query string: cursors and filters
can carry identifiers), the status and the attempt; never the token, the URL's query or a body.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Self

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from adapters.base import FatalSourceError, RetriableSourceError
from gateway import __version__
from gateway.logs import source_var
from gateway.settings import PollSettings

log = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS: Final = 0.5
MAX_BACKOFF_SECONDS: Final = 30.0
MAX_RETRY_AFTER_SECONDS: Final = 60.0
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024

# Retry-After is honoured on these (RFC 9110 §10.2.3; RFC 6585 §4).
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_TRANSIENT_TRANSPORT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


class Interrupted(Exception):
    """A wait before a retry was cut short because the gateway is shutting down."""


def interruptible_sleep(stopping: threading.Event) -> Callable[[float], None]:
    """A `sleep` for HttpxSourceHttp that raises Interrupted as soon as `stopping` is set."""

    def sleep(seconds: float) -> None:
        if stopping.wait(seconds):
            raise Interrupted

    return sleep


class TransientFailure(Exception):
    """One attempt failed in a way worth trying again."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


class BackoffWait(wait_base):
    """Exponential backoff with "equal jitter", never shorter than the server's Retry-After.

    After attempt n the base is `min(maximum, initial * 2**(n-1))` and the wait is drawn
    uniformly from [base/2, base]: half is kept so waits still grow, half is random so replicas
    that failed together do not come back together.
    """

    def __init__(
        self,
        *,
        initial: float = INITIAL_BACKOFF_SECONDS,
        maximum: float = MAX_BACKOFF_SECONDS,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.rng = rng

    def bounds(self, attempt: int) -> tuple[float, float]:
        """The range the wait after `attempt` is drawn from (before any Retry-After)."""
        base = min(self.maximum, self.initial * 2 ** (attempt - 1))
        return base / 2, base

    def __call__(self, retry_state: RetryCallState) -> float:
        low, high = self.bounds(retry_state.attempt_number)
        delay = low + (high - low) * self.rng()
        retry_after = _retry_after_of(retry_state)
        return delay if retry_after is None else max(delay, retry_after)


class _RetryAfterTooLong(stop_base):
    """Stop at once when the server asks for a longer wait than we will sleep through."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        retry_after = _retry_after_of(retry_state)
        return retry_after is not None and retry_after > self.limit


def _retry_after_of(retry_state: RetryCallState) -> float | None:
    outcome = retry_state.outcome
    failure = outcome.exception() if outcome is not None and outcome.failed else None
    return failure.retry_after if isinstance(failure, TransientFailure) else None


class HttpxSourceHttp:
    """`adapters.base.SourceHttp` over an `httpx.Client`, for one polled source.

    `wait` and `sleep` are the seams for tests: `sleep=recorded.append` runs with no waiting at
    all and keeps the waits that would have been slept.
    """

    def __init__(
        self,
        source: str,
        poll: PollSettings,
        *,
        wait: Callable[[RetryCallState], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        environ: Mapping[str, str] = os.environ,
        transport: httpx.BaseTransport | None = None,
        max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.source = source
        self.poll = poll
        self.wait = wait if wait is not None else BackoffWait()
        self.sleep = sleep
        self.now = now
        self.environ = environ
        self.max_retry_after = max_retry_after
        self.max_response_bytes = max_response_bytes
        self.client = httpx.Client(
            base_url=str(poll.base_url),
            timeout=httpx.Timeout(poll.timeout_seconds),
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": f"crc-gateway/{__version__}"},
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        """GET a path under the base URL and decode its JSON body, retrying what is transient."""
        with _bound_source(self.source):
            retrying = Retrying(
                stop=stop_after_attempt(self.poll.max_attempts)
                | _RetryAfterTooLong(self.max_retry_after),
                wait=self.wait,
                retry=retry_if_exception_type(TransientFailure),
                sleep=self.sleep,
                before_sleep=lambda state: _log_retry(path, state),
                reraise=True,
            )
            try:
                return retrying(self._attempt, path, dict(params or {}))
            except TransientFailure as failure:
                attempts = retrying.statistics.get("attempt_number", self.poll.max_attempts)
                raise RetriableSourceError(
                    f"GET {path}: {failure.reason} (gave up after {attempts} attempt(s))",
                    retry_after=failure.retry_after,
                ) from None

    def _headers(self) -> dict[str, str]:
        # Read at every request, so a rotated token is picked up without a restart.
        name = self.poll.token_env
        if name is None:
            return {}
        token = self.environ.get(name, "").strip()
        if not token:
            raise FatalSourceError(
                f"the environment variable {name}, which should hold the source's token, is empty"
            )
        return {"Authorization": f"Bearer {token}"}

    def _attempt(self, path: str, params: dict[str, str]) -> Any:
        headers = self._headers()
        try:
            with self.client.stream("GET", path, params=params, headers=headers) as response:
                self._check_status(path, response)
                body = self._read(path, response)
        except _TRANSIENT_TRANSPORT_ERRORS as error:
            raise TransientFailure(_transport_reason(error)) from None
        except httpx.HTTPError as error:
            # Not a passing fault: a bad URL scheme, a malformed response encoding, and the like.
            raise FatalSourceError(f"GET {path}: {type(error).__name__}") from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FatalSourceError(f"GET {path}: the response body is not JSON") from None

    def _check_status(self, path: str, response: httpx.Response) -> None:
        status = response.status_code
        # 408 is the server timing the request out: as transient as a timeout on our side.
        if status in (408, 429) or status >= 500:
            retry_after = (
                parse_retry_after(response.headers.get("Retry-After"), now=self.now())
                if status in _RETRY_AFTER_STATUSES
                else None
            )
            raise TransientFailure(f"the source answered {status}", retry_after=retry_after)
        if status >= 300:
            raise FatalSourceError(
                f"GET {path}: the source answered {status} {response.reason_phrase}".rstrip()
            )

    def _read(self, path: str, response: httpx.Response) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():
            body.extend(chunk)
            if len(body) > self.max_response_bytes:
                raise FatalSourceError(
                    f"GET {path}: the response is larger than {self.max_response_bytes} bytes"
                )
        return bytes(body)


def _transport_reason(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    return f"connection failed ({type(error).__name__})"


def _log_retry(path: str, state: RetryCallState) -> None:
    outcome = state.outcome
    failure = outcome.exception() if outcome is not None else None
    log.warning(
        "source request failed; retrying",
        extra={
            "method": "GET",
            "path": path,
            "attempt": state.attempt_number,
            "reason": failure.reason if isinstance(failure, TransientFailure) else "error",
            "wait_seconds": round(state.upcoming_sleep, 3),
        },
    )


@contextmanager
def _bound_source(source: str) -> Iterator[None]:
    token = source_var.set(source)
    try:
        yield
    finally:
        source_var.reset(token)
