"""The outbox worker: claims due deliveries, sends signed webhooks, records what happened.

Any number of workers (in service replicas or `crc-gateway worker` processes) share the outbox.
A claim is a lease: the row is skipped by everyone else until the worker reports or the lease
runs out (a worker that died), so one event is never in flight twice at once. Delivery is
at-least-once: a worker killed after the receiver applied an event but before it recorded so
leaves the event to be sent again with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
import orjson
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gateway import __version__, metrics
from gateway.db import Database
from gateway.errors import GatewayError
from gateway.models import DeliveryStatus, utcnow
from gateway.repositories import subscriptions as subscriptions_repo
from gateway.services import webhooks, writeback
from gateway.services.changes import envelope
from gateway.services.feed_signal import FeedSignal
from gateway.services.golden import SurvivorshipPolicy
from gateway.services.webhooks import RetryPolicy, check_url, message_id, sign
from gateway.settings import WebhookSettings

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


class Result(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    GONE = "gone"


@dataclass(frozen=True)
class Attempt:
    """One claimed delivery, ready to send."""

    delivery_id: int
    lease_token: uuid.UUID
    subscription_id: uuid.UUID
    person_id: uuid.UUID
    seq: int
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Outcome:
    result: Result
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    # The receiver's JSON answer, if it sent one: it may carry the CRN it assigned.
    answer: Any = None


@dataclass(frozen=True)
class RoundResult:
    claimed: int
    delivered: int
    failed: int


class DeliveryWorker:
    """Delivers the outbox; `run_once` is one claim-and-send round, `run` loops until stopped."""

    def __init__(
        self,
        database: Database,
        settings: WebhookSettings,
        *,
        policy: SurvivorshipPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = utcnow,
        retry_policy: RetryPolicy | None = None,
        signal: FeedSignal | None = None,
        resolve: Callable[[str, int], Awaitable[list[str]]] | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.retry = retry_policy or RetryPolicy(settings)
        self.signal = signal
        self._resolve = resolve or _resolve
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={"user-agent": f"crc-gateway/{__version__}"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, keeping up to `concurrency` deliveries in flight.

        Free slots are filled as soon as they open, so one slow receiver holds only its own
        slot. Outcomes are recorded by one recorder, several per transaction when they finish
        together (on SQLite every transaction queues for the one write lock). On stop, the
        deliveries in flight finish and are recorded first.
        """
        recorder = _Recorder(self)
        recording = asyncio.create_task(recorder.run())
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                wake = self.signal.current() if self.signal else None
                recorded = recorder.current()
                free = self.settings.concurrency - len(in_flight)
                attempts: list[Attempt] = []
                if free > 0:
                    try:
                        attempts = await self._claim_due(limit=free)
                    except Exception:
                        # A background worker must outlive any failure: claims run out and
                        # are taken again.
                        log.exception("claiming deliveries failed; will retry")
                    for attempt in attempts:
                        task = asyncio.create_task(self._deliver(attempt, recorder))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                if attempts and len(in_flight) < self.settings.concurrency:
                    continue  # more may be due at once
                await self._idle(stop, wake, recorded)
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            await recorder.drain()
            recording.cancel()
            with suppress(asyncio.CancelledError):
                await recording

    async def _idle(
        self, stop: asyncio.Event, wake: asyncio.Event | None, recorded: asyncio.Event
    ) -> None:
        """Until stop, a commit that published changes, a recorded outcome, or the idle tick."""
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(recorded.wait()),
        ]
        if wake is not None and self.signal is not None:
            waits.append(asyncio.ensure_future(self.signal.wait(wake, 3600)))
        _done, pending = await asyncio.wait(
            waits, timeout=self.settings.idle_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _deliver(self, attempt: Attempt, recorder: _Recorder) -> None:
        outcome = await self._send(attempt)
        await recorder.put(attempt, outcome)

    async def _claim_due(self, *, limit: int) -> list[Attempt]:
        now = self.clock()
        # A read first: an idle worker should not take SQLite's write lock twice a second.
        due = await run_in_threadpool(
            self.database.read, lambda session: subscriptions_repo.has_due(session, now=now)
        )
        if not due:
            return []
        return await run_in_threadpool(
            self.database.write, lambda session: self._claim(session, now, limit=limit)
        )

    async def run_once(self) -> RoundResult:
        """One round: claim what is due (up to `concurrency`), send it, record the outcomes."""
        attempts = await self._claim_due(limit=self.settings.concurrency)
        if not attempts:
            return RoundResult(0, 0, 0)
        outcomes = await asyncio.gather(*(self._send(attempt) for attempt in attempts))
        done = list(zip(attempts, outcomes, strict=True))
        await run_in_threadpool(self._record_safely, done)
        delivered = sum(1 for outcome in outcomes if outcome.result is Result.DELIVERED)
        return RoundResult(len(attempts), delivered, len(attempts) - delivered)

    def _claim(self, session: Session, now: datetime, *, limit: int) -> list[Attempt]:
        # Callers claim no more than they send at once: a claim waiting its turn would spend
        # its lease.
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        claimed = subscriptions_repo.claim_due(
            session, now=now, limit=limit, lease_until=lease_until
        )
        if not claimed:
            return []
        changes = subscriptions_repo.changes_by_seq(session, (c.seq for c in claimed))
        subscriptions = {
            sid: subscriptions_repo.get(session, sid)
            for sid in {c.subscription_id for c in claimed}
        }
        timestamp = int(now.timestamp())
        attempts = []
        for item in claimed:
            subscription = subscriptions[item.subscription_id]
            change = changes.get(item.seq)
            if subscription is None or change is None:  # pragma: no cover - kept by foreign keys
                continue
            data = envelope(change)
            body = orjson.dumps(
                {"type": change.type, "timestamp": data["occurred_at"], "data": data}
            )
            msg_id = message_id(item.seq)
            attempts.append(
                Attempt(
                    delivery_id=item.delivery_id,
                    lease_token=item.lease_token,
                    subscription_id=item.subscription_id,
                    person_id=item.person_id,
                    seq=item.seq,
                    url=subscription.url,
                    headers={
                        "content-type": "application/json",
                        "webhook-id": msg_id,
                        "webhook-timestamp": str(timestamp),
                        "webhook-signature": " ".join(
                            sign(secret, msg_id, timestamp, body)
                            for secret in webhooks.signing_secrets(subscription, now)
                        ),
                    },
                    body=body,
                )
            )
        return attempts

    async def _send(self, attempt: Attempt) -> Outcome:
        started = time.perf_counter()
        try:
            check_url(attempt.url, self.settings)
        except GatewayError:
            return Outcome(Result.FAILED, error="the URL's host is no longer allowed")
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                url, headers, extensions = await self._target(attempt.url)
                async with self._client.stream(
                    "POST",
                    url,
                    content=attempt.body,
                    headers={**attempt.headers, **headers},
                    extensions=extensions,
                ) as response:
                    answer = await self._read_answer(response)
                    status = response.status_code
                    retry_after = _retry_after(response.headers.get("retry-after"))
        except _Refused as refused:
            outcome = Outcome(Result.FAILED, error=str(refused))
        except (TimeoutError, httpx.TimeoutException):
            outcome = Outcome(Result.FAILED, error="timed out")
        except httpx.HTTPError as error:
            outcome = Outcome(Result.FAILED, error=f"could not deliver ({type(error).__name__})")
        else:
            if 200 <= status < 300:
                outcome = Outcome(Result.DELIVERED, status=status, answer=answer)
            elif status == 410:
                outcome = Outcome(Result.GONE, status=status, error="the receiver answered 410")
            else:
                outcome = Outcome(
                    Result.FAILED,
                    status=status,
                    error=f"the receiver answered {status}",
                    retry_after=retry_after if status in (429, 503) else None,
                )
        metrics.WEBHOOK_ATTEMPTS.labels(result=outcome.result.value).inc()
        metrics.WEBHOOK_SECONDS.observe(time.perf_counter() - started)
        return outcome

    async def _target(self, url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """Where to connect. A host the allow-list names exactly is called by its name. One
        admitted by a wildcard is resolved here, must resolve only to public addresses, and is
        connected to at the address checked (its name still in Host and in TLS), so DNS cannot
        turn it towards an internal address between the check and the call."""
        parsed = httpx.URL(url)
        host = parsed.host
        if webhooks.listed_exactly(host, self.settings.allowed_hosts):
            return url, {}, {}
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = await self._resolve(host, port)
        except OSError:
            raise _Refused("the host's name could not be resolved") from None
        if not addresses or not all(ipaddress.ip_address(a).is_global for a in addresses):
            raise _Refused("the host resolves to a non-public address")
        pinned = parsed.copy_with(host=addresses[0])
        return str(pinned), {"host": parsed.netloc.decode("ascii")}, {"sni_hostname": host}

    async def _read_answer(self, response: httpx.Response) -> Any:
        """The receiver's JSON answer, if small; anything else is no answer (not an error)."""
        if not 200 <= response.status_code < 300:
            return None
        if "json" not in response.headers.get("content-type", ""):
            return None
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body.extend(chunk)
            if len(body) > self.settings.max_response_bytes:
                return None
        try:
            return orjson.loads(bytes(body)) if body else None
        except orjson.JSONDecodeError:
            return None

    def _record_safely(self, done: Sequence[tuple[Attempt, Outcome]]) -> None:
        """Record outcomes in one transaction; one that cannot be recorded spoils no other."""
        if not done:
            return

        def work(session: Session) -> None:
            for attempt, outcome in done:
                try:
                    with session.begin_nested():
                        self._record(session, attempt, outcome)
                except DBAPIError:
                    raise  # the whole transaction is rerun (or given up) by Database.write
                except Exception:
                    log.exception(
                        "could not record a delivery outcome; it will be sent again",
                        extra={"subscription_id": str(attempt.subscription_id), "seq": attempt.seq},
                    )

        try:
            self.database.write(work)
        except SQLAlchemyError:
            # The leases run out and the deliveries are tried again: at-least-once, never lost.
            log.warning(
                "could not record delivery outcomes; they will be sent again",
                extra={"deliveries": len(done)},
                exc_info=True,
            )

    def _record(self, session: Session, attempt: Attempt, outcome: Outcome) -> None:
        now = self.clock()
        row = subscriptions_repo.held(session, attempt.delivery_id, attempt.lease_token)
        if row is None:
            log.warning(
                "delivery lease lost before its outcome was recorded",
                extra={"subscription_id": str(attempt.subscription_id), "seq": attempt.seq},
            )
            return
        subscription = subscriptions_repo.get(session, attempt.subscription_id)
        if subscription is None:  # pragma: no cover - its deliveries go with it
            return
        row.leased_until = None
        row.lease_token = None
        row.last_status = outcome.status
        context = {
            "subscription_id": str(attempt.subscription_id),
            "seq": attempt.seq,
            "status": outcome.status,
        }
        if outcome.result is Result.DELIVERED:
            row.attempts += 1
            row.status = DeliveryStatus.DELIVERED.value
            row.delivered_at = now
            row.last_error = self._write_back(session, attempt, subscription.client_id, outcome)
            subscription.last_success_at = now
            return
        subscription.last_failure_at = now
        subscription.last_error = outcome.error
        if outcome.result is Result.GONE:
            # Not the event's fault: it waits, undelivered, for the subscription to be re-enabled.
            row.next_attempt_at = now
            row.last_error = outcome.error
            if subscription.active:
                subscription.active = False
                subscription.disabled_reason = "the receiver answered 410 Gone"
                subscription.disabled_at = now
                log.warning("subscription disabled: the receiver answered 410", extra=context)
            return
        row.attempts += 1
        row.last_error = outcome.error
        wait = self.retry.after_failure(row.attempts)
        if wait is None:
            row.status = DeliveryStatus.DEAD.value
            row.dead_at = now
            log.warning("delivery dead-lettered", extra={**context, "attempts": row.attempts})
            return
        if outcome.retry_after is not None:
            wait = max(wait, min(outcome.retry_after, MAX_RETRY_AFTER_SECONDS))
        row.next_attempt_at = now + timedelta(seconds=wait)
        log.info(
            "delivery failed; will retry",
            extra={**context, "attempts": row.attempts, "error": outcome.error},
        )

    def _write_back(
        self,
        session: Session,
        attempt: Attempt,
        client_id: uuid.UUID | None,
        outcome: Outcome,
    ) -> str | None:
        """Apply a CRN the receiver answered with; a refusal is noted, the delivery stands."""
        answer = outcome.answer
        if not isinstance(answer, dict) or "crn" not in answer:
            return None
        if answer.get("person_id") not in (None, str(attempt.person_id)):
            return "write-back ignored: the answer names another person"
        try:
            crn = writeback.parse_crn(answer["crn"])
            writeback.assign_crn(
                session,
                attempt.person_id,
                crn=crn,
                policy=self.policy,
                now=self.clock(),
                origin_client_id=client_id,
                origin_subscription_id=attempt.subscription_id,
            )
        except GatewayError as error:
            return f"write-back refused: {error.slug}"
        return None


class _Recorder:
    """Records outcomes as deliveries finish, batching those that finish together."""

    def __init__(self, worker: DeliveryWorker) -> None:
        self.worker = worker
        self.queue: asyncio.Queue[tuple[Attempt, Outcome]] = asyncio.Queue()
        self._recorded = asyncio.Event()

    def current(self) -> asyncio.Event:
        """Set when the next batch is recorded (a person's next change may be due then)."""
        return self._recorded

    async def put(self, attempt: Attempt, outcome: Outcome) -> None:
        await self.queue.put((attempt, outcome))

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await run_in_threadpool(self.worker._record_safely, batch)
            except Exception:
                # Unrecorded deliveries are sent again when their leases run out.
                log.exception("recording delivery outcomes failed")
            finally:
                for _ in batch:
                    self.queue.task_done()
                self._recorded.set()
                self._recorded = asyncio.Event()

    async def drain(self) -> None:
        await self.queue.join()


class _Refused(Exception):
    """The gateway will not send this delivery where its URL now leads."""


async def _resolve(host: str, port: int) -> list[str]:
    """The addresses a name resolves to (an address literal, itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
