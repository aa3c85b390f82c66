"""`make run` for real: migrate, serve with a demo key over uvicorn, push, read it back."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_case_record
from tests.e2e.servers import CLI, free_port, stop, wait_until_live

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A real server on a fresh SQLite file; yields its base URL, demo key and log file."""
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
        "GATEWAY_LOG_FORMAT": "json",
    }
    subprocess.run([CLI, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [CLI, "serve", "--demo-key", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(process, base, stderr_path)
        match = re.search(r"(crcgw_\S+)", stdout_path.read_text())
        assert match is not None, "the demo key was not printed"
        yield base, match.group(1), stderr_path
    finally:
        stop(process)


def test_the_printed_demo_key_pushes_a_record_that_shows_up_everywhere(
    served: tuple[str, str, Path],
) -> None:
    base, key, log_file = served
    headers = {"Authorization": f"Bearer {key}"}
    record = make_case_record()
    crn = record["person"]["identifiers"]["crn"]

    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        pushed = http.post("/v1/sources/crc-north/records", json={"records": [record]})
        feed = http.get("/v1/changes").json()
        persons = http.get("/v1/persons", params={"crn": crn}).json()
        status = http.get("/v1/status").json()
        docs = http.get("/docs")

    assert pushed.status_code == 200
    assert pushed.json()["results"][0]["outcome"] == "created"
    assert [c["type"] for c in feed["changes"]] == ["person.created", "case.created"]
    assert len(persons["items"]) == 1
    assert status["sources"][0]["created"] == 1
    assert docs.status_code == 200
    logs = log_file.read_text()
    assert '"route": "/v1/sources/{source}/records"' in logs
    for secret in (key, crn, record["person"]["surname"]):
        assert secret not in logs


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    served: tuple[str, str, Path],
) -> None:
    base, key, _ = served
    too_big = b"{" + b" " * (10 * 1024 * 1024 + 1) + b"}"

    response = httpx.post(
        f"{base}/v1/sources/crc-north/records",
        content=too_big,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
