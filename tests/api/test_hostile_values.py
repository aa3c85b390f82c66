"""Any value a JSON parser or a text file can carry, in any field of a canonical record or of
each adapter's own input, gets a per-record outcome or a 4xx: never a 5xx.

Each example puts one hostile value (any Unicode, lone surrogates and NUL included, integers of
any size up to what a parser reads, NaN and the infinities, deep nesting) into one field of a
real sample and pushes it through the HTTP API, on whichever engine the suite runs against.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.db import Database
from gateway.main import create_app
from gateway.services.clients import Role
from gateway.settings import Settings, SourceSettings
from tests.builders import make_case_record
from tests.conftest import KeyMaker, bearer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "adapters" / "mapping" / "examples"

text_values = st.text(st.characters(exclude_categories=()), max_size=40) | st.sampled_from(
    ["\x00", "A\ud800", "\udfff\ud800", "\ufeff", "\u202e", "\\u0000", "", " "]
)
number_values = (
    st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.integers(min_value=-(2**64), max_value=-(2**63) + 1)
    | st.sampled_from([10**4299, -(10**4299), 10**30])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([math.nan, math.inf, -math.inf])
)
scalar_values = text_values | number_values | st.booleans() | st.none()


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


json_values = st.recursive(
    scalar_values,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(text_values, children, max_size=3)
    ),
    max_leaves=8,
) | st.integers(min_value=20, max_value=400).map(_nested)


def leaf_paths(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where every string, number and boolean sits in a JSON document."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from leaf_paths(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from leaf_paths(value, (*path, index))
    elif document is not None:
        yield path


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def as_json(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=True, allow_nan=True).encode()


def as_text(value: Any) -> str:
    """How a hostile value reaches a text format: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, allow_nan=True)


def encoded(text: str, encoding: str) -> bytes:
    # Lone surrogates become the bytes a broken exporter writes; NUL stays a raw byte.
    if encoding == "utf-8":
        return text.encode("utf-8", "surrogatepass")
    return text.encode(encoding, "backslashreplace")


class CsvSample:
    def __init__(self, path: Path, *, delimiter: str, encoding: str) -> None:
        text = path.read_bytes().decode("utf-8-sig" if encoding == "utf-8" else encoding)
        self.rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        self.delimiter = delimiter
        self.encoding = encoding
        self.cells = [(r, c) for r in range(1, len(self.rows)) for c in range(len(self.rows[r]))]

    def with_value(self, cell: tuple[int, int], value: Any) -> bytes:
        rows = [list(row) for row in self.rows]
        rows[cell[0]][cell[1]] = as_text(value)
        out = io.StringIO()
        csv.writer(out, delimiter=self.delimiter, lineterminator="\r\n").writerows(rows)
        return encoded(out.getvalue(), self.encoding)


class XmlSample:
    def __init__(self, path: Path) -> None:
        self.text = path.read_text(encoding="utf-8")
        root = ET.fromstring(self.text)  # noqa: S314 - our own committed sample
        self.places = [
            (index, attribute)
            for index, element in enumerate(root.iter())
            for attribute in [None, *element.attrib]
            if attribute is not None or (element.text or "").strip()
        ]

    def with_value(self, place: tuple[int, str | None], value: Any) -> bytes:
        root = ET.fromstring(self.text)  # noqa: S314 - our own committed sample
        index, attribute = place
        element = list(root.iter())[index]
        if attribute is None:
            element.text = as_text(value)
        else:
            element.set(attribute, as_text(value))
        return encoded(ET.tostring(root, encoding="unicode"), "utf-8")


CANONICAL = {"records": [make_case_record()]}
REST_PAGE = json.loads((ROOT / "adapters/rest_json/samples/cases-page-1.json").read_text())
MERLIN = json.loads((EXAMPLES / "merlin-sample.json").read_text())
DELIUS = CsvSample(
    ROOT / "adapters/delius_flat/samples/export-v2.csv", delimiter=",", encoding="utf-8"
)
KESTREL = CsvSample(EXAMPLES / "kestrel-sample.csv", delimiter=";", encoding="cp1252")
CASEWRIGHT = XmlSample(ROOT / "adapters/xml_case_export/samples/case-export-v2.xml")
HERON = XmlSample(EXAMPLES / "heron-sample.xml")

