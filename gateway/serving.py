"""uvicorn as the gateway runs it: with a request-head timeout and a shutdown that wakes long polls.

uvicorn bounds a request head's size (h11's `max_incomplete_event_size`) but not the time it
takes to arrive: its keep-alive timer is cancelled by any byte, and a new connection has no timer
at all, so a client trickling its headers (slow loris) holds a connection for ever. And on
SIGTERM uvicorn waits for open requests before the app's lifespan shutdown runs, so a long poll
would hold the exit for up to its `wait`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from fastapi import FastAPI

from gateway.settings import Settings

log = logging.getLogger(__name__)


_HEAD_END = b"\r\n\r\n"


class GatewayConfig(uvicorn.Config):
    """uvicorn's config plus the head limits that `HeadTimeoutProtocol` reads."""

    def __init__(
        self, app: Any, *, head_timeout_seconds: float, max_head_bytes: int, **options: Any
    ) -> None:
        super().__init__(
            app, http=HeadTimeoutProtocol, h11_max_incomplete_event_size=max_head_bytes, **options
        )
        self.head_timeout_seconds = head_timeout_seconds
        self.max_head_bytes = max_head_bytes


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not whole in time.

    The clock starts when the connection opens and again when a response completes on a
    kept-alive connection; it stops once h11 has the request line and every header. A head
    larger than the limit is answered 431 (h11's own limit only covers a head still arriving).
    """

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._head_timeout: float = getattr(config, "head_timeout_seconds", 10.0)
        self._max_head: int = getattr(config, "max_head_bytes", 16 * 1024)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_tail = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._head_too_large(data):
            self._refuse_large_head()
            return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_clock()  # the head is complete (or broken and being answered)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _head_too_large(self, data: bytes) -> bool:
        """Whether this head, with `data`, runs past the limit before its blank line."""
        room = self._max_head - self._head_bytes
        # The last bytes of the previous chunk, in case the blank line straddles the two.
        window = self._head_tail + data[: max(room, 0) + len(_HEAD_END)]
        if _HEAD_END in window:
            return False
        self._head_bytes += len(data)
        self._head_tail = data[-(len(_HEAD_END) - 1) :]
        return self._head_bytes > self._max_head

    def _refuse_large_head(self) -> None:
        self._stop_head_clock()
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Request Header Fields Too Large",
                "status": 431,
                "detail": f"the request line and headers exceed {self._max_head} bytes",
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\n"
            b"connection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()

    def _start_head_clock(self) -> None:
        self._stop_head_clock()
        self._head_bytes = 0
        self._head_tail = b""
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("closed a connection whose request head did not arrive in time")
            self.transport.close()


class GatewayServer(uvicorn.Server):
    """uvicorn's server, telling the app the moment a shutdown begins (`on_exit`)."""

    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # Runs in a signal handler: `on_exit` must only schedule work on the loop.
        self._on_exit()


def build_server(settings: Settings, app: FastAPI, *, host: str, port: int) -> GatewayServer:
    """The uvicorn server that runs `app`, with the limits in `settings.server`."""
    limits = settings.server
    config = GatewayConfig(
        app,
        head_timeout_seconds=limits.header_timeout_seconds,
        max_head_bytes=limits.max_header_bytes,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_keep_alive=limits.keep_alive_seconds,
        # A backstop: long polls answer at once, so only a slow request is ever cut off.
        timeout_graceful_shutdown=limits.graceful_shutdown_seconds,
    )
    return GatewayServer(config, on_exit=app.state.feed_signal.close_threadsafe)
