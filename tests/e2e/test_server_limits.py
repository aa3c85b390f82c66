"""A real uvicorn process: slow request heads are cut off, and SIGTERM/SIGINT exit promptly."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import CLI, free_port, wait_until_live

pytestmark = pytest.mark.slow

HEAD_TIMEOUT = 1.0


class Served:
    def __init__(self, process: subprocess.Popen[bytes], base: str, port: int, key: str) -> None:
        self.process, self.base, self.port, self.key = process, base, port, key


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A real server on a fresh SQLite file with a 1 s head timeout and a 4 KiB head limit."""
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_SERVER__HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "GATEWAY_SERVER__MAX_HEADER_BYTES": "4096",
    }
    subprocess.run([CLI, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    created = subprocess.run(
        [CLI, "clients", "create", "--name", "reader", "--role", "admin"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key = next(word for word in created.stdout.split() if word.startswith("crcgw_"))
    port = free_port()
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(process, base, stderr_path)
        yield Served(process, base, port, key)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` within `within` seconds (reading whatever it sends)."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if readable:
            try:
                if sock.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True
    return False


def test_a_client_that_stops_mid_request_line_is_disconnected(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=15) as sock:
        sock.sendall(b"GET /health/li")
        assert closed_by_server(sock, within=HEAD_TIMEOUT + 9)


def test_a_client_trickling_its_headers_is_disconnected(served: Served) -> None:
    head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served.port), timeout=15) as sock:
        closed = False
        deadline = time.monotonic() + HEAD_TIMEOUT + 9
        for byte in head:
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_by_server(sock, within=0.25):
                closed = True
                break
        assert closed


def test_after_a_response_the_next_head_is_timed_too(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=15) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        assert b"200 OK" in sock.recv(65536)
        # Any byte cancels uvicorn's own keep-alive timer; the head timer keeps running.
        sock.sendall(b"G")
        assert closed_by_server(sock, within=HEAD_TIMEOUT + 9)


def test_a_normal_request_still_works_and_an_oversized_head_is_refused(served: Served) -> None:
    ok = httpx.get(f"{served.base}/health/live", timeout=10)
    too_big = httpx.get(f"{served.base}/health/live", headers={"X-Big": "a" * 8192}, timeout=10)

    assert ok.status_code == 200
    assert too_big.status_code == 431
    assert too_big.headers["content-type"] == "application/problem+json"


def long_poll(served: Served, results: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {served.key}"}
    with httpx.Client(base_url=served.base, headers=headers, timeout=60) as http:
        cursor = http.get("/v1/changes").json()["next_cursor"]
        results["cursor"] = cursor
        results["started"] = time.monotonic()
        response = http.get("/v1/changes", params={"after": cursor, "wait": 30})
        results["answered"] = time.monotonic()
        results["response"] = response


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_answers_long_polls_at_once_and_the_server_exits(
    served: Served, sig: signal.Signals
) -> None:
    results: dict[str, Any] = {}
    poller = threading.Thread(target=long_poll, args=(served, results), daemon=True)
    poller.start()
    deadline = time.monotonic() + 10
    while "started" not in results and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)  # the poll is now held open, waiting for a change

    served.process.send_signal(sig)
    signalled = time.monotonic()
    poller.join(timeout=10)
    try:
        served.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("the server did not exit within 10 s of the signal")
    exited = time.monotonic()

    assert "answered" in results, "the long poll was not answered within 10 s of the signal"
    response = results["response"]
    assert response.status_code == 200
    assert response.json()["changes"] == []
    assert response.json()["next_cursor"] == results["cursor"]
    assert results["answered"] - signalled < 10
    assert exited - signalled < 10
