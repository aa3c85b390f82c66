"""Cleaning a canonical person into a `MatchView`: junk removed, names normalised, codes ready.

Name normalisation (the same for forenames, surnames and aliases):

* accents are folded to ASCII (``Zoë`` -> ``ZOE``) and everything is upper-cased;
* apostrophes are removed, so ``O'NEIL``, ``O`NEIL`` (any apostrophe) and ``ONEIL`` are one name;
* hyphens, dots, commas and runs of whitespace become one space, so ``SMITH-JONES``,
  ``SMITH - JONES`` and ``smith  jones`` all become ``SMITH JONES``;
* the junk prefixes `JUNK_NAME_PREFIXES` are stripped (the real name after them is kept) and a name
  in `JUNK_NAMES` is dropped.

Forenames are split into single names, so ``["Mary-Ann", "Jo"]`` becomes ``("MARY", "ANN", "JO")``:
sources disagree on whether a double forename is one entry or two.

Everything `score` needs is computed here once per record (phonetic codes, nickname groups,
outcodes, the ISO date of birth and its day/month transposition), so comparing a pair does no
string work beyond the similarity metrics themselves.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache, lru_cache
from typing import Any, Final

import jellyfish
from nicknames import NickNamer

__all__ = [
    "IDENTIFIER_KINDS",
    "JUNK_CROS",
    "JUNK_DATES_OF_BIRTH",
    "JUNK_NAMES",
    "JUNK_NAME_PREFIXES",
    "JUNK_POSTCODES",
    "STRONG_IDENTIFIER_KINDS",
    "MatchView",
    "Street",
    "clean_name",
    "phonetic",
    "view_of",
]

# --- Junk that real case systems hold and the matcher must not believe (ARCHITECTURE §2). ---

#: Placeholder dates of birth: systems that demand a date enter one of these when they have none.
JUNK_DATES_OF_BIRTH: Final = frozenset({date(1900, 1, 1), date(1970, 1, 1)})
#: Placeholder CRO number (its check letter works out, so the schema keeps it).
JUNK_CROS: Final = frozenset({"000000/00Z"})
#: No-fixed-abode postcodes: thousands of unrelated people share them.
JUNK_POSTCODES: Final = frozenset({"NF1 1NF", "NF1 1FA"})
#: Whole names that mean "no name" (compared after cleaning, so any case and spacing).
JUNK_NAMES: Final = frozenset({"NOT ENTERED", "NOT KNOWN", "UNKNOWN"})
#: Prefixes a migration or de-duplication run put in front of a real name (compared upper-cased).
JUNK_NAME_PREFIXES: Final = ("DUPLICATE_", "MIG_ERROR_")

#: Identifier kinds, in the order keys and comparisons use them.
IDENTIFIER_KINDS: Final[tuple[str, ...]] = ("crn", "pnc", "cro", "noms", "nino")
#: Kinds that identify one person only: two different values are two people, so never auto-link.
STRONG_IDENTIFIER_KINDS: Final[tuple[str, ...]] = ("crn", "pnc", "cro", "noms")

_KNOWN_SEXES: Final = frozenset({"MALE", "FEMALE", "OTHER"})
# Apostrophe-like characters sources use: ' ` and U+2019, U+2018, U+00B4.
_APOSTROPHES = re.compile("['`\u2019\u2018\u00b4]")
_SEPARATORS = re.compile(r"[^A-Z]+")
_NON_LETTERS = re.compile(r"[\W\d_]+")
# Names repeat a lot; bounded so a long-running process does not hold every name it ever saw.
_NAME_CACHE: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class MatchView:
    """One source record's person, cleaned, with everything `score` compares precomputed."""

    forenames: tuple[str, ...]
    surname: str | None
    alias_surnames: tuple[str, ...]
    alias_forenames: tuple[str, ...]
    date_of_birth: date | None
    sex: str | None
    postcodes: tuple[str, ...]
    identifiers: Mapping[str, str]
    # Derived, for speed: compare() reads only these and the fields above.
    first_forenames: tuple[str, ...] = field(default=())
    """The main first forename, then each alias's first forename (distinct, main first)."""
    forename_phonetics: tuple[str, ...] = field(default=())
    forename_groups: tuple[frozenset[str], ...] = field(default=())
    """Per first forename: itself plus its nickname canonicals (``BILL`` -> BILL, WILLIAM)."""
    surnames: tuple[str, ...] = field(default=())
    """The surname, then the alias surnames (distinct)."""
    surname_phonetics: tuple[str, ...] = field(default=())
    dob_iso: str | None = None
    dob_transposed_iso: str | None = None
    """The date with day and month swapped, when that is a different valid date."""
    postcode_set: frozenset[str] = field(default=frozenset())
    outcodes: tuple[str, ...] = field(default=())
    outcode_set: frozenset[str] = field(default=frozenset())
    areas: tuple[str, ...] = field(default=())
    """What blocking files a record under for where it lives: each UK outcode, and each postal
    code from abroad whole (it has no outcode; prefixed so it never equals a UK one)."""
    uk_postcodes: frozenset[str] = field(default=frozenset())
    """UK postcodes only: a full one names a few dozen homes, so it agrees as a place."""
    foreign_postcodes: frozenset[str] = field(default=frozenset())
    """Postal codes from abroad: most name a district, so they agree as an area."""
    streets: tuple[Street, ...] = field(default=())
    """Per address that has them: its house number and the names of its street lines."""
    towns: frozenset[str] = field(default=frozenset())
    middle_names: tuple[str, ...] = field(default=())
    """The main forenames after the first (middle names and initials)."""


