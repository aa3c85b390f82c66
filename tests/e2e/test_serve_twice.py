"""A second `make run` beside a running server, or one that cannot start, leaves it working."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.db import Database
from tests.e2e.servers import CLI, free_port, stop

pytestmark = pytest.mark.slow

# A second server gives up at once; this only stops a hung one from hanging the suite.
GIVE_UP_SECONDS = 60


@pytest.fixture
def env(database_url: str, db: Database) -> dict[str, str]:
    """The suite's migrated database (SQLite or PostgreSQL), emptied after the test."""
    return {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_WEBHOOKS__WORKER_ENABLED": "false",
    }


@pytest.fixture
def first(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A server started as `make run` starts it; yields its port and the demo key it printed."""
    port = free_port()
    stdout_path = tmp_path / "first.out"
    with stdout_path.open("w") as stdout, (tmp_path / "first.err").open("w") as stderr:
        process = subprocess.Popen(
            [CLI, "serve", "--demo-key", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + GIVE_UP_SECONDS
        key = None
        while key is None:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {(tmp_path / 'first.err').read_text()[-2000:]}")
            match = re.search(r"(crcgw_\S+)", stdout_path.read_text())
            key = match.group(1) if match else None
            time.sleep(0.1)
        assert status(port, key) == 200
        yield port, key
    finally:
        stop(process)


def status(port: int, key: str) -> int:
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while True:
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/v1/status",
                headers={"Authorization": f"Bearer {key}"},
                timeout=5,
            )
            return response.status_code
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def second(env: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "serve", "--demo-key", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=GIVE_UP_SECONDS,
        check=False,
    )


def test_a_second_server_on_the_same_port_leaves_the_first_ones_demo_key_valid(
    first: tuple[int, str], env: dict[str, str]
) -> None:
    port, key = first

    result = second(env, port)

    assert status(port, key) == 200
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "PORT=" in result.stderr
    assert "Traceback" not in result.stderr
    assert "crcgw_" not in result.stdout


def test_a_server_that_cannot_start_leaves_the_running_ones_demo_key_valid(
    first: tuple[int, str], env: dict[str, str], tmp_path: Path
) -> None:
    port, key = first
    broken = tmp_path / "sources.yaml"
    broken.write_text("sources: {crc-a: {adapter: no-such-adapter}}\n")

    result = second({**env, "GATEWAY_SOURCES_FILE": str(broken)}, free_port())

    assert status(port, key) == 200
    assert result.returncode == 2
    assert "no-such-adapter" in result.stderr
    assert "Traceback" not in result.stderr
