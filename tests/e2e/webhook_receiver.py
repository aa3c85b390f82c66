"""A real webhook receiver for end-to-end tests: a threaded HTTP server on 127.0.0.1.

It does what a careful subscriber does: checks the Standard Webhooks signature on its own (not
with the gateway's code), applies each `webhook-id` once and counts the duplicates, and records
per person the order in which events were applied. It also measures what a test needs to judge
the sender: requests in flight per `webhook-id` at once, and what it answered.

Its behaviour is scripted and can change at any moment: a `Reply` for every request, or a
function of the `Arrival` deciding per request. `stop()` closes the socket (connection refused)
and `start()` opens it again on the same port.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import select
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TIMESTAMP_TOLERANCE_SECONDS = 5 * 60
# How often a delayed answer looks whether the sender gave up (closed its end).
POLL_SECONDS = 0.02


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Arrival:
    """One request as the script sees it, after its signature was checked."""

    webhook_id: str
    person_id: str
    seq: int
    type: str
    # 1 for the first time this webhook-id arrived, 2 for the second...
    number: int


@dataclass(frozen=True)
class Reply:
    """What to do with a request: wait `delay` seconds, then answer `status`.

    A 2xx applies the event when answered (as a receiver committing its work), or before the
    wait with `apply_first` (so a sender that dies during the wait leaves an applied event).
    `drop` closes the connection without any answer.
    """

    status: int = 200
    delay: float = 0.0
    apply_first: bool = False
    drop: bool = False
    retry_after: float | None = None


OK = Reply()
GONE = Reply(410)


def status(code: int, *, retry_after: float | None = None) -> Reply:
    return Reply(code, retry_after=retry_after)


def slow(seconds: float, *, apply_first: bool = False) -> Reply:
    return Reply(200, delay=seconds, apply_first=apply_first)


Script = Callable[[Arrival], Reply]


def failing_person(person_id: str, *, reply: Reply = Reply(500), otherwise: Reply = OK) -> Script:
    """Answer `reply` to every event of one person, `otherwise` to everyone else."""
    return lambda arrival: reply if arrival.person_id == person_id else otherwise


def failing_first(k: int, *, reply: Reply = Reply(500), otherwise: Reply = OK) -> Script:
    """Answer `reply` to the first `k` arrivals of every webhook-id, then `otherwise`."""
    return lambda arrival: reply if arrival.number <= k else otherwise


class WebhookReceiver:
    """The receiving system: verifies, dedupes, applies in arrival order, and keeps score."""

    def __init__(self, secret: str, *, port: int | None = None) -> None:
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._script: Script = lambda _arrival: OK
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        # What arrived and what was done with it.
        self.arrivals: list[Arrival] = []
        self.applied: dict[str, int] = {}  # webhook-id -> seq, applied once each
        self.order: dict[str, list[int]] = defaultdict(list)  # person -> seqs as applied
        self.duplicates: Counter[str] = Counter()  # webhook-id -> 2xx repeats not applied
        self.answered: Counter[int] = Counter()  # status (0: dropped unanswered) -> times
        self.abandoned = 0  # the sender hung up while we were still working
        self.bad_signatures = 0
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()  # webhook-id -> most at once
        self.max_total_in_flight = 0  # requests of any webhook-id at once

    # -- control ---------------------------------------------------------------------------

    def behave(self, how: Reply | Script) -> None:
        """Answer every request from now on with a reply, or as a script decides."""
        script: Script = (lambda _arrival: how) if isinstance(how, Reply) else how
        with self._lock:
            self._script = script

    def start(self) -> WebhookReceiver:
        """Listen (again) on this receiver's port."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection: the receiver is down."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- reading the score -------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[WebhookReceiver], bool], timeout: float) -> bool:
        """Block until `predicate(self)` holds (checked after every request); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: predicate(self), timeout=timeout)

    def applied_count(self) -> int:
        with self._lock:
            return len(self.applied)

    def received(self, webhook_id: str) -> int:
        with self._lock:
            return sum(1 for arrival in self.arrivals if arrival.webhook_id == webhook_id)

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the score, for assertions."""
        with self._lock:
            return {
                "applied": dict(self.applied),
                "order": {person: list(seqs) for person, seqs in self.order.items()},
                "duplicates": Counter(self.duplicates),
                "answered": Counter(self.answered),
                "abandoned": self.abandoned,
                "bad_signatures": self.bad_signatures,
                "max_in_flight": Counter(self.max_in_flight),
                "max_total_in_flight": self.max_total_in_flight,
                "arrivals": list(self.arrivals),
            }

    # -- the work (called from the server's threads) -------------------------------------------

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        try:
            msg_id = headers["webhook-id"]
            timestamp = int(headers["webhook-timestamp"])
            offered = headers["webhook-signature"].split()
        except (KeyError, ValueError):
            return False
        if abs(time.time() - timestamp) > TIMESTAMP_TOLERANCE_SECONDS:
            return False
        content = f"{msg_id}.{timestamp}.".encode() + body
        digest = hmac.new(self.key, content, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(digest).decode()
        return any(hmac.compare_digest(expected, candidate) for candidate in offered)

    def arrive(self, headers: dict[str, str], body: bytes) -> tuple[Arrival, Reply] | None:
        """Check and register a request; None if it is not a genuine delivery."""
        if not self.verify(headers, body):
            with self._lock:
                self.bad_signatures += 1
                self._lock.notify_all()
            return None
        event = json.loads(body)
        data = event["data"]
        webhook_id = headers["webhook-id"]
        if webhook_id != f"evt_{data['id']}" or event["type"] != data["type"]:
            with self._lock:
                self.bad_signatures += 1
                self._lock.notify_all()
            return None
        with self._lock:
            number = 1 + sum(1 for a in self.arrivals if a.webhook_id == webhook_id)
            arrival = Arrival(webhook_id, data["person_id"], int(data["id"]), data["type"], number)
            self.arrivals.append(arrival)
            self.in_flight[webhook_id] += 1
            self.max_in_flight[webhook_id] = max(
                self.max_in_flight[webhook_id], self.in_flight[webhook_id]
            )
            self.max_total_in_flight = max(self.max_total_in_flight, sum(self.in_flight.values()))
            script = self._script
            self._lock.notify_all()
        return arrival, script(arrival)

    def apply(self, arrival: Arrival) -> None:
        """Apply an event once; a repeat of an applied webhook-id is only counted."""
        with self._lock:
            if arrival.webhook_id in self.applied:
                self.duplicates[arrival.webhook_id] += 1
            else:
                self.applied[arrival.webhook_id] = arrival.seq
                self.order[arrival.person_id].append(arrival.seq)
            self._lock.notify_all()

    def leave(self, arrival: Arrival, *, answered: int | None) -> None:
        with self._lock:
            self.in_flight[arrival.webhook_id] -= 1
            if self.in_flight[arrival.webhook_id] == 0:
                del self.in_flight[arrival.webhook_id]
            if answered is None:
                self.abandoned += 1
            else:
                self.answered[answered] += 1
            self._lock.notify_all()

    def in_flight_ids(self) -> set[str]:
        with self._lock:
            return set(self.in_flight)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Several workers at full concurrency connect at once; the default backlog of 5 drops SYNs.
    request_queue_size = 128
    receiver: WebhookReceiver


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so `stop()` leaves no kept-alive connection behind.
    protocol_version = "HTTP/1.0"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.receiver.track(self.connection, open_=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the score is what the tests read."""

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {name.lower(): value for name, value in self.headers.items()}
        registered = receiver.arrive(headers, body)
        if registered is None:
            self._answer(401)
            return
        arrival, reply = registered
        answered: int | None = None
        try:
            if reply.drop:
                answered = 0  # no answer at all
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if reply.apply_first and 200 <= reply.status < 300:
                receiver.apply(arrival)
            if reply.delay and not self._wait(reply.delay):
                return  # the sender gave up (timed out or died): nothing is committed
            if not reply.apply_first and 200 <= reply.status < 300:
                receiver.apply(arrival)
            self._answer(reply.status, retry_after=reply.retry_after)
            answered = reply.status
        except OSError:
            return
        finally:
            receiver.leave(arrival, answered=answered)

    def _wait(self, seconds: float) -> bool:
        """Sleep, watching the connection; False as soon as the sender has hung up."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, POLL_SECONDS))
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return False
                except OSError:
                    return False
        return True

    def _answer(self, code: int, *, retry_after: float | None = None) -> None:
        payload = b'{"received": true}' if 200 <= code < 300 else b""
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        if retry_after is not None:
            self.send_header("retry-after", str(retry_after))
        self.end_headers()
        self.wfile.write(payload)
