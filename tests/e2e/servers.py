"""Real `crc-gateway serve` processes for the end-to-end tests: a free port, waiting until the
server answers, and stopping it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CLI = str(Path(sys.executable).with_name("crc-gateway"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_live(process: subprocess.Popen[bytes], base: str, stderr_path: Path) -> None:
    """Return once the server answers its liveness probe; fail the test if it never does."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"server did not start: {stderr_path.read_text()[-2000:]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an orchestrator stops it; killed if it does not exit."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
