"""Peak memory of `crc-gateway import` on a large file: the import must run in constant memory.

Writes an N-record file in a source's format (canonical NDJSON by default, or a built-in adapter's
format through its writer), imports it with the real CLI into a fresh database, samples the
importer's resident set size as it runs, and prints the peak and the RSS at each tenth of the
way. Memory that stays flat while the file grows tenfold is the claim being checked.

    .venv/bin/python bench/import_memory.py --records 1000000
    .venv/bin/python bench/import_memory.py --records 1000000 --format delius_flat
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from schemas import CaseRecord
from schemas.identifiers import make_pnc

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("crc-gateway"))
FORMATS = {
    "canonical": ("application/x-ndjson", ".ndjson", None),
    "delius_flat": ("text/csv", ".csv", "adapters.delius_flat.writer"),
    "xml_case_export": ("application/xml", ".xml", "adapters.xml_case_export.writer"),
}


def synthetic_records(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """Distinct, valid, obviously fictional records, cheap to make in bulk."""
    rng = random.Random(seed)
    surnames = ["Notarealname", "Inventedale", "Makebelieve", "Fictionby", "Pretendwell"]
    forenames = ["Zebedee", "Ottoline", "Peregrine", "Araminta", "Barnaby"]
    for n in range(count):
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(15000))
        yield {
            "provenance": {"external_id": f"BENCH-{n:08d}"},
            "person": {
                "forenames": [rng.choice(forenames)],
                "surname": rng.choice(surnames),
                "date_of_birth": born.isoformat(),
                "identifiers": {
                    "crn": f"B{n % 1_000_000:06d}",
                    "pnc": make_pnc(2000 + n % 20, n % 9_999_999 + 1),
                },
                "addresses": [{"status": "MAIN", "postcode": "LS1 4AB"}],
            },
            "case": {
                "events": [
                    {
                        "event_number": "1",
                        "offences": [{"code": "02800", "main": True}],
                        "sentence": {
                            "type": "COMMUNITY_ORDER",
                            "length": 12,
                            "length_unit": "MONTHS",
                        },
                        "requirements": [
                            {"category": "UNPAID_WORK", "amount": 120, "unit": "HOURS"}
                        ],
                    }
                ],
                "tier": {"value": "B2"},
            },
        }


def write_file(path: Path, fmt: str, count: int, seed: int) -> None:
    module = FORMATS[fmt][2]
    with path.open("wb") as out:
        if module is None:
            for record in synthetic_records(count, seed):
                out.write(json.dumps(record).encode() + b"\n")
            return
        writer = __import__(module, fromlist=["write_records"])
        writer.write_records(
            (CaseRecord.model_validate(r) for r in synthetic_records(count, seed)), out
        )


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--format", choices=sorted(FORMATS), default="canonical")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crc-import-memory-") as tmp:
        workdir = Path(tmp)
        content_type, suffix, _ = FORMATS[args.format]
        data = workdir / f"records{suffix}"
        started = time.perf_counter()
        write_file(data, args.format, args.records, args.seed)
        print(
            f"wrote {args.records:,} records ({data.stat().st_size / 2**20:,.0f} MiB) "
            f"in {time.perf_counter() - started:,.0f} s",
            file=sys.stderr,
        )
        env = {
            **os.environ,
            "GATEWAY_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'gateway.db'}",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
        if args.format != "canonical":
            sources = workdir / "sources.yaml"
            sources.write_text(f"sources:\n  bench-crc:\n    adapter: {args.format}\n")
            env["GATEWAY_SOURCES_FILE"] = str(sources)
        subprocess.run([CLI, "migrate"], env=env, check=True, capture_output=True)
        command = [
            CLI,
            "import",
            str(data),
            "--source",
            "bench-crc",
            "--content-type",
            content_type,
        ]
        samples: list[tuple[float, int]] = []
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )

        def sample() -> None:
            while process.poll() is None:
                value = rss_kib(process.pid)
                if value is not None:
                    samples.append((time.perf_counter() - started, value))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        output, _ = process.communicate()
        sampler.join(timeout=5)
        elapsed = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"import failed ({process.returncode}): {output}")

    peak = max(value for _, value in samples)
    print(
        f"\nimport of {args.records:,} records ({args.format}) in {elapsed:,.0f} s "
        f"= {args.records / elapsed:,.0f} records/s"
    )
    print(output.strip().splitlines()[-1])
    print(f"peak RSS {peak / 1024:,.1f} MiB over {len(samples)} samples")
    print(
        "RSS at each tenth of the run (MiB):",
        " ".join(
            f"{samples[min(len(samples) - 1, int(len(samples) * i / 10))][1] / 1024:.0f}"
            for i in range(1, 11)
        ),
    )


if __name__ == "__main__":
    main()
