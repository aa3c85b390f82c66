"""The generated sources: each one's adapter, writer, file extension and content type, in one table.

A writer is ``write_records(records, stream)``: it writes canonical records to a binary stream in
the source's own format, which the named adapter reads back. The per-format writers live beside
their adapters (``adapters/<adapter>/writer.py``); the canonical source uses the NDJSON writer here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from functools import partial
from typing import IO, Any, Final, Protocol, cast

from gateway.synthetic.population import REFERENCE_DATE
from schemas import CaseRecord

__all__ = [
    "SOURCE_FORMATS",
    "SourceFormat",
    "WriterUnavailable",
    "as_canonical",
    "load_writer",
    "write_canonical_ndjson",
]


class RecordWriter(Protocol):
    """Writes canonical records to a binary stream in one source's own format."""

    def __call__(self, records: Iterable[CaseRecord], stream: IO[bytes], /) -> None: ...


class WriterUnavailable(RuntimeError):
    """A source's writer cannot be imported or has no ``write_records``."""


@dataclass(frozen=True)
class SourceFormat:
    """How one generated source is written and read back.

    ``writer_module`` is the module holding ``write_records`` (None: canonical NDJSON, built in).
    ``id_prefix`` starts the record's external id in that source; None means the source is keyed
    by the CRN, as nDelius is. ``writer_options`` are keyword arguments for the writer, such as
    a fixed export timestamp where the format stamps one (the output must not depend on the clock).
    """

    source: str
    adapter: str
    writer_module: str | None
    extension: str
    content_type: str
    provider_code: str
    id_prefix: str | None
    writer_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def keyed_by_crn(self) -> bool:
        return self.id_prefix is None


CANONICAL_ADAPTER: Final = "canonical"
#: When the generated snapshot was exported: the evening of the reference date.
EXPORTED_AT: Final = datetime.combine(REFERENCE_DATE, time(18, 0), UTC)
NDJSON: Final = "application/x-ndjson"

#: Every source the generator knows, in the order they are generated and listed.
SOURCE_FORMATS: Final[dict[str, SourceFormat]] = {
    fmt.source: fmt
    for fmt in (
        SourceFormat(
            source="crc-delius",
            adapter="delius_flat",
            writer_module="adapters.delius_flat.writer",
            extension="csv",
            content_type="text/csv",
            provider_code="C16",
            id_prefix=None,
        ),
        SourceFormat(
            source="crc-xml",
            adapter="xml_case_export",
            writer_module="adapters.xml_case_export.writer",
            extension="xml",
            content_type="application/xml",
            provider_code="C05",
            id_prefix="CX",
            writer_options={"exported_at": EXPORTED_AT},
        ),
        SourceFormat(
            source="crc-rest",
            adapter="rest_json",
            writer_module="adapters.rest_json.writer",
            # One page of its `/cases` API per line.
            extension="jsonl",
            content_type="application/vnd.crc-rest-json+jsonl",
            provider_code="C21",
            id_prefix="R-",
        ),
        SourceFormat(
            source="crc-canonical",
            adapter=CANONICAL_ADAPTER,
            writer_module=None,
            extension="ndjson",
            content_type=NDJSON,
            provider_code="C01",
            id_prefix="CAN",
        ),
    )
}


def as_canonical(fmt: SourceFormat) -> SourceFormat:
    """The same source written as canonical NDJSON instead (when its own writer is missing)."""
    return replace(
        fmt,
        writer_options={},
        adapter=CANONICAL_ADAPTER,
        writer_module=None,
        extension="ndjson",
        content_type=NDJSON,
    )


def write_canonical_ndjson(records: Iterable[CaseRecord], stream: IO[bytes], /) -> None:
    """One canonical record per line, as the built-in ``canonical`` adapter reads NDJSON."""
    for record in records:
        stream.write(record.model_dump_json(exclude_none=True).encode())
        stream.write(b"\n")


def load_writer(fmt: SourceFormat) -> RecordWriter:
    """The source's ``write_records``; raises WriterUnavailable saying why it cannot be had."""
    if fmt.writer_module is None:
        return write_canonical_ndjson
    try:
        module = importlib.import_module(fmt.writer_module)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if fmt.writer_module == missing or fmt.writer_module.startswith(f"{missing}."):
            raise WriterUnavailable(
                f"{fmt.source}: the {fmt.adapter} writer ({fmt.writer_module}) is not installed"
            ) from None
        raise WriterUnavailable(
            f"{fmt.source}: {fmt.writer_module} failed to import: {error}"
        ) from error
    except Exception as error:
        # A writer that exists but is broken must be reported, never skipped quietly.
        raise WriterUnavailable(
            f"{fmt.source}: {fmt.writer_module} failed to import: {type(error).__name__}: {error}"
        ) from error
    writer = getattr(module, "write_records", None)
    if not callable(writer):
        raise WriterUnavailable(f"{fmt.source}: {fmt.writer_module} has no write_records")
    return cast(RecordWriter, partial(writer, **fmt.writer_options))
