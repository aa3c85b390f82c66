"""The mistakes and junk that real case systems hold, applied to one source's copy of a person."""

from __future__ import annotations

from enum import StrEnum
from random import Random
from typing import Final

from gateway.synthetic.pools import NICKNAMES

__all__ = [
    "JUNK_DATES_OF_BIRTH",
    "JUNK_NAME_PREFIXES",
    "NOT_ENTERED",
    "NoiseKind",
    "nickname_for",
    "recase_or_respace",
    "typo",
]


class NoiseKind(StrEnum):
    """Each kind of noise; the values are the field names of `NoiseRates`."""

    NAME_TYPO = "name_typo"
    NICKNAME = "nickname"
    DOB_TRANSPOSED = "dob_transposed"
    PNC_MISSING = "pnc_missing"
    PNC_MALFORMED = "pnc_malformed"
    SURNAME_CHANGED = "surname_changed"
    ADDRESS_MOVED = "address_moved"
    MIDDLE_NAMES_MISSING = "middle_names_missing"
    CASE_SPACING = "case_spacing"
    JUNK_DOB = "junk_dob"
    JUNK_CRO = "junk_cro"
    JUNK_NO_FIXED_ABODE = "junk_no_fixed_abode"
    JUNK_NAME = "junk_name"


JUNK_DATES_OF_BIRTH: Final = ("1900-01-01", "1970-01-01")
JUNK_NAME_PREFIXES: Final = ("DUPLICATE_", "MIG_ERROR_")
NOT_ENTERED: Final = "NOT ENTERED"

_FORMAL_OF: Final = {
    nickname: formal for formal, nicknames in NICKNAMES.items() for nickname in nicknames
}
_LOWER: Final = "abcdefghijklmnopqrstuvwxyz"


def nickname_for(forename: str, rng: Random) -> str | None:
    """A nickname of a formal forename, or the formal name of a nickname; None if neither."""
    nicknames = NICKNAMES.get(forename)
    if nicknames is not None:
        return rng.choice(nicknames)
    return _FORMAL_OF.get(forename)


def typo(name: str, rng: Random) -> str | None:
    """The name with one letter substituted, deleted or transposed; None if too short to spoil."""
    letters = [position for position, char in enumerate(name) if char.isalpha()]
    if len(letters) < 3:
        return None
    operation = rng.randrange(3)
    # The initial is kept: most typos are not in the first letter.
    position = rng.choice(letters[1:])
    # Transposition swaps two neighbouring letters after the initial.
    pairs = [p for p in letters[2:] if p - 1 in letters]
    if operation == 2 and not pairs:
        operation = 0
    elif operation == 2:
        position = rng.choice(pairs)
    if operation == 0:
        original = name[position]
        replacement = rng.choice(_LOWER.replace(original.lower(), ""))
        if original.isupper():
            replacement = replacement.upper()
        spoilt = name[:position] + replacement + name[position + 1 :]
    elif operation == 1:
        spoilt = name[:position] + name[position + 1 :]
    else:
        before = position - 1
        spoilt = name[:before] + name[position] + name[before] + name[position + 1 :]
    return spoilt if spoilt != name else None


def recase_or_respace(forenames: list[str], surname: str, rng: Random) -> tuple[list[str], str]:
    """Names as another system spells them: upper-cased, lower-cased or re-spaced."""
    variant = rng.randrange(4)
    if variant == 1 and ("-" in surname or "'" in surname):
        return forenames, surname.replace("-", " ").replace("'", "")
    if variant == 2:
        return forenames, surname.upper()
    if variant == 3:
        return [forename.lower() for forename in forenames], surname.lower()
    return [forename.upper() for forename in forenames], surname.upper()
