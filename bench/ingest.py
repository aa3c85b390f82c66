"""Ingest benchmark: a real gateway process against a plain Core bulk insert of the same rows.

Each run migrates a fresh database, starts `crc-gateway serve` (uvicorn) and pushes N synthetic
records in batches over HTTP; then, on another fresh database of the same engine, it times a plain
SQLAlchemy Core `executemany` of the same rows into `persons` and `source_records`, which is the
floor the gateway is compared against. Figures are printed; nothing passes or fails on time.

    .venv/bin/python bench/ingest.py --records 100000 --runs 3
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/crc_bench
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import platform
import random
import re
import signal
import socket
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Final, cast

import httpx
from sqlalchemy import URL, Table, func, insert, make_url, select, text

from gateway.db import build_engine
from gateway.models import Person, SourceRecord
from gateway.settings import LimitSettings, Settings
from schemas.identifiers import make_cro, make_pnc

REPO: Final = Path(__file__).resolve().parents[1]
SOURCE: Final = "bench-crc"
DB_NAME_PREFIX: Final = "crc_bench"
# Every wait on another process is bounded; these are generous ceilings, not expectations.
CLI_TIMEOUT_S: Final = 300.0
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
REQUEST_TIMEOUT_S: Final = 600.0


# --------------------------------------------------------------------------------------------
# Synthetic records: deterministic from the seed, obviously fictional, valid identifiers.
# --------------------------------------------------------------------------------------------

FORENAMES: Final = (
    "Zebedee",
    "Ottoline",
    "Peregrine",
    "Clementine",
    "Barnaby",
    "Araminta",
    "Fitzwilliam",
    "Wilhelmina",
)
SURNAMES: Final = (
    "Fictionworth",
    "Madeupson",
    "Pretendley",
    "Notarealname",
    "Imaginaire",
    "Fakeington",
    "Synthetica",
    "Inventedale",
)
STREETS: Final = ("Imaginary Road", "Fictional Lane", "Makebelieve Street", "Nowhere Close")
# Syntactically valid postcodes of public buildings, never a real person's home.
PLACES: Final = (
    ("SW1A 1AA", "London"),
    ("LS1 4AP", "Leeds"),
    ("M1 1AE", "Manchester"),
    ("B1 1BB", "Birmingham"),
    ("CF10 1EP", "Cardiff"),
    ("NE1 4ST", "Newcastle upon Tyne"),
    ("BS1 5TR", "Bristol"),
)
PLACEHOLDER_DATES_OF_BIRTH: Final = frozenset({date(1900, 1, 1), date(1970, 1, 1)})
SOURCE_UPDATED_BASE: Final = datetime(2025, 1, 1, tzinfo=UTC)
MAX_DRAWS: Final = 1000


class RecordFactory:
    """Builds canonical case records from one `random.Random`; identifiers never repeat."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.issued: set[str] = set()

    def _unique(self, draw: Any) -> str:
        for _ in range(MAX_DRAWS):
            value: str = draw()
            if value not in self.issued:
                self.issued.add(value)
                return value
        raise RuntimeError("identifier space exhausted; use fewer records")

    def _digits(self, count: int) -> str:
        return "".join(self.rng.choices(string.digits, k=count))

    def crn(self) -> str:
        return self._unique(lambda: self.rng.choice(string.ascii_uppercase) + self._digits(6))

    def pnc(self) -> str:
        # Years up to 2020 only: a PNC year after the current one is invalid.
        return self._unique(
            lambda: make_pnc(self.rng.randint(1980, 2020), self.rng.randint(1, 9_999_999))
        )

    def cro(self) -> str:
        # Serial from 1: 000000/00Z is the placeholder CRO.
        return self._unique(lambda: make_cro(self.rng.randint(1, 999_999), self.rng.randint(0, 99)))

    def noms(self) -> str:
        return self._unique(
            lambda: (
                self.rng.choice(string.ascii_uppercase)
                + self._digits(4)
                + "".join(self.rng.choices(string.ascii_uppercase, k=2))
            )
        )

    def date_of_birth(self) -> date:
        for _ in range(MAX_DRAWS):
            born = date(1955, 1, 1) + timedelta(days=self.rng.randint(0, 50 * 365))
            if born not in PLACEHOLDER_DATES_OF_BIRTH:
                return born
        raise RuntimeError("no date of birth drawn")  # pragma: no cover

    def record(self, index: int) -> dict[str, Any]:
        """One record as a source would POST it (no `provenance.source`)."""
        rng = self.rng
        postcode, town = rng.choice(PLACES)
        convicted = date(2023, 1, 2) + timedelta(days=rng.randint(0, 700))
        updated = SOURCE_UPDATED_BASE + timedelta(seconds=rng.randint(0, 180 * 86_400))
        return {
            "schema_version": 1,
            "provenance": {
                "external_id": f"bench-{index:09d}",
                "source_version": "1",
                "source_updated_at": updated.isoformat().replace("+00:00", "Z"),
            },
            "person": {
                "forenames": [rng.choice(FORENAMES), rng.choice(FORENAMES)],
                "surname": rng.choice(SURNAMES),
                "aliases": [],
                "date_of_birth": self.date_of_birth().isoformat(),
                "sex": rng.choice(["MALE", "FEMALE"]),
                "addresses": [
                    {
                        "status": "MAIN",
                        "lines": [f"{rng.randint(1, 199)} {rng.choice(STREETS)}"],
                        "town": town,
                        "postcode": postcode,
                        "start_date": (convicted - timedelta(days=400)).isoformat(),
                        "no_fixed_abode": False,
                    }
                ],
                "identifiers": {
                    "crn": self.crn(),
                    "pnc": self.pnc(),
                    "cro": self.cro(),
                    "noms": self.noms(),
                },
            },
            "case": {
                "events": [
                    {
                        "event_number": "1",
                        "referral_date": convicted.isoformat(),
                        "conviction_date": convicted.isoformat(),
                        "court": "Fictionville Magistrates' Court",
                        "offences": [
                            {
                                "code": "02800",
                                "description": "Burglary in a dwelling",
                                "offence_date": (convicted - timedelta(days=60)).isoformat(),
                                "main": True,
                            }
                        ],
                        "sentence": {
                            "type": "COMMUNITY_ORDER",
                            "length": 12,
                            "length_unit": "MONTHS",
                            "start_date": convicted.isoformat(),
                            "expected_end_date": (convicted + timedelta(days=365)).isoformat(),
                        },
                        "requirements": [
                            {
                                "category": "UNPAID_WORK",
                                "amount": 120,
                                "unit": "HOURS",
                                "start_date": convicted.isoformat(),
                            },
                            {
                                "category": "REHABILITATION_ACTIVITY",
                                "amount": 20,
                                "unit": "DAYS",
                                "start_date": convicted.isoformat(),
                            },
                        ],
                        "active": True,
                    }
                ],
                "registrations": [
                    {
                        "type": "ROSH",
                        "rosh_level": "MEDIUM",
                        "code": "RMRH",
                        "description": "Medium RoSH",
                        "start_date": convicted.isoformat(),
                        "review_date": (convicted + timedelta(days=182)).isoformat(),
                        "active": True,
                    }
                ],
                "tier": {"value": "B2", "assessed_on": convicted.isoformat()},
                "offender_manager": {
                    "provider_code": "C16",
                    "team_code": "C16T01",
                    "staff_code": "C16A001",
                    "staff_name": f"{rng.choice(FORENAMES)} {rng.choice(SURNAMES)}",
                },
            },
        }

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


