"""The text forms of values in the export: dates, timestamps, whole numbers and personal names.

Every ``read_*`` function raises ValueError with a message that never repeats the value: the
messages end up in quarantine records and logs, and the values are personal data.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Final

__all__ = [
    "external_id",
    "join_name",
    "read_date",
    "read_timestamp",
    "read_whole_number",
    "split_name",
]

_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
# Always day first: the vendor's system is British, and 03/04/2024 is the 3rd of April.
_UK_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_WHOLE_NUMBER = re.compile(r"\d{1,9}")
_NAME_SEPARATORS = re.compile(r"[\s,]+")
_MIN_CAPITALISED = 2  # one capital letter is an initial, not a surname in capitals
_MAX_EXTERNAL_ID = 128  # provenance.external_id, and the gateway's columns


def external_id(value: str | None) -> str | None:
    """A case's ``@id`` as the gateway may record it: trimmed, or None if blank or too long."""
    trimmed = (value or "").strip()
    return trimmed if 0 < len(trimmed) <= _MAX_EXTERNAL_ID else None


def read_date(text: str) -> date:
    """A date written ``yyyy-mm-dd`` (what the writer emits) or ``dd/mm/yyyy`` (older exports)."""
    value = text.strip()
    if match := _ISO_DATE.fullmatch(value):
        year, month, day = match.groups()
    elif match := _UK_DATE.fullmatch(value):
        day, month, year = match.groups()
    else:
        raise ValueError("date should be yyyy-mm-dd or dd/mm/yyyy")
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        raise ValueError("date is not a day of the calendar") from None


def read_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp with a UTC offset (``Z`` or ``+01:00``); a local time is refused."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            "timestamp should be ISO 8601 with a UTC offset, e.g. 2024-03-01T09:30:00Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        # Guessing the zone would misplace an hour a year around the clock change.
        raise ValueError("timestamp should carry a UTC offset (Z or +hh:mm)")
    return value


def read_whole_number(text: str) -> int:
    """A non-negative whole number in ASCII digits (at most 9)."""
    value = text.strip()
    if not (value.isascii() and _WHOLE_NUMBER.fullmatch(value)):
        raise ValueError("should be a whole number")
    return int(value)


def split_name(text: str) -> tuple[str, list[str]]:
    """Split ``"SURNAME, Forename Middle"`` into the surname and the forenames.

    Spaces are collapsed. Before the first comma is the surname (kept as written, so
    ``O'NEILL-SMITH`` and ``VAN DER BERG`` stay whole); after it, the forenames, separated by
    spaces or further commas. Without a comma the system's habit of writing surnames in capitals
    decides: a run of capitalised words (two letters or more) at the start or the end is the
    surname (``"SMITH John"``, ``"Mary Anne O'NEILL"``); otherwise the first word is, as in the
    format's own order.
    """
    compact = " ".join(text.split())
    if not compact:
        raise ValueError("name is empty")
    if "," in compact:
        surname, _, rest = compact.partition(",")
        surname = surname.strip()
        if not surname:
            raise ValueError("name has no surname before the comma")
        return surname, [part for part in _NAME_SEPARATORS.split(rest) if part]
    words = compact.split(" ")
    capitalised = [_is_capitalised(word) for word in words]
    if any(capitalised) and not all(capitalised):
        if capitalised[0]:
            cut = capitalised.index(False)
            return " ".join(words[:cut]), words[cut:]
        if capitalised[-1]:
            cut = len(words) - capitalised[::-1].index(False)
            return " ".join(words[cut:]), words[:cut]
    return words[0], words[1:]


def _is_capitalised(word: str) -> bool:
    letters = sum(character.isalpha() for character in word)
    return letters >= _MIN_CAPITALISED and word.isupper()


NAME_SEPARATOR: Final = ", "


def join_name(surname: str, forenames: list[str]) -> str:
    """The export's single name field; always with the comma, so a surname of several words
    (``Van Der Berg``) reads back whole."""
    return f"{surname}{NAME_SEPARATOR}{' '.join(forenames)}".rstrip()
