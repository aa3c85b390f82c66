"""Per-byte cost of pathological text input next to a normal import, measured in the same run.

Each input is imported through `gateway.services.imports.run_import` (what `crc-gateway import`
and an upload call) into a fresh SQLite file; the figure is the median over the runs of wall time
divided by the input's size. Pathological input must cost no more per byte than a normal one.

    .venv/bin/python bench/pathological.py                       # 4 MB inputs, 3 runs
    .venv/bin/python bench/pathological.py --bytes 20000000 --runs 5
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.base import Adapter
from adapters.canonical import NDJSON, CanonicalAdapter
from adapters.delius_flat.adapter import DeliusFlatAdapter, DeliusFlatConfig
from adapters.delius_flat.columns import VERSIONS
from adapters.delius_flat.writer import write_records
from adapters.mapping.adapter import MappingAdapter, MappingConfig
from gateway import migrate
from gateway.db import Database
from gateway.services import imports
from gateway.settings import Settings
from schemas import CaseRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_memory import synthetic_records

ROOT = Path(__file__).resolve().parents[1]
KESTREL = ROOT / "adapters/mapping/examples/kestrel.yaml"


def _fill(unit: bytes, size: int, head: bytes = b"") -> bytes:
    return head + unit * max(1, size // len(unit))


def inputs(
    size: int, normal_records: int
) -> list[tuple[str, Adapter[Any], str, Callable[[], bytes]]]:
    canonical = CanonicalAdapter(CanonicalAdapter.config_model())
    delius = DeliusFlatAdapter(DeliusFlatConfig())
    kestrel = MappingAdapter(MappingConfig(file=KESTREL))
    header = (",".join(VERSIONS["v2"].header) + "\r\n").encode()
    columns = len(VERSIONS["v2"].header)
    k_header = (ROOT / "adapters/mapping/examples/kestrel-sample.csv").read_bytes().split(b"\n")[0]
    k_header += b"\n"
    k_columns = k_header.count(b";") + 1

    def ndjson_normal() -> bytes:
        records = synthetic_records(normal_records, 7)
        return b"".join(json.dumps(r).encode() + b"\n" for r in records)

    def delius_normal() -> bytes:
        out = io.BytesIO()
        records = synthetic_records(normal_records, 7)
        write_records((CaseRecord.model_validate(r) for r in records), out)
        return out.getvalue()

    return [
        ("canonical NDJSON, normal records", canonical, NDJSON, ndjson_normal),
        ("canonical NDJSON, blank lines", canonical, NDJSON, lambda: _fill(b"\n", size)),
        ("canonical NDJSON, space-only lines", canonical, NDJSON, lambda: _fill(b"   \r\n", size)),
        (
            "canonical NDJSON, one giant line",
            canonical,
            NDJSON,
            lambda: _fill(b"x", size, b'{"a":"'),
        ),
        ("delius_flat, normal records", delius, "text/csv", delius_normal),
        ("delius_flat, blank lines", delius, "text/csv", lambda: _fill(b"\r\n", size, header)),
        (
            "delius_flat, delimiter-only rows",
            delius,
            "text/csv",
            lambda: _fill(b"," * (columns - 1) + b"\r\n", size, header),
        ),
        (
            "delius_flat, empty quoted rows",
            delius,
            "text/csv",
            lambda: _fill(b'""\n', size, header),
        ),
        (
            "delius_flat, one giant quoted field",
            delius,
            "text/csv",
            lambda: _fill(b"x", size, header + b'X000001,"') + b'"\r\n',
        ),
        ("mapping CSV, blank lines", kestrel, "text/csv", lambda: _fill(b"\n", size, k_header)),
        (
            "mapping CSV, delimiter-only rows",
            kestrel,
            "text/csv",
            lambda: _fill(b";" * (k_columns - 1) + b"\n", size, k_header),
        ),
    ]


def import_once(adapter: Adapter[Any], content_type: str, data: bytes) -> float:
    with tempfile.TemporaryDirectory(prefix="crc-pathological-") as tmp:
        db = Database.from_settings(Settings(database_url=f"sqlite:///{tmp}/gateway.db"))
        try:
            migrate.upgrade(db.engine)
            stream = io.BytesIO(data)
            digest, size = imports.sha256_of(stream)
            started = time.perf_counter()
            imports.run_import(
                db,
                source="bench-crc",
                adapter=adapter,
                stream=stream,
                content_type=content_type,
                filename=None,
                file_sha256=digest,
                file_size=size,
                principal=None,
                chunk_records=1000,
            )
            return time.perf_counter() - started
        finally:
            db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bytes", type=int, default=4_000_000, help="size of each pathological input"
    )
    parser.add_argument("--normal-records", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    print(f"{'input':40} {'MB':>7} {'us/byte':>9}  (median of {args.runs} runs)")
    for name, adapter, content_type, make in inputs(args.bytes, args.normal_records):
        data = make()
        timings = [import_once(adapter, content_type, data) for _ in range(args.runs)]
        per_byte = statistics.median(timings) / len(data) * 1e6
        print(f"{name:40} {len(data) / 1e6:7.1f} {per_byte:9.3f}", flush=True)


if __name__ == "__main__":
    main()