SOURCES = {
    "crc-north": SourceSettings(adapter="canonical"),
    "crc-rest": SourceSettings(adapter="rest_json"),
    "crc-delius": SourceSettings(adapter="delius_flat"),
    "crc-casewright": SourceSettings(adapter="xml_case_export"),
    "crc-merlin": SourceSettings(adapter="mapping", config={"file": str(EXAMPLES / "merlin.yaml")}),
    "crc-kestrel": SourceSettings(
        adapter="mapping", config={"file": str(EXAMPLES / "kestrel.yaml")}
    ),
    "crc-heron": SourceSettings(adapter="mapping", config={"file": str(EXAMPLES / "heron.yaml")}),
}

# source -> (content type, where values can go, the body with one value put in one place)
TARGETS: dict[str, tuple[str, list[Any], Callable[[Any, Any], bytes]]] = {
    "crc-north": (
        "application/json",
        list(leaf_paths(CANONICAL)),
        lambda path, value: as_json(replaced(CANONICAL, path, value)),
    ),
    "crc-rest": (
        "application/json",
        list(leaf_paths(REST_PAGE)),
        lambda path, value: as_json(replaced(REST_PAGE, path, value)),
    ),
    "crc-merlin": (
        "application/json",
        list(leaf_paths(MERLIN)),
        lambda path, value: as_json(replaced(MERLIN, path, value)),
    ),
    "crc-delius": ("text/csv", DELIUS.cells, DELIUS.with_value),
    "crc-kestrel": ("text/csv", KESTREL.cells, KESTREL.with_value),
    "crc-casewright": ("application/xml", CASEWRIGHT.places, CASEWRIGHT.with_value),
    "crc-heron": ("application/xml", HERON.places, HERON.with_value),
}


class BlockingClient:
    """The in-process app driven from plain functions, as hypothesis runs them."""

    def __init__(self, app: Any) -> None:
        self.runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://gateway.test")

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.runner.run(self.client.post(url, content=content, headers=headers))

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.close()


@pytest.fixture
def http(database_url: str, db: Database) -> Iterator[BlockingClient]:
    settings_ = Settings(database_url=database_url, log_format="text", sources=SOURCES)
    client = BlockingClient(create_app(settings_, db=db))
    yield client
    client.close()


@pytest.mark.parametrize("source", list(TARGETS))
def test_no_value_in_any_field_gets_a_server_error(
    http: BlockingClient, make_key: KeyMaker, source: str
) -> None:
    content_type, places, build = TARGETS[source]
    headers = {**bearer(make_key(Role.SOURCE, source=source)), "content-type": content_type}
    assert places

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,  # the same examples on every run: CI never flakes
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(place=st.sampled_from(places), value=json_values)
    def pushed(place: Any, value: Any) -> None:
        response = http.post(
            f"/v1/sources/{source}/records", content=build(place, value), headers=headers
        )
        assert response.status_code < 500, (place, response.text)
        if response.status_code == 200:
            assert response.json()["summary"]["received"] >= 1

    pushed()


def test_the_strategies_reach_every_kind_of_unstorable_value() -> None:
    # Guards the generator: a strategy that stopped yielding these would prove nothing.
    seen = {"nan": False, "big": False, "surrogate": False, "nul": False}

    @settings(max_examples=400, database=None)
    @given(scalar_values)
    def look(value: Any) -> None:
        if isinstance(value, float) and math.isnan(value):
            seen["nan"] = True
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            seen["big"] = True
        if isinstance(value, str):
            seen["surrogate"] |= any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
            seen["nul"] |= "\x00" in value

    look()
    assert all(seen.values()), seen