@dataclass(frozen=True, slots=True)
class Street:
    """Where in a town an address is: its house number and the cleaned names of its lines
    (``["Flat 2", "14 High Street", "Rose Court"]`` -> number ``14``, names
    ``("HIGH STREET", "ROSE COURT")``; the flat line is skipped). The number is None when the
    lines hold none (a named house, or a source that left it out)."""

    number: str | None
    names: tuple[str, ...]


@cache
def _nick_namer() -> NickNamer:
    return NickNamer()


@lru_cache(maxsize=_NAME_CACHE)
def nickname_group(name: str) -> frozenset[str]:
    """The cleaned name and every formal name it is a nickname of (from the nicknames package)."""
    canonicals = _nick_namer().canonicals_of(name.lower())
    return frozenset({name, *(clean_name(c) or name for c in canonicals)})


@lru_cache(maxsize=_NAME_CACHE)
def phonetic(name: str) -> str:
    """Metaphone code of a cleaned name, spaces ignored.

    Metaphone rather than NYSIIS: it drops vowels after the first letter, so most one-letter typos
    in a vowel keep the code (NYSIIS folds vowels to A but a deletion still shifts its code).
    """
    return jellyfish.metaphone(name.replace(" ", ""))


@lru_cache(maxsize=_NAME_CACHE)
def clean_name(raw: str) -> str | None:
    """The normalised name (see the module docstring), or None when nothing real is left."""
    upper = _APOSTROPHES.sub("", raw.upper()).strip()
    stripped = True
    while stripped:
        stripped = False
        for prefix in JUNK_NAME_PREFIXES:
            if upper.startswith(prefix):
                upper = upper[len(prefix) :].lstrip()
                stripped = True
    folded = unicodedata.normalize("NFKD", upper).encode("ascii", "ignore").decode("ascii")
    name = " ".join(_SEPARATORS.sub(" ", folded).split())
    if not name and not upper.isascii():
        # A name with no Latin letters at all (another script) is kept as written, not dropped.
        name = " ".join(_NON_LETTERS.sub(" ", upper).split())
    if not name or name in JUNK_NAMES:
        return None
    return name


def _clean_forenames(raw: Iterable[Any]) -> tuple[str, ...]:
    names: list[str] = []
    for item in raw:
        # A junk name is judged whole ("NOT ENTERED"), before splitting into single names.
        cleaned = clean_name(item) if isinstance(item, str) else None
        if cleaned is not None:
            names.extend(cleaned.split(" "))
    return tuple(names)


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        born = value
    elif isinstance(value, str):
        try:
            born = date.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return None if born in JUNK_DATES_OF_BIRTH else born


def _transposed(born: date) -> str | None:
    if born.day == born.month or born.day > 12:
        return None
    return born.replace(day=born.month, month=born.day).isoformat()


def _postcodes(addresses: Any, key: str = "postcode") -> tuple[str, ...]:
    if not isinstance(addresses, list):
        return ()
    main: list[str] = []
    other: list[str] = []
    for address in addresses:
        if not isinstance(address, Mapping) or address.get("no_fixed_abode"):
            continue
        postcode = address.get(key)
        if not isinstance(postcode, str):
            continue
        postcode = " ".join(postcode.upper().split())
        if not postcode or postcode in JUNK_POSTCODES:
            continue
        (main if address.get("status") == "MAIN" else other).append(postcode)
    return tuple(dict.fromkeys([*main, *other]))


# A house number: digits, maybe one letter after them (14, 14A), as its own word.
_HOUSE_NUMBER = re.compile(r"^(\d{1,5}[A-Z]?)$")
_LINE_WORDS = re.compile(r"[^A-Z0-9]+")
# Street names shorter than this say nothing (a stray letter left from "14 B").
_MIN_STREET_NAME = 3
# A line starting with one of these is a flat or unit within the building: its number is not
# the house number, and its words are not a street.
_SUB_PREMISES: Final = frozenset(
    {
        "APARTMENT",
        "APT",
        "APRT",
        "BLOCK",
        "FL",
        "FLAT",
        "FLOOR",
        "NO",
        "NUMBER",
        "ROOM",
        "STE",
        "SUITE",
        "UNIT",
    }
)


def _address_text(raw: str) -> str:
    folded = unicodedata.normalize("NFKD", raw.upper()).encode("ascii", "ignore").decode("ascii")
    return " ".join(_LINE_WORDS.sub(" ", _APOSTROPHES.sub("", folded)).split())


