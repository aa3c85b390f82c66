"""Outbound HTTP to polled sources: retries, backoff, Retry-After, fatal answers, secrets.

Every call goes to respx; nothing sleeps: `sleep` records the waits that would have been slept.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from adapters.base import FatalSourceError, RetriableSourceError
from gateway.logs import ContextFilter, configure_logging
from gateway.services.source_http import (
    MAX_BACKOFF_SECONDS,
    BackoffWait,
    HttpxSourceHttp,
    parse_retry_after,
)
from gateway.settings import PollSettings

BASE_URL = "https://vendor.example/api/v2"
TOKEN = "tok-Zr8XqLw2-never-log-me"
TOKEN_ENV = "CRC_VENDOR_TOKEN"
NOW = datetime(2026, 3, 4, 9, 15, tzinfo=UTC)
CURSOR = "eyJsYXN0SWQiOiJSSi0wMDAxMjMifQ"
PAGE = {"items": [], "nextCursor": None}


def make_http(
    sleeps: list[float], *, max_attempts: int = 4, environ: dict[str, str] | None = None, **kw: Any
) -> HttpxSourceHttp:
    poll = PollSettings(
        base_url=BASE_URL,  # type: ignore[arg-type]
        max_attempts=max_attempts,
        timeout_seconds=5,
        token_env=TOKEN_ENV,
    )
    return HttpxSourceHttp(
        "crc-vendor",
        poll,
        sleep=sleeps.append,
        now=lambda: NOW,
        environ={TOKEN_ENV: TOKEN} if environ is None else environ,
        **kw,
    )


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(sleeps: list[float]) -> Iterator[HttpxSourceHttp]:
    with make_http(sleeps) as client:
        yield client


@pytest.fixture
def vendor() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as router:
        yield router


def test_a_page_is_fetched_with_the_token_and_the_query(
    http: HttpxSourceHttp, vendor: respx.MockRouter, sleeps: list[float]
) -> None:
    route = vendor.get("/cases", params={"cursor": CURSOR, "limit": "100"}).respond(json=PAGE)

    assert http.get_json("/cases", params={"cursor": CURSOR, "limit": "100"}) == PAGE

    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert request.url.path == "/api/v2/cases"
    assert sleeps == []


def test_a_rotated_token_is_used_without_a_restart(
    sleeps: list[float], vendor: respx.MockRouter
) -> None:
    environ = {TOKEN_ENV: "first"}
    route = vendor.get("/cases").respond(json=PAGE)
    with make_http(sleeps, environ=environ) as http:
        http.get_json("/cases")
        environ[TOKEN_ENV] = "second"
        http.get_json("/cases")

    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer first",
        "Bearer second",
    ]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_a_5xx_408_or_429_is_retried_with_growing_jittered_waits(
    http: HttpxSourceHttp, vendor: respx.MockRouter, sleeps: list[float], status: int
) -> None:
    route = vendor.get("/cases").mock(
        side_effect=[httpx.Response(status), httpx.Response(status), httpx.Response(200, json=PAGE)]
    )

    assert http.get_json("/cases") == PAGE

    assert route.call_count == 3
    wait = BackoffWait()
    assert len(sleeps) == 2
    for attempt, slept in enumerate(sleeps, start=1):
        low, high = wait.bounds(attempt)
        assert low <= slept <= high


def test_backoff_doubles_to_a_cap_and_jitters_over_the_upper_half() -> None:
    bounds = [BackoffWait().bounds(attempt) for attempt in range(1, 10)]

    assert bounds[:4] == [(0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0)]
    assert bounds[-1] == (MAX_BACKOFF_SECONDS / 2, MAX_BACKOFF_SECONDS)


def test_many_waits_stay_within_their_bounds(vendor: respx.MockRouter) -> None:
    sleeps: list[float] = []
    rng = random.Random(20260304)
    vendor.get("/cases").respond(500)
    with (
        make_http(sleeps, max_attempts=12, wait=BackoffWait(rng=rng.random)) as http,
        pytest.raises(RetriableSourceError),
    ):
        http.get_json("/cases")

    wait = BackoffWait()
    assert len(sleeps) == 11
    assert all(
        wait.bounds(n)[0] <= slept <= wait.bounds(n)[1] for n, slept in enumerate(sleeps, start=1)
    )
    # Jitter: the waits are not simply the bounds.
    assert len({round(s / wait.bounds(n)[1], 6) for n, s in enumerate(sleeps, start=1)}) > 1


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_waited_at_least(
    http: HttpxSourceHttp, vendor: respx.MockRouter, sleeps: list[float], status: int
) -> None:
    vendor.get("/cases").mock(
        side_effect=[
            httpx.Response(status, headers={"Retry-After": "7"}),
            httpx.Response(200, json=PAGE),
        ]
    )

    http.get_json("/cases")

    assert sleeps == [7.0]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_as_an_http_date_is_waited_at_least(
    http: HttpxSourceHttp, vendor: respx.MockRouter, sleeps: list[float], status: int
) -> None:
    when = format_datetime(NOW + timedelta(seconds=12), usegmt=True)
    vendor.get("/cases").mock(
        side_effect=[
            httpx.Response(status, headers={"Retry-After": when}),
            httpx.Response(200, json=PAGE),
        ]
    )

    http.get_json("/cases")

    assert sleeps == [12.0]


def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it(
    vendor: respx.MockRouter,
) -> None:
    sleeps: list[float] = []
    vendor.get("/cases").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200)]
    )
    # An empty body is not JSON: the answer is fatal, but only after the one retry.
    with (
        make_http(sleeps, wait=BackoffWait(rng=lambda: 1.0)) as http,
        pytest.raises(FatalSourceError),
    ):
        http.get_json("/cases")

    assert sleeps == [0.5]


def test_a_retry_after_longer_than_we_wait_gives_up_at_once_and_passes_it_on(
    http: HttpxSourceHttp, vendor: respx.MockRouter, sleeps: list[float]
) -> None:
    route = vendor.get("/cases").respond(503, headers={"Retry-After": "3600"})

    with pytest.raises(RetriableSourceError) as caught:
        http.get_json("/cases")

    assert route.call_count == 1
    assert sleeps == []
    assert caught.value.retry_after == 3600.0


def test_exhausted_retries_surface_as_retriable_with_the_last_retry_after(
    http: HttpxSourceHttp, vendor: respx.MockRouter, sleeps: list[float]
) -> None:
    route = vendor.get("/cases").respond(503, headers={"Retry-After": "2"})

    with pytest.raises(RetriableSourceError) as caught:
        http.get_json("/cases", params={"cursor": CURSOR})

    assert route.call_count == 4
    assert sleeps == [2.0, 2.0, 2.0]
    assert caught.value.retry_after == 2.0
    assert "503" in str(caught.value)
    assert "4 attempt" in str(caught.value)
    assert CURSOR not in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.PoolTimeout("no connection"),
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("server hung up"),
    ],
    ids=lambda failure: type(failure).__name__,
)
def test_timeouts_and_broken_connections_are_retried(
    http: HttpxSourceHttp, vendor: respx.MockRouter, sleeps: list[float], failure: Exception
) -> None:
    route = vendor.get("/cases").mock(side_effect=[failure, httpx.Response(200, json=PAGE)])

    assert http.get_json("/cases") == PAGE
    assert route.call_count == 2
    assert len(sleeps) == 1


def test_timeouts_that_never_end_surface_as_retriable(
    http: HttpxSourceHttp, vendor: respx.MockRouter
) -> None:
    route = vendor.get("/cases").mock(side_effect=httpx.ReadTimeout("read timed out"))

    with pytest.raises(RetriableSourceError, match="timed out"):
        http.get_json("/cases")

    assert route.call_count == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301, 302])
def test_other_4xx_and_redirects_are_fatal_at_once(
    http: HttpxSourceHttp, vendor: respx.MockRouter, sleeps: list[float], status: int
) -> None:
    headers = {"Location": "https://elsewhere.example/cases"} if status < 400 else {}
    route = vendor.get("/cases").respond(status, headers=headers)

    with pytest.raises(FatalSourceError, match=str(status)):
        http.get_json("/cases", params={"cursor": CURSOR})

    assert route.call_count == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "body", [b"<html>maintenance</html>", b"", b'{"items": [', b"[" * 100_000 + b"]" * 100_000]
)
def test_a_body_that_is_not_json_is_fatal(
    http: HttpxSourceHttp, vendor: respx.MockRouter, body: bytes
) -> None:
    vendor.get("/cases").respond(200, content=body)

    with pytest.raises(FatalSourceError, match="not JSON"):
        http.get_json("/cases")


def test_a_body_larger_than_the_limit_is_fatal(
    sleeps: list[float], vendor: respx.MockRouter
) -> None:
    vendor.get("/cases").respond(200, json={"items": ["x" * 2000], "nextCursor": None})

    with make_http(sleeps, max_response_bytes=1000) as http, pytest.raises(FatalSourceError):
        http.get_json("/cases")


def test_a_missing_token_is_fatal_before_any_request(sleeps: list[float]) -> None:
    with (
        respx.mock(base_url=BASE_URL, assert_all_called=False) as vendor,
        make_http(sleeps, environ={}) as http,
    ):
        route = vendor.get("/cases").respond(json=PAGE)
        with pytest.raises(FatalSourceError, match=TOKEN_ENV):
            http.get_json("/cases")

    assert route.call_count == 0


def test_the_token_and_the_query_are_never_logged(
    http: HttpxSourceHttp, vendor: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(ContextFilter())
    vendor.get("/cases").mock(
        side_effect=[
            httpx.Response(500, text=f"upstream said {TOKEN}"),
            httpx.ReadTimeout("timed out"),
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.Response(401, text="bad token"),
        ]
    )

    with pytest.raises(FatalSourceError) as caught:
        http.get_json("/cases", params={"cursor": CURSOR, "limit": "100"})

    assert caplog.records, "the retries were logged"
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in str(vars(record))
    ours = [r for r in caplog.records if r.name.startswith("gateway")]
    assert [r.getMessage() for r in ours] == ["source request failed; retrying"] * 3
    for record in ours:
        assert CURSOR not in str(vars(record))
        assert record.path == "/cases"  # type: ignore[attr-defined]
        assert record.source == "crc-vendor"  # type: ignore[attr-defined]
    assert TOKEN not in str(caught.value)
    assert CURSOR not in str(caught.value)


def test_httpx_request_lines_carrying_query_strings_are_off_once_logging_is_configured() -> None:
    # httpx logs each URL (query string and all) at INFO; the gateway's logging setup mutes it.
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore", "uvicorn.access")]
    saved = [(logger.level, logger.disabled) for logger in loggers]
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    try:
        configure_logging(fmt="json", level="DEBUG")
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    finally:
        for logger, (level, disabled) in zip(loggers, saved, strict=True):
            logger.setLevel(level)
            logger.disabled = disabled
        root.handlers = handlers
        root.setLevel(root_level)


def test_the_client_is_closed_with_the_context() -> None:
    with make_http([]) as http:
        pass

    assert http.client.is_closed


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("Wed, 04 Mar 2026 09:16:00 GMT", 60.0),
        ("Wed, 04 Mar 2026 09:00:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("-3", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_values_are_read_in_both_forms(header: str | None, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds
