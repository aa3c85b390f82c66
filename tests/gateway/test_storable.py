"""What the database can hold: the rule every stored document is checked against."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.storable import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    as_json_text,
    first_unstorable,
    safe_text,
)


@pytest.mark.parametrize(
    ("document", "path", "words"),
    [
        ({"person": {"surname": "A\ud800"}}, "person.surname", "lone surrogate"),
        ({"person": {"surname": "A\x00b"}}, "person.surname", "NUL"),
        ({"a": [1, 2, {"amount": 2**63}]}, "a[2].amount", "out of range"),
        ({"a": [INT64_MIN - 1]}, "a[0]", "out of range"),
        ({"a": 10**4299}, "a", "out of range"),
        ({"a": math.nan}, "a", "NaN"),
        ({"a": -math.inf}, "a", "infinite"),
        ({"bad\x00key": 1}, "bad\\x00key", "field name"),
        # The first in document order, whether a value or a field name.
        ({"a": "A\x00", "b\x00": 1}, "a", "NUL"),
        ({"a\x00": 1, "b": "A\x00"}, "a\\x00", "field name"),
        ({"a\x00": 1, "b\x00": 1}, "a\\x00", "field name"),
    ],
)
def test_the_first_value_no_column_takes_is_found_with_its_path(
    document: Any, path: str, words: str
) -> None:
    found = first_unstorable(document)

    assert found is not None
    assert found.path == path
    assert words in found.message


def test_values_every_engine_stores_pass() -> None:
    document = {
        "text": "Zoë Ñandú 名前 🙂",
        "ints": [INT64_MIN, INT64_MAX, 0],
        "float": 1.5,
        "flags": [True, False, None],
        "nested": {"list": [[{"x": "y"}]]},
    }

    assert first_unstorable(document) is None


def test_nesting_past_the_encoder_limit_is_unstorable() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]

    found = first_unstorable({"deep": deep})

    assert found is not None
    assert "nested" in found.message


def test_safe_text_escapes_only_what_cannot_be_stored() -> None:
    assert safe_text("plain Zoë") == "plain Zoë"
    assert safe_text("a\x00b") == "a\\x00b"
    assert safe_text("a\ud800b") == "a\\ud800b"
    assert first_unstorable(safe_text("\\\x00\udfff")) is None


# What a JSON parser can yield: any text (lone surrogates and NUL included), integers of up
# to 4,300 digits, NaN and the infinities, nested lists and objects.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**200)
    | st.just(10**4299)
    | st.text(st.characters(exclude_categories=())),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=()), max_size=4), children)
    ),
    max_leaves=12,
)


@given(json_values)
def test_json_text_keeps_every_value_a_parser_yields_and_fits_any_text_column(
    value: Any,
) -> None:
    text = as_json_text(value)

    assert text.isascii()
    assert "\x00" not in text
    assert json.dumps(json.loads(text), allow_nan=True) == json.dumps(value, allow_nan=True)
