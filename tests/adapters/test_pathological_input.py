"""Pathological text input costs bounded work: blank lines and empty rows are stepped over in bulk.

Work is counted, not timed: the Python function calls a parse makes. A file of N blank lines
must not cost a call (or a csv row, or a record) per line, so the count stays far below N.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from adapters.base import RawRecord
from tests.adapters.test_delius_flat import CSV, adapter_with, csv_payload, v2_row

LINES = 100_000


def python_calls(work: Callable[[], Any]) -> tuple[int, Any]:
    """How many Python function calls (and generator resumptions) `work` makes, and its result."""
    calls = 0

    def count(_frame: FrameType, event: str, _arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        result = work()
    finally:
        sys.setprofile(None)
    return calls, result


@pytest.mark.parametrize("blank", ["\n", "\r\n", "\r", "  \t\r\n"])
def test_delius_flat_steps_over_blank_lines_in_bulk(blank: str) -> None:
    header, row = csv_payload([v2_row(CRN="X000001")]).split(b"\r\n", 1)
    payload = header + b"\r\n" + blank.encode() * LINES + row
    adapter = adapter_with()

    calls, records = python_calls(lambda: list(adapter.parse(io.BytesIO(payload), CSV)))

    assert [(r.external_id, r.position, r.errors) for r in records] == [
        ("X000001", f"line {LINES + 2}", ())
    ]
    assert calls < LINES / 10


def test_delius_flat_counts_blank_lines_split_across_blocks() -> None:
    # "\r\n" pairs straddling every block boundary are still one line each.
    header, row = csv_payload([v2_row(CRN="X000001")]).split(b"\r\n", 1)
    for lead in range(4):
        payload = header + b"\r\n" + b"\n" * lead + b"\r\n" * LINES + row
        records: list[RawRecord] = list(adapter_with().parse(io.BytesIO(payload), CSV))
        assert records[0].position == f"line {LINES + lead + 2}"