def _street(lines: Any) -> Street | None:
    """The house number (None if there is none) and street names of one address's lines; None
    without a street name.

    Lines naming a flat or unit (``Flat 2``, ``Apt # 101``) are skipped; the number is then the
    first word that is one, and the names are each remaining line's other words (so a building
    name and a street name are both kept, whichever line a source put them on).
    """
    if not isinstance(lines, list):
        return None
    number: str | None = None
    names: list[str] = []
    for line in lines:
        if not isinstance(line, str):
            continue
        words = _address_text(line).split(" ")
        if words[0] in _SUB_PREMISES:
            continue
        kept = []
        for word in words:
            if _HOUSE_NUMBER.match(word):
                if number is None:
                    number = word
            elif word:
                kept.append(word)
        name = " ".join(kept)
        if len(name) >= _MIN_STREET_NAME:
            names.append(name)
    if not names:
        return None
    return Street(number, tuple(dict.fromkeys(names)))


def _address_parts(addresses: Any) -> tuple[tuple[Street, ...], frozenset[str]]:
    streets: list[Street] = []
    towns: set[str] = set()
    for address in addresses if isinstance(addresses, list) else ():
        if not isinstance(address, Mapping) or address.get("no_fixed_abode"):
            continue
        street = _street(address.get("lines"))
        if street is not None and street not in streets:
            streets.append(street)
        town = address.get("town")
        if isinstance(town, str):
            cleaned = _address_text(town)
            if cleaned:
                towns.add(cleaned)
    return tuple(streets), frozenset(towns)


def _outcode(postcode: str) -> str:
    # Canonical postcodes have one space before the 3-character inward code.
    return postcode.rsplit(" ", 1)[0] if " " in postcode else postcode[:-3]


def _identifiers(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    found: dict[str, str] = {}
    for kind in IDENTIFIER_KINDS:
        value = raw.get(kind)
        if isinstance(value, str) and value.strip():
            value = "".join(value.split()).upper()
            if kind == "cro" and value in JUNK_CROS:
                continue
            found[kind] = value
    return found


def view_of(person: Mapping[str, Any]) -> MatchView:
    """Clean a canonical person (``CaseRecord.person.model_dump(mode="json")``) into a MatchView.

    Junk is dropped rather than compared (placeholder dates of birth, the placeholder CRO,
    no-fixed-abode postcodes, NOT ENTERED names) and junk prefixes are stripped from names; see
    the constants at the top of this module. Missing keys and unexpected types are treated as
    missing values, so this never raises on a valid canonical person.
    """
    forenames = _clean_forenames(person.get("forenames") or ())
    raw_surname = person.get("surname")
    surname = clean_name(raw_surname) if isinstance(raw_surname, str) else None

    alias_surnames: list[str] = []
    alias_forenames: list[str] = []
    alias_firsts: list[str] = []
    aliases = person.get("aliases")
    for alias in aliases if isinstance(aliases, list) else ():
        if not isinstance(alias, Mapping):
            continue
        raw_alias_surname = alias.get("surname")
        if isinstance(raw_alias_surname, str):
            cleaned = clean_name(raw_alias_surname)
            if cleaned is not None:
                alias_surnames.append(cleaned)
        names = _clean_forenames(alias.get("forenames") or ())
        alias_forenames.extend(names)
        if names:
            alias_firsts.append(names[0])

    born = _date(person.get("date_of_birth"))
    raw_sex = person.get("sex")
    sex = raw_sex.upper() if isinstance(raw_sex, str) and raw_sex.upper() in _KNOWN_SEXES else None
    addresses = person.get("addresses")
    uk = _postcodes(addresses)
    outcodes = tuple(dict.fromkeys(_outcode(postcode) for postcode in uk))
    # Postal codes from abroad agree only as whole text: they have no UK outcode to share.
    foreign = _postcodes(addresses, "postal_code")
    postcodes = tuple(dict.fromkeys([*uk, *foreign]))
    areas = (*outcodes, *(f"@{code}" for code in foreign if code not in outcodes))
    streets, towns = _address_parts(addresses)

    firsts = tuple(dict.fromkeys([*forenames[:1], *alias_firsts]))
    surnames = tuple(dict.fromkeys([*([surname] if surname else []), *alias_surnames]))
    return MatchView(
        forenames=forenames,
        surname=surname,
        alias_surnames=tuple(dict.fromkeys(alias_surnames)),
        alias_forenames=tuple(dict.fromkeys(alias_forenames)),
        date_of_birth=born,
        sex=sex,
        postcodes=postcodes,
        identifiers=_identifiers(person.get("identifiers")),
        first_forenames=firsts,
        forename_phonetics=tuple(phonetic(name) for name in firsts),
        forename_groups=tuple(nickname_group(name) for name in firsts),
        surnames=surnames,
        surname_phonetics=tuple(phonetic(name) for name in surnames),
        dob_iso=born.isoformat() if born else None,
        dob_transposed_iso=_transposed(born) if born else None,
        postcode_set=frozenset(postcodes),
        outcodes=outcodes,
        outcode_set=frozenset(outcodes),
        areas=tuple(dict.fromkeys(areas)),
        uk_postcodes=frozenset(uk),
        foreign_postcodes=frozenset(foreign) - frozenset(uk),
        streets=streets,
        towns=towns,
        middle_names=forenames[1:],
    )
