"""`crc-gateway worker` processes for real: one killed mid-delivery, and several side by side.

The workers run as subprocesses against the test database and deliver to a real receiver in
this process; the receiver keeps the score (what was applied, in which order, how often at once).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.db import Database
from gateway.models import DeliveryStatus
from gateway.services import webhooks
from tests.builders import make_case_record
from tests.e2e.test_webhooks_end_to_end import deliveries, owed, push, renamed, subscribe
from tests.e2e.webhook_receiver import Arrival, Reply, WebhookReceiver, slow

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("crc-gateway"))
DEADLINE_SECONDS = 30.0
READY_LINE = "delivering webhooks"
LEASE_LOST = "delivery lease lost"


class Workers:
    """Starts `crc-gateway worker` processes; whatever is still running at the end is stopped."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"worker-{len(self.processes)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [CLI, "worker"], env=self.env, stdout=output, stderr=subprocess.STDOUT
            )
        self.processes.append((process, log))
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return next(log for p, log in self.processes if p is process).read_text()

    def wait_ready(self) -> None:
        """Until every running worker has said it is delivering."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        for process, log in self.processes:
            while process.poll() is None and READY_LINE not in log.read_text():
                if time.monotonic() > deadline:
                    pytest.fail(f"worker did not start: {log.read_text()[-2000:]}")
                time.sleep(0.05)
            if process.poll() is not None and process.returncode != -signal.SIGKILL:
                pytest.fail(f"worker exited {process.returncode}: {log.read_text()[-2000:]}")

    def stop(self) -> list[int]:
        """SIGTERM every running worker and return each one's exit code."""
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process, _ in self.processes:
            try:
                codes.append(process.wait(timeout=15))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait(timeout=5))
        return codes


@pytest.fixture
def worker_env(database_url: str) -> Callable[..., dict[str, str]]:
    """The environment of a worker process: the test database and these webhook settings."""

    def build(**webhook_settings: object) -> dict[str, str]:
        env = {
            **os.environ,
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_LOG_FORMAT": "json",
            "GATEWAY_WEBHOOKS__ALLOWED_HOSTS": '["127.0.0.1"]',
            "GATEWAY_WEBHOOKS__REQUIRE_HTTPS": "false",
            "GATEWAY_WEBHOOKS__JITTER": "0",
            "GATEWAY_WEBHOOKS__RETRY_SCHEDULE_SECONDS": json.dumps([0.2] * 10),
            "GATEWAY_WEBHOOKS__IDLE_SECONDS": "0.1",
        }
        for name, value in webhook_settings.items():
            env[f"GATEWAY_WEBHOOKS__{name.upper()}"] = str(value)
        return env

    return build


@pytest.fixture
def workers(
    tmp_path: Path, worker_env: Callable[..., dict[str, str]], db: Database
) -> Iterator[Callable[..., Workers]]:
    """Make a `Workers` with given webhook settings; stopped before the tables are emptied."""
    made: list[Workers] = []

    def make(**webhook_settings: object) -> Workers:
        made.append(Workers(tmp_path, worker_env(**webhook_settings)))
        return made[-1]

    yield make
    for group in made:
        group.stop()


def wait_for(
    receiver: WebhookReceiver, what: str, predicate: Callable[[WebhookReceiver], bool]
) -> None:
    if not receiver.wait_until(predicate, timeout=DEADLINE_SECONDS):
        pytest.fail(f"gave up waiting: {what}")


