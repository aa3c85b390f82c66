"""What the database can hold: JSON values every supported engine stores without loss.

A JSON parser yields values that no column can take: text with a NUL character (PostgreSQL
refuses it in text and JSON), text with a lone surrogate (not Unicode, so no encoder writes
it), integers beyond 64 bits, NaN and the infinities (not JSON at all). Each such value is that
one record's problem: it is found here, before the write, so the record is quarantined and the
rest of its batch stored. The rule is the same on every engine, so a record's fate never
depends on where the gateway happens to run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
# No case record nests anywhere near this deep: the bound keeps this check, and every reader of
# a stored document, well inside orjson's own limit (it refuses past 255 levels).
MAX_DEPTH: Final = 128


@dataclass(frozen=True)
class Unstorable:
    """The first value in a document that cannot be stored: where it is and what is wrong."""

    path: str
    message: str

    TYPE: Final = "unstorable_value"


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    if text.isascii():
        return "text holds a NUL character, which cannot be stored" if "\x00" in text else None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text holds a lone surrogate, which is not valid Unicode"
    return "text holds a NUL character, which cannot be stored" if "\x00" in text else None


def _number_problem(value: int | float) -> str | None:
    if type(value) is float:
        if math.isfinite(value):
            return None
        return "number is NaN or infinite, which JSON cannot hold"
    if INT64_MIN <= value <= INT64_MAX:
        return None
    return "integer is out of range: it must lie between -2^63 and 2^63-1"


def first_unstorable(value: Any, *, prefix: str = "") -> Unstorable | None:
    """The first value under `value` that the database cannot store, with its dotted path."""
    # Every record passes through here twice: a path is built only for one that fails.
    if _storable(value, 0):
        return None
    return _locate(value, prefix)


def _text_ok(text: str) -> bool:
    if text.isascii():
        return "\x00" not in text
    return text_problem(text) is None


def _storable(value: Any, depth: int) -> bool:
    kind = type(value)
    if kind is str:
        return _text_ok(value)
    if kind is dict:
        if depth >= MAX_DEPTH:
            return False
        for key, child in value.items():
            if type(key) is not str or not _text_ok(key) or not _storable(child, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            return False
        return all(_storable(child, depth + 1) for child in value)
    if kind is int:
        return bool(INT64_MIN <= value <= INT64_MAX)
    if value is None or kind is bool:
        return True
    if kind is float:
        return math.isfinite(value)
    # Subclasses of str, int and float, and anything else: the thorough walk decides.
    return _locate(value, "") is None


@dataclass(frozen=True, slots=True)
class _BadName:
    """A field name that cannot be stored, waiting its turn in `_locate`'s walk."""

    problem: str


def _locate(value: Any, prefix: str) -> Unstorable | None:
    pending: list[tuple[Any, str, int]] = [(value, prefix, 0)]
    while pending:
        item, path, depth = pending.pop()
        kind = type(item)
        if kind is str:
            problem = text_problem(item)
        elif kind is int or kind is float:
            problem = _number_problem(item)
        elif kind is dict:
            if depth >= MAX_DEPTH:
                return Unstorable(path, f"nested more than {MAX_DEPTH} levels deep")
            problem = None
            # Pushed in reverse so they come off in document order; a bad field name takes its
            # value's place, so whatever comes first in the document is reported.
            for key, child in reversed(item.items()):
                key_problem = text_problem(key) if type(key) is str else "a key is not text"
                child_path = f"{path}.{safe_text(str(key))}" if path else safe_text(str(key))
                if key_problem is not None:
                    pending.append((_BadName(key_problem), child_path, depth + 1))
                else:
                    pending.append((child, child_path, depth + 1))
        elif kind is list or kind is tuple:
            if depth >= MAX_DEPTH:
                return Unstorable(path, f"nested more than {MAX_DEPTH} levels deep")
            problem = None
            pending.extend(
                (child, f"{path}[{index}]", depth + 1)
                for index, child in reversed(list(enumerate(item)))
            )
        elif item is None or kind is bool:
            problem = None
        elif kind is _BadName:
            problem = f"field name: {item.problem}"
        elif isinstance(item, str):
            problem = text_problem(item)
        elif isinstance(item, int | float):
            problem = _number_problem(item)
        else:
            problem = f"a {kind.__name__} is not a JSON value"
        if problem is not None:
            return Unstorable(path, problem)
    return None


def safe_text(text: str) -> str:
    """`text` with every character that cannot be stored written as an escape instead."""
    if text_problem(text) is None:
        return text
    return (
        text.replace("\\", "\\\\")
        .replace("\x00", "\\x00")
        .encode("utf-8", "backslashreplace")
        .decode("utf-8")
    )


def as_json_text(value: Any) -> str:
    """`value` as ASCII JSON text that any text column holds, losing nothing a parser can yield.

    Escapes keep NUL and lone surrogates; NaN and the infinities are written as Python's JSON
    does. Only an integer too long to write as text (no JSON parser here yields one) is replaced
    by a note of its size.
    """
    try:
        return json.dumps(value, ensure_ascii=True, allow_nan=True, separators=(",", ":"))
    except ValueError:
        return json.dumps(
            _shorten_huge_integers(value), ensure_ascii=True, allow_nan=True, separators=(",", ":")
        )
    except RecursionError:
        # Adapters refuse documents nested this deep before they get here.
        return json.dumps("<a document nested too deeply to write as text>")


def _shorten_huge_integers(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shorten_huge_integers(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [_shorten_huge_integers(child) for child in value]
    if type(value) is int:
        try:
            str(value)
        except ValueError:
            return f"<an integer of about {int(value.bit_length() * math.log10(2))} digits>"
    return value
