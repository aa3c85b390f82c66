"""The adapter for the delimited flat-file export of a CRC that stayed on nDelius.

One row per requirement, the person and event repeated on every row; the rows of one offender
are contiguous and become one raw record. See FORMAT.md beside this module for the layout.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import IO, Any, ClassVar

from pydantic import Field, field_validator

from adapters.base import Adapter, AdapterConfig, PayloadRejected, RawRecord
from adapters.delius_flat.reader import SplitLimits, split_records
from adapters.delius_flat.translate import translate_record
from schemas import CaseRecord

__all__ = ["CSV", "DeliusFlatAdapter", "DeliusFlatConfig"]

CSV = "text/csv"


class DeliusFlatConfig(AdapterConfig):
    """Settings of one source's Delius flat export."""

    encoding: str = Field(
        default="utf-8",
        description="Text encoding of the file, e.g. cp1252 for an export saved on Windows.",
    )
    delimiter: str = Field(default=",", description="Field delimiter: one character.")
    max_columns: int = Field(default=200, ge=1, le=100_000, description="Most header columns.")
    max_field_bytes: int = Field(
        default=1_000_000, ge=1, le=2**31 - 1, description="Largest single field, in bytes."
    )
    max_row_bytes: int = Field(
        default=4_000_000,
        ge=1,
        le=2**31 - 1,
        description="Largest row (counted in characters, which never exceed bytes).",
    )
    max_record_bytes: int = Field(
        default=16_000_000,
        ge=1,
        description="Largest group of one offender's rows held at once (in characters).",
    )

    @field_validator("encoding")
    @classmethod
    def _text_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
            "CRN".encode(value)
        except LookupError:
            raise ValueError("not a text encoding Python knows, e.g. utf-8 or cp1252") from None
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1 or value in '"\r\n':
            raise ValueError("should be one character other than a quote or a line break")
        return value


class DeliusFlatAdapter(Adapter[DeliusFlatConfig]):
    """Reads the nDelius flat export (versions v1 and v2), one record per offender."""

    name: ClassVar[str] = "delius_flat"
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[AdapterConfig]] = DeliusFlatConfig
    content_types: ClassVar[tuple[str, ...]] = (CSV,)

    def parse(self, stream: IO[bytes], content_type: str) -> Iterator[RawRecord]:
        """Yield one raw record per offender; see `adapters.delius_flat.reader`."""
        if content_type.split(";")[0].strip().lower() != CSV:
            raise PayloadRejected(f"the delius_flat adapter reads {CSV}, not {content_type}")
        config = self.config
        limits = SplitLimits(
            encoding=config.encoding,
            delimiter=config.delimiter,
            max_columns=config.max_columns,
            max_field_bytes=config.max_field_bytes,
            max_row_chars=config.max_row_bytes,
            max_record_chars=config.max_record_bytes,
        )
        # A generator throughout: the gateway expects PayloadRejected while iterating.
        yield from split_records(stream, limits)

    def translate(self, raw: Any) -> CaseRecord:
        return translate_record(raw)