@dataclass
class Workload:
    """Everything both sides need, built before any clock starts."""

    records: list[dict[str, Any]]
    bodies: list[bytes]  # one JSON request body per batch
    person_rows: list[dict[str, Any]]
    source_rows: list[dict[str, Any]]


def build_workload(count: int, batch_size: int, seed: int) -> Workload:
    factory = RecordFactory(seed)
    records = [factory.record(index) for index in range(count)]
    bodies = [
        json.dumps({"records": records[start : start + batch_size]}).encode()
        for start in range(0, count, batch_size)
    ]
    now = datetime(2025, 7, 1, tzinfo=UTC)
    person_rows: list[dict[str, Any]] = []
    source_rows: list[dict[str, Any]] = []
    for record in records:
        person_id = factory.uuid4()
        identifiers = record["person"]["identifiers"]
        person_rows.append(
            {
                "id": person_id,
                "crn": identifiers["crn"],
                "pnc": identifiers["pnc"],
                "cro": identifiers["cro"],
                "noms": identifiers["noms"],
                "nino": None,
                "record": record["person"],
                "provenance": {},
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
        provenance = record["provenance"]
        digest = hashlib.sha256(
            json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        source_rows.append(
            {
                "id": factory.uuid4(),
                "source": SOURCE,
                "external_id": provenance["external_id"],
                "person_id": person_id,
                "content_hash": digest,
                "payload": record,
                "canonical": record,
                "adapter": "canonical",
                "adapter_version": "1",
                "version": 1,
                "source_version": provenance["source_version"],
                "source_updated_at": datetime.fromisoformat(provenance["source_updated_at"]),
                "received_at": now,
                "created_at": now,
            }
        )
    return Workload(records, bodies, person_rows, source_rows)


# --------------------------------------------------------------------------------------------
# Databases: a fresh one per use, on SQLite (files) or PostgreSQL (DROP/CREATE DATABASE).
# --------------------------------------------------------------------------------------------

_SAFE_NAME = re.compile(rf"^{DB_NAME_PREFIX}[a-z0-9_]*$")


class SqliteDatabases:
    """Fresh SQLite files: in a temporary directory, or beside a crc_bench*.db the user named."""

    engine = "sqlite"

    def __init__(self, url: str | None, workdir: Path) -> None:
        if url is None:
            self.base = workdir / f"{DB_NAME_PREFIX}.db"
        else:
            database = make_url(url).database
            if not database or database == ":memory:":
                raise SystemExit("a SQLite --database-url must name a file")
            self.base = Path(database).resolve()
            if not self.base.name.startswith(DB_NAME_PREFIX):
                raise SystemExit(
                    f"refusing {self.base.name}: the file name must start with {DB_NAME_PREFIX}"
                )
        self.base.parent.mkdir(parents=True, exist_ok=True)

    def _path(self, label: str) -> Path:
        return self.base.with_name(f"{self.base.stem}_{label}{self.base.suffix}")

    def fresh(self, label: str) -> str:
        self.drop(label)
        return f"sqlite:///{self._path(label)}"

    def drop(self, label: str) -> None:
        path = self._path(label)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def version(self, url: str) -> str:
        return f"SQLite {sqlite3.sqlite_version}"


class PostgresDatabases:
    """Fresh PostgreSQL databases named crc_bench* (the URL's name, plus a suffix per label)."""

    engine = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        name = self.url.database or ""
        if not _SAFE_NAME.fullmatch(name):
            raise SystemExit(
                f"refusing database {name!r}: the name must start with {DB_NAME_PREFIX} "
                "(lower-case letters, digits and underscores only)"
            )
        self.name = name

    def _name(self, label: str) -> str:
        return self.name if label == "gateway" else f"{self.name}_{label}"

    def _admin(self) -> Any:
        import psycopg

        admin: URL = self.url.set(drivername="postgresql", database="postgres")
        return psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True)

    def fresh(self, label: str) -> str:
        from psycopg import sql

        name = self._name(label)
        with self._admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, label: str) -> None:
        # Left in place for inspection; the next bench run drops it before reuse.
        return None

    def version(self, url: str) -> str:
        engine = build_engine(Settings(database_url=url))
        try:
            with engine.connect() as connection:
                return f"PostgreSQL {connection.execute(text('SHOW server_version')).scalar_one()}"
        finally:
            engine.dispose()


Databases = SqliteDatabases | PostgresDatabases


def count_rows(url: str, table: Any) -> int:
    engine = build_engine(Settings(database_url=url))
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# The gateway: CLI subprocesses and a real uvicorn process.
# --------------------------------------------------------------------------------------------


def gateway_executable() -> str:
    beside = Path(sys.executable).parent / "crc-gateway"
    if not beside.exists():
        raise SystemExit(f"{beside} not found: run `make install` first")
    return str(beside)


def gateway_env(url: str, batch_size: int, largest_body: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = url
    env["GATEWAY_LOG_LEVEL"] = "WARNING"
    limits = LimitSettings()
    # Raise the caps only when this workload needs it, so the default run measures defaults.
    if batch_size > limits.max_batch_records:
        env["GATEWAY_LIMITS__MAX_BATCH_RECORDS"] = str(batch_size)
    if largest_body > limits.max_body_bytes:
        env["GATEWAY_LIMITS__MAX_BODY_BYTES"] = str(largest_body)
    return env


def run_cli(args: Sequence[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [gateway_executable(), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"crc-gateway {' '.join(args)} exited {result.returncode}:\n{result.stderr.strip()}"
        )
    return result.stdout


def migrate_and_create_client(env: dict[str, str]) -> str:
    """Migrate the database, create the source client and return its API key."""
    run_cli(["migrate"], env)
    output = run_cli(
        ["clients", "create", "--name", "bench source", "--role", "source", "--source", SOURCE],
        env,
    )
    match = re.search(r"API key \(shown once\): (\S+)", output)
    if match is None:
        raise RuntimeError("`crc-gateway clients create` printed no API key")
    return match.group(1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def gateway_server(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """A running `crc-gateway serve`; yields its base URL and always stops it."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [gateway_executable(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: the server stops when we say so, after our clean-up.
            start_new_session=True,
        )
        try:
            _wait_live(process, base_url, log_path)
            yield base_url
        finally:
            _stop(process)


def _wait_live(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the gateway exited {process.returncode} on start:\n{_tail(log_path)}"
                )
            try:
                if client.get("/health/live").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"the gateway was not live after {START_TIMEOUT_S:.0f}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


# --------------------------------------------------------------------------------------------
# Timed parts.
# --------------------------------------------------------------------------------------------


@dataclass
class GatewayTiming:
    wall_s: float
    latencies_ms: list[float]


@dataclass
class _Shared:
    """State the pushing threads share; the lock guards the batch cursor and `errors`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    failed: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)


def push_batches(
    base_url: str, key: str, bodies: Sequence[bytes], concurrency: int
) -> tuple[GatewayTiming, list[bytes]]:
    """Push every batch over `concurrency` keep-alive clients; returns timings and responses."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    clients = [
        httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)
        for _ in range(concurrency)
    ]
    responses: list[bytes] = [b""] * len(bodies)
    latencies: list[float] = [0.0] * len(bodies)
    cursor = itertools.count()
    shared = _Shared()
    path = f"/v1/sources/{SOURCE}/records"

    def worker(client: httpx.Client) -> None:
        while not shared.failed.is_set():
            with shared.lock:
                index = next(cursor)
            if index >= len(bodies):
                return
            started = time.perf_counter()
            try:
                response = client.post(path, content=bodies[index])
            except httpx.HTTPError as error:
                _fail(shared, f"batch {index}: {type(error).__name__}: {error}")
                return
            latencies[index] = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                _fail(shared, f"batch {index}: HTTP {response.status_code}: {response.text[:500]}")
                return
            responses[index] = response.content

    try:
        for client in clients:
            # Warm-up outside the clock: opens the connection, authenticates, reads the DB.
            warm = client.get(f"/v1/sources/{SOURCE}/status")
            if warm.status_code != 200:
                raise RuntimeError(f"warm-up failed: HTTP {warm.status_code}: {warm.text[:500]}")
        threads = [
            threading.Thread(target=worker, args=(client,), daemon=True) for client in clients
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        for client in clients:
            client.close()
    if shared.errors:
        raise RuntimeError("the gateway refused a batch:\n" + "\n".join(shared.errors))
    return GatewayTiming(wall, latencies), responses


def _fail(shared: _Shared, message: str) -> None:
    with shared.lock:
        shared.errors.append(message)
    shared.failed.set()


def verify_created(responses: Sequence[bytes], workload: Workload, batch_size: int) -> None:
    """Every record must come back `created`, for the right external id, in order."""
    for batch, content in enumerate(responses):
        document = json.loads(content)
        expected = workload.records[batch * batch_size : (batch + 1) * batch_size]
        results = document["results"]
        if len(results) != len(expected):
            raise RuntimeError(f"batch {batch}: {len(results)} results for {len(expected)} records")
        for result, record in zip(results, expected, strict=True):
            if result["outcome"] != "created":
                raise RuntimeError(
                    f"batch {batch} record {result['index']}: outcome {result['outcome']!r}, "
                    f"expected 'created'; errors: {result.get('errors')}"
                )
            if result["external_id"] != record["provenance"]["external_id"]:
                raise RuntimeError(f"batch {batch} record {result['index']}: wrong external id")


def verify_source_status(base_url: str, key: str, expected: int) -> None:
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        response = client.get(
            f"/v1/sources/{SOURCE}/status", headers={"Authorization": f"Bearer {key}"}
        )
    response.raise_for_status()
    created = response.json().get("created")
    if created != expected:
        raise RuntimeError(f"source status says {created} created, expected {expected}")


def baseline_insert(url: str, workload: Workload, batch_size: int) -> float:
    """Core executemany of persons + source_records, one transaction per batch; wall seconds."""
    # The gateway's own engine set-up, so both sides run with the same durability settings
    # (SQLite: WAL, synchronous=FULL, BEGIN IMMEDIATE for writers).
    engine = build_engine(Settings(database_url=url)).execution_options(gateway_write=True)
    persons = insert(cast(Table, Person.__table__))
    source_records = insert(cast(Table, SourceRecord.__table__))
    try:
        with engine.connect() as connection:  # open the pooled connection outside the clock
            connection.execute(text("SELECT 1"))
        started = time.perf_counter()
        for start in range(0, len(workload.records), batch_size):
            stop = start + batch_size
            with engine.begin() as connection:
                connection.execute(persons, workload.person_rows[start:stop])
                connection.execute(source_records, workload.source_rows[start:stop])
        return time.perf_counter() - started
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# One run, many runs, and the report.
# --------------------------------------------------------------------------------------------


@dataclass
class RunFigures:
    run: int
    gateway_records_per_s: float
    gateway_wall_s: float
    p50_ms: float
    p99_ms: float
    baseline_records_per_s: float
    baseline_wall_s: float
    ratio: float  # gateway records/s divided by baseline records/s


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: with few batches, a real observed latency)."""
    ordered = sorted(values)
    rank = min(max(1, math.ceil(fraction * len(ordered))), len(ordered))
    return ordered[rank - 1]


def run_once(
    run: int,
    args: argparse.Namespace,
    databases: Databases,
    workload: Workload,
    workdir: Path,
) -> tuple[RunFigures, str, list[float]]:
    count, batch_size = len(workload.records), args.batch_size
    largest_body = max(len(body) for body in workload.bodies)

    def gateway_side() -> tuple[GatewayTiming, str]:
        url = databases.fresh("gateway")
        env = gateway_env(url, batch_size, largest_body)
        key = migrate_and_create_client(env)
        version = databases.version(url)
        with gateway_server(env, workdir / f"server-run{run}.log") as base_url:
            timing, responses = push_batches(base_url, key, workload.bodies, args.concurrency)
            verify_source_status(base_url, key, count)
        verify_created(responses, workload, batch_size)
        stored = count_rows(url, SourceRecord.__table__)
        if stored != count:
            raise RuntimeError(f"gateway database holds {stored} source records, not {count}")
        databases.drop("gateway")
        return timing, version

    def baseline_side() -> float:
        url = databases.fresh("baseline")
        run_cli(["migrate"], gateway_env(url, batch_size, largest_body))
        wall = baseline_insert(url, workload, batch_size)
        stored = count_rows(url, SourceRecord.__table__)
        if stored != count:
            raise RuntimeError(f"baseline database holds {stored} source records, not {count}")
        databases.drop("baseline")
        return wall

    # Alternate which side goes first, so neither always runs on a warmer machine.
    if run % 2:
        timing, version = gateway_side()
        baseline_wall = baseline_side()
    else:
        baseline_wall = baseline_side()
        timing, version = gateway_side()

    gateway_rate = count / timing.wall_s
    baseline_rate = count / baseline_wall
    figures = RunFigures(
        run=run,
        gateway_records_per_s=gateway_rate,
        gateway_wall_s=timing.wall_s,
        p50_ms=percentile(timing.latencies_ms, 0.50),
        p99_ms=percentile(timing.latencies_ms, 0.99),
        baseline_records_per_s=baseline_rate,
        baseline_wall_s=baseline_wall,
        ratio=gateway_rate / baseline_rate,
    )
    return figures, version, timing.latencies_ms


def median_figures(runs: Sequence[RunFigures]) -> dict[str, float]:
    names = [name for name in asdict(runs[0]) if name != "run"]
    return {name: statistics.median(getattr(run, name) for run in runs) for name in names}


def environment(args: argparse.Namespace, engine: str, version: str, count: int) -> dict[str, Any]:
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "engine": engine,
        "database_version": version,
        "records": count,
        "batch_size": args.batch_size,
        "batches": -(-count // args.batch_size),
        "concurrency": args.concurrency,
        "runs": args.runs,
        "seed": args.seed,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else None,
        "platform": platform.platform(),
    }


def print_report(
    env: dict[str, Any], runs: Sequence[RunFigures], medians: dict[str, float]
) -> None:
    print()
    print(
        f"crc-gateway ingest benchmark: {env['engine']} ({env['database_version']}), "
        f"N={env['records']:,}, B={env['batch_size']:,} ({env['batches']} batches), "
        f"concurrency={env['concurrency']}, seed={env['seed']}"
    )
    print(
        f"Python {env['python']}, {env['cpu_count']} cores "
        f"({env['usable_cpus']} usable), {env['platform']}"
    )
    print()
    header = (
        f"{'run':>6}  {'gateway rec/s':>13}  {'p50 ms':>8}  {'p99 ms':>8}  "
        f"{'baseline rec/s':>14}  {'gateway/baseline':>16}"
    )
    print(header)
    print("-" * len(header))
    rows: list[tuple[str, dict[str, float]]] = [(str(run.run), asdict(run)) for run in runs]
    rows.append(("median", medians))
    for label, figures in rows:
        if label == "median":
            print("-" * len(header))
        print(
            f"{label:>6}  {figures['gateway_records_per_s']:>13,.0f}  {figures['p50_ms']:>8.1f}  "
            f"{figures['p99_ms']:>8.1f}  {figures['baseline_records_per_s']:>14,.0f}  "
            f"{figures['ratio']:>16.3f}"
        )
    print()
    print(
        "gateway/baseline = gateway records/s / baseline records/s (median of per-run ratios); "
        f"the baseline is {1 / medians['ratio']:.1f}x the gateway's rate."
    )
    print(
        "p50/p99: per-batch round trip as the client sees it; "
        "baseline: Core executemany into persons + source_records, one transaction per batch."
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time a real crc-gateway ingesting synthetic records, against a Core bulk "
        "insert of the same rows. Prints figures; never passes or fails on time."
    )
    parser.add_argument("--records", type=_positive, default=100_000, help="N (default 100000)")
    parser.add_argument(
        "--batch-size", type=_positive, default=1000, help="records per push (default 1000)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: fresh SQLite files in a temporary directory; a PostgreSQL URL's database "
        "(which must be named crc_bench*) is dropped and recreated for every run",
    )
    parser.add_argument("--runs", type=_positive, default=3, help="runs (default 3)")
    parser.add_argument(
        "--concurrency", type=_positive, default=1, help="concurrent pushing clients (default 1)"
    )
    parser.add_argument("--seed", type=int, default=20210626, help="data seed")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.batch_size > 100_000:
        parser.error("--batch-size is at most 100000 (the gateway's own ceiling)")
    return args


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM becomes KeyboardInterrupt so every `finally` (stopping the server) still runs.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    url = args.database_url
    engine = make_url(url).get_backend_name() if url else "sqlite"
    if engine not in ("sqlite", "postgresql"):
        raise SystemExit(f"unsupported database {engine!r}: use SQLite or PostgreSQL")

    print(f"generating {args.records:,} records (seed {args.seed})...", file=sys.stderr)
    workload = build_workload(args.records, args.batch_size, args.seed)
    runs: list[RunFigures] = []
    latencies: list[list[float]] = []
    version = ""
    with tempfile.TemporaryDirectory(prefix="crc-bench-") as tmp:
        workdir = Path(tmp)
        databases: Databases = (
            PostgresDatabases(url) if engine == "postgresql" else SqliteDatabases(url, workdir)
        )
        try:
            for run in range(1, args.runs + 1):
                figures, version, batch_latencies = run_once(
                    run, args, databases, workload, workdir
                )
                runs.append(figures)
                latencies.append(batch_latencies)
                print(
                    f"run {run}/{args.runs}: gateway {figures.gateway_records_per_s:,.0f} rec/s "
                    f"in {figures.gateway_wall_s:.1f}s (p50 {figures.p50_ms:.0f} ms, "
                    f"p99 {figures.p99_ms:.0f} ms); baseline "
                    f"{figures.baseline_records_per_s:,.0f} rec/s in "
                    f"{figures.baseline_wall_s:.1f}s; ratio {figures.ratio:.3f}",
                    file=sys.stderr,
                )
        except KeyboardInterrupt:
            print("interrupted; the server has been stopped", file=sys.stderr)
            return 130
    medians = median_figures(runs)
    env = environment(args, engine, version, args.records)
    print_report(env, runs, medians)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "environment": env,
                    "runs": [
                        {**asdict(run), "batch_latencies_ms": batch}
                        for run, batch in zip(runs, latencies, strict=True)
                    ],
                    "median": medians,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