def wait_recorded(db: Database, subscription_id: uuid.UUID) -> None:
    """Until the workers have recorded every delivery as delivered."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    delivered = {DeliveryStatus.DELIVERED.value}
    while {row.status for row in deliveries(db, subscription_id)} != delivered:
        assert time.monotonic() < deadline, "deliveries not all recorded as delivered"
        time.sleep(0.05)


def test_a_worker_killed_mid_delivery_loses_nothing_and_its_claims_are_taken_over(
    db: Database, workers: Callable[..., Workers]
) -> None:
    secret = webhooks.generate_secret()
    persons = 6
    with WebhookReceiver(secret) as receiver:
        # The receiver applies an event as it arrives and then holds the request, so a worker
        # killed meanwhile leaves events applied but not recorded as delivered.
        receiver.behave(slow(1.5, apply_first=True))
        subscription_id = subscribe(db, receiver, secret)
        records = [make_case_record() for _ in range(persons)]
        push(db, records)
        records = renamed(records)
        push(db, records)
        push(db, renamed(records))
        expected = owed(db, subscription_id)
        # Every person's first change claimed in one round and sent at once (batch within the
        # concurrency, so none waits out its lease behind the others).
        group = workers(lease_seconds=4, timeout_seconds=2, concurrency=10)
        first = group.start()

        wait_for(
            receiver,
            "the first worker's deliveries in flight",
            lambda r: len(r.in_flight) >= persons,
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        time.sleep(0.2)  # requests already on the wire still land; nothing new can
        sent_by_killed = {a.webhook_id for a in receiver.snapshot()["arrivals"]}
        receiver.behave(slow(0.2, apply_first=True))
        second = group.start()

        wait_for(
            receiver,
            "every event applied",
            lambda r: len(r.applied) >= sum(len(s) for s in expected.values()),
        )
        wait_recorded(db, subscription_id)
        codes = group.stop()

    score = receiver.snapshot()
    assert first.returncode == -signal.SIGKILL
    assert codes[1] == 0, group.log(second)
    assert len(sent_by_killed) == persons
    assert score["bad_signatures"] == 0
    assert score["order"] == expected
    # At-least-once: exactly what the dead worker had in flight came again, once, and was
    # recognised by its webhook-id; never two of the same at once.
    assert set(score["duplicates"]) == sent_by_killed
    assert set(score["duplicates"].values()) == {1}
    assert max(score["max_in_flight"].values()) == 1
    assert LEASE_LOST not in group.log(second)


def first_try_fails_for_every_third(arrival: Arrival) -> Reply:
    if arrival.seq % 3 == 0 and arrival.number == 1:
        return Reply(500)
    return slow(0.3)


@pytest.mark.postgres_only
def test_three_workers_share_the_outbox_without_sending_one_event_twice_at_once(
    db: Database, workers: Callable[..., Workers]
) -> None:
    secret = webhooks.generate_secret()
    persons, per_worker = 30, 10
    with WebhookReceiver(secret) as receiver:
        receiver.behave(first_try_fails_for_every_third)
        subscription_id = subscribe(db, receiver, secret)
        group = workers(lease_seconds=30, timeout_seconds=5, concurrency=per_worker)
        for _ in range(3):
            group.start()
        group.wait_ready()

        # Changes keep arriving while the workers deliver.
        records = [make_case_record() for _ in range(persons)]
        for start in range(0, persons, 10):
            push(db, records[start : start + 10])
        for _ in range(2):
            records = renamed(records)
            push(db, records)
        expected = owed(db, subscription_id)
        assert sum(len(s) for s in expected.values()) == persons * 4

        wait_for(receiver, "every event applied", lambda r: len(r.applied) >= persons * 4)
        wait_recorded(db, subscription_id)
        logs = [group.log(process) for process, _ in group.processes]
        codes = group.stop()

    score = receiver.snapshot()
    assert codes == [0, 0, 0], logs
    assert score["bad_signatures"] == 0
    assert score["order"] == expected
    assert max(score["max_in_flight"].values()) == 1
    # No fault lost a worker's report, so nothing was sent again after a success.
    assert not score["duplicates"]
    assert score["max_total_in_flight"] > per_worker, "the workers never delivered side by side"
    assert score["answered"][500] == len(
        [s for seqs in expected.values() for s in seqs if s % 3 == 0]
    )
    for log in logs:
        assert LEASE_LOST not in log
