"""Generator benchmark: how fast `crc-gateway generate` writes source records, and where time goes.

Times, on one core, the population model (persons/s), rendering with noise and validation
(records/s) and each available writer (records/s) on the same records; then a whole run
end to end with the given number of worker processes. Figures are printed; nothing passes or
fails on time.

    .venv/bin/python bench/generate.py --persons 50000 --workers 2
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from pathlib import Path

from gateway.synthetic import (
    SOURCE_FORMATS,
    GenerateOptions,
    MissingWriterPolicy,
    NoiseRates,
    PopulationSettings,
    WriterUnavailable,
    generate,
)
from gateway.synthetic.pools import draw_pools
from gateway.synthetic.population import BLOCK_SIZE, Population
from gateway.synthetic.rendering import SourceRenderer
from gateway.synthetic.sources import load_writer
from schemas import CaseRecord


def _stages(persons: int, seed: int) -> None:
    pools = draw_pools(seed)
    settings, noise = PopulationSettings(), NoiseRates()
    sources = tuple(SOURCE_FORMATS)
    population = Population(
        persons=persons, seed=seed, sources=sources, settings=settings, pools=pools
    )
    started = time.perf_counter()
    blocks = [population.block(number) for number in range(population.blocks_count)]
    seconds = time.perf_counter() - started
    print(f"population   {persons / seconds:>10,.0f} persons/s")
    for source, fmt in SOURCE_FORMATS.items():
        renderer = SourceRenderer(fmt, seed=seed, noise=noise, settings=settings, pools=pools)
        started = time.perf_counter()
        records: list[CaseRecord] = [
            rendered.record
            for number, block in enumerate(blocks)
            for rendered in renderer.render_block(number, block)
        ]
        seconds = time.perf_counter() - started
        line = f"{source:<14} render {len(records) / seconds:>10,.0f} records/s"
        try:
            writer = load_writer(fmt)
        except WriterUnavailable:
            print(f"{line}; no writer ({fmt.writer_module})")
            continue
        stream = io.BytesIO()
        started = time.perf_counter()
        writer(records, stream)
        seconds = time.perf_counter() - started
        print(
            f"{line}; {fmt.adapter} writer {len(records) / seconds:>10,.0f} records/s "
            f"({len(stream.getvalue()) / len(records):,.0f} bytes/record)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    parser.add_argument(
        "--stage-persons",
        type=int,
        default=10 * BLOCK_SIZE,
        help="Persons for the per-stage figures (kept in memory).",
    )
    arguments = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    _stages(arguments.stage_persons, arguments.seed)
    with tempfile.TemporaryDirectory() as directory:
        options = GenerateOptions(
            persons=arguments.persons,
            seed=arguments.seed,
            out=Path(directory),
            workers=arguments.workers,
            on_missing_writer=MissingWriterPolicy.CANONICAL,
        )
        started = time.perf_counter()
        report = generate(options)
        seconds = time.perf_counter() - started
    print(
        f"end to end: {report.records:,} records for {report.persons:,} persons with "
        f"{arguments.workers} worker(s) in {seconds:.1f} s: "
        f"{report.records / seconds:,.0f} records/s"
    )


if __name__ == "__main__":
    main()
