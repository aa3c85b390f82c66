"""The xml_case_export adapter parses as a stream: early records, bounded memory, size guards."""

from __future__ import annotations

import io
import itertools
import tracemalloc
from collections.abc import Iterable, Iterator

import pytest

from adapters.base import PayloadRejected, RecordRejected
from adapters.xml_case_export import XmlCaseExportAdapter, XmlCaseExportConfig
from adapters.xml_case_export.format import CONTACT_NAMESPACE, EXPORT_NAMESPACE

XML = "application/xml"
ADAPTER = XmlCaseExportAdapter()
HEADER = (
    f'<?xml version="1.0" encoding="UTF-8"?>\n<CaseExport xmlns="{EXPORT_NAMESPACE}" '
    f'xmlns:ct="{CONTACT_NAMESPACE}" exportedAt="2024-03-01T02:00:00Z">\n'
).encode()
FOOTER = b"</CaseExport>\n"
COURT = "Fictionville Magistrates' Court"


class GeneratedStream(io.RawIOBase):
    """A read-only byte stream fed from a generator, counting what has been read."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""
        self.bytes_read = 0
        self.exhausted = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        filled = 0
        while filled < len(buffer):
            if not self._pending:
                try:
                    self._pending = next(self._chunks)
                except StopIteration:
                    self.exhausted = True
                    break
                continue
            size = min(len(buffer) - filled, len(self._pending))
            buffer[filled : filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        self.bytes_read += filled
        return filled


def case_bytes(number: int, court: str = COURT) -> bytes:
    return (
        f'  <Case id="CW-{number}" lastModified="2024-02-28T16:41:09Z">\n'
        f"    <Person><Name>FICTIONWORTH, Zebedee</Name></Person>\n"
        f'    <Events><Event number="1"><Court>{court}</Court></Event></Events>\n'
        "  </Case>\n"
    ).encode()


def export(cases: Iterable[bytes]) -> Iterator[bytes]:
    yield HEADER
    yield from cases
    yield FOOTER


def test_the_first_record_comes_before_the_stream_is_read_through() -> None:
    stream = GeneratedStream(export(case_bytes(n) for n in itertools.count()))  # never ends
    records = ADAPTER.parse(stream, XML)  # type: ignore[arg-type]
    first = next(records)
    assert first.external_id == "CW-0"
    assert first.position == "case 1 (line 3)"
    assert not stream.exhausted
    assert stream.bytes_read <= 64 * 1024
    second = next(records)
    assert second.external_id == "CW-1"
    records.close()


def test_memory_stays_flat_over_fifty_thousand_cases() -> None:
    count, traced = 50_000, 5_000
    stream = GeneratedStream(export(case_bytes(n) for n in range(count)))
    records = ADAPTER.parse(stream, XML)  # type: ignore[arg-type]
    # tracemalloc slows every allocation several times over, so it watches the last cases: a
    # parse that kept anything per case would end the window holding thousands of them.
    seen = sum(1 for _ in itertools.islice(records, count - traced))
    tracemalloc.start()
    try:
        for raw in records:
            assert not raw.errors
            seen += 1
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert stream.exhausted
    assert stream.bytes_read > 10_000_000
    assert retained < 100_000, retained  # 5,000 cases of ~250 bytes would be 1.2 MB
    assert peak < 1_000_000, peak  # a read buffer and one case


def test_a_ten_megabyte_field_rejects_its_case_only_and_memory_stays_bounded() -> None:
    huge = "x" * 10_000_000
    payload = b"".join(export([case_bytes(1), case_bytes(2, huge), case_bytes(3)]))
    tracemalloc.start()
    try:
        records = list(ADAPTER.parse(io.BytesIO(payload), XML))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [raw.external_id for raw in records] == ["CW-1", "CW-2", "CW-3"]
    first, oversized, third = records
    assert not first.errors
    assert not third.errors
    (error,) = oversized.errors
    assert error["type"] == "record_too_large"
    assert "1048576" in error["message"]
    assert oversized.data["start_tag"].startswith(f'<Case xmlns="{EXPORT_NAMESPACE}" id="CW-2"')
    assert oversized.data["bytes"] > 10_000_000
    # Held to the limit plus one read, never the whole field.
    assert peak < 4_000_000, peak
    assert ADAPTER.translate(third.data).provenance.external_id == "CW-3"


def test_a_limit_raised_above_the_field_reads_it_and_the_schema_rejects_it_on_its_path() -> None:
    adapter = XmlCaseExportAdapter(XmlCaseExportConfig(max_case_bytes=16 * 1_048_576))
    payload = b"".join(export([case_bytes(1, "x" * 10_000_000)]))
    (raw,) = adapter.parse(io.BytesIO(payload), XML)
    assert not raw.errors
    with pytest.raises(RecordRejected) as caught:
        adapter.translate(raw.data)
    assert {error["path"] for error in caught.value.errors} == {"Events/Event[1]/Court"}


def test_a_case_just_over_a_small_limit_is_rejected_and_the_next_is_read() -> None:
    adapter = XmlCaseExportAdapter(XmlCaseExportConfig(max_case_bytes=4_096))
    payload = b"".join(export([case_bytes(1, "y" * 5_000), case_bytes(2)]))
    first, second = adapter.parse(io.BytesIO(payload), XML)
    assert first.errors[0]["type"] == "record_too_large"
    assert not second.errors


def test_a_token_longer_than_the_limit_ends_the_parse_after_the_cases_before_it() -> None:
    payload = b"".join(
        export([case_bytes(1), b'<Case id="' + b"9" * 2_000_000 + b'"/>', case_bytes(3)])
    )
    records = ADAPTER.parse(io.BytesIO(payload), XML)
    assert next(records).external_id == "CW-1"
    with pytest.raises(PayloadRejected, match=r"token longer than 1048576 bytes .* line 7"):
        next(records)


def test_the_parse_reads_in_bounded_pieces() -> None:
    class Recording(io.BytesIO):
        sizes: list[int]

        def read(self, size: int | None = -1) -> bytes:
            self.sizes.append(-1 if size is None else size)
            return super().read(size)

    stream = Recording(b"".join(export(case_bytes(n) for n in range(500))))
    stream.sizes = []
    assert len(list(ADAPTER.parse(stream, XML))) == 500
    assert stream.sizes
    assert all(0 < size <= 64 * 1024 for size in stream.sizes)


class Trickle(io.RawIOBase):
    """A stream that hands over a few bytes per read, as a slow upload may."""

    def __init__(self, payload: bytes, step: int = 7) -> None:
        self._payload = payload
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(self._step, len(buffer), len(self._payload))
        buffer[:size] = self._payload[:size]
        self._payload = self._payload[size:]
        return size


def test_a_trickling_stream_parses_and_its_declaration_is_still_checked() -> None:
    payload = b"".join(export([case_bytes(1), case_bytes(2)]))
    records = list(ADAPTER.parse(Trickle(payload), XML))  # type: ignore[arg-type]
    assert [raw.external_id for raw in records] == ["CW-1", "CW-2"]
    klingon = payload.replace(b'encoding="UTF-8"', b'encoding="KLINGON-8"')
    with pytest.raises(PayloadRejected, match="names encoding 'KLINGON-8'"):
        list(ADAPTER.parse(Trickle(klingon), XML))  # type: ignore[arg-type]
