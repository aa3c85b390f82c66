"""Blocking keys: the values a record is filed under so its candidates are found by index lookups.

Every key is ``"kind:value"`` and at most `MAX_KEY_LENGTH` characters. Names are keyed by their
metaphone code (`views.phonetic`, at most `_CODE_LENGTH` characters), so spelling variants that
sound alike share a key. No key is ever made from a missing or junk value (junk is removed by
`view_of`), so placeholder dates of birth or no-fixed-abode postcodes never gather candidates.

Identifier keys (`IDENTIFIER_KEY_KINDS`), one per identifier held:

* ``crn:X320741``, ``pnc:2002/0073319Z``, ``cro:065656/91H``, ``noms:A1234BC``, ``nino:AB123456C``.

Blocking keys. Each combines a date of birth (about 19,000 values across 18-70 year-olds), an
outcode (about 3,000), a full postcode or a town with a second value, so the number of records
sharing a key stays small as the store grows to millions. Only ``names`` (below) has no such
anchor: it is about as coarse as surname + year of birth, so it (and ``name_pc``, whose postal
code may name a whole district) is used only while `COARSE_KEY_RECORDS` records or fewer hold
it (`key_cap`).

* ``dob_out:<dob>:<outcode>``: date of birth + postcode outcode, one per outcode held. Finds a
  record whose names are misspelt or changed (marriage, nickname) at the same address area.
* ``sn_dob:<surname code>:<dob>``: surname + date of birth, for the surname and each alias
  surname, so a record under a married name finds the one under the former name.
* ``fn_dob:<forename code>:<dob>``: first forename + date of birth (also each alias's first
  forename). Survives a surname change and a surname typo.
* ``names_dob:<code>|<code>:<dob>``: the first forename and surname codes sorted, + date of birth.
  Order-independent, so a record with forename and surname swapped shares it.
* ``dmx_sn:<yyyy-lo-hi>:<surname code>``: date of birth with day and month sorted, + surname. Only
  when day and month could be swapped (both 12 or less, and different), so ``1980-03-05`` and
  ``1980-05-03`` share it.
* ``names_out:<code>|<code>:<outcode>``: the sorted name pair + outcode, with no date of birth, so a
  record whose date of birth is missing or junk still finds its person.
* ``names_town:<code>|<code>:<town>``: the sorted name pair + town, for a record whose postcode
  is missing or mistyped and whose date of birth is too.
* ``dob_home:<dob>:<house number>``: date of birth + house number, for a record whose names and
  postcode are both wrong.
* ``home:<house number>:<street code>:<initial>``: house number + the first letters of a street
  line's phonetic code + the initial of the surname or of the first forename (one key each), for
  a record whose date of birth and one name are wrong at the same home.
* ``name_pc:<code>:<postcode>``: the first three letters of one name's code (the first forename,
  each alias's first forename, the surname, each alias surname) + a full postcode. Finds a record
  whose date of birth is missing or wrong and whose other name is missing, changed or swapped, at
  the same postcode; three letters survive a typo late in a name (``MCCARTHY``, ``MCCADRTHY``).
* ``dob_town:<dob>:<town code>``: date of birth + the town's phonetic code, for a record whose
  names and postcode are both wrong in the same town.
* ``sn_fi_town:<surname code>:<initial>:<town code>``: surname (and each alias surname) + the
  first forename's initial + the town's code, for a record whose date of birth and postcode are
  wrong or missing and whose forename is misspelt.
* ``names:<code>|<code>``: the sorted name pair alone, for a record whose date of birth is wrong
  and which has moved. The only key with neither a date of birth nor a place: a common pair is
  held by more than `COARSE_KEY_RECORDS` records in a large store and is then skipped, so it
  finds people with uncommon names only.

Where an outcode is named, a postal code from abroad (kept whole, as ``@<code>``) serves too: it
has no outcode of its own, and without it such a record had no address key at all. Where a full
postcode is named, such a code serves the same way: it may name a whole district (an Australian
postcode) or be a placeholder shared by a whole town, and then its keys are coarse or skipped by
`max_key_records`, where a UK postcode names a few dozen homes. Town codes are `phonetic` codes of
the cleaned town, so ``NOBLE PARK`` and ``NOBL EE PARK`` agree.
"""

from __future__ import annotations

from typing import Final

from gateway.matching.views import IDENTIFIER_KINDS, MatchView, phonetic

__all__ = [
    "BLOCKING_KEY_KINDS",
    "COARSE_KEY_RECORDS",
    "IDENTIFIER_KEY_KINDS",
    "MAX_KEY_LENGTH",
    "key_cap",
    "match_keys",
]

MAX_KEY_LENGTH: Final = 96
#: Key kinds that carry an identifier value: exact agreement on one is strong evidence by itself.
IDENTIFIER_KEY_KINDS: Final[tuple[str, ...]] = IDENTIFIER_KINDS
#: Key kinds that only nominate candidates; every candidate must be scored.
BLOCKING_KEY_KINDS: Final[tuple[str, ...]] = (
    "dob_out",
    "sn_dob",
    "fn_dob",
    "names_dob",
    "dmx_sn",
    "names_out",
    "dob_home",
    "home",
    "names_town",
    "name_pc",
    "dob_town",
    "sn_fi_town",
    "names",
)
#: Keys with neither a date of birth nor a small place in them: held by more records than this,
#: they are too common to use whatever `max_key_records` allows (a common name pair alone, or a
#: name's first letters at a postal code that names a whole district).
COARSE_KEY_RECORDS: Final = 50
_COARSE_KEY_KINDS: Final = frozenset({"names", "name_pc"})
# Long enough to tell names apart, short enough that two codes, a date and a kind fit in 96.
_CODE_LENGTH: Final = 20
# A street name's code: long enough to tell streets apart, short enough to survive a typo late
# in a long name ("MACLAURIN CRESCENT" and "MACLAURINC RESCENT").
_STREET_CODE_LENGTH: Final = 6
# A name's code in the postcode key: at one postcode a few letters tell people apart, and a typo
# late in the name keeps them.
_POSTCODE_NAME_CODE_LENGTH: Final = 3


def key_cap(key: str, max_key_records: int) -> int:
    """How many records may hold `key` for it still to nominate candidates."""
    if key.split(":", 1)[0] in _COARSE_KEY_KINDS:
        return min(max_key_records, COARSE_KEY_RECORDS)
    return max_key_records


def _pair(first: str, second: str) -> str:
    return "|".join(sorted((first, second)))


def _first_code(codes: tuple[str, ...]) -> str | None:
    return codes[0][:_CODE_LENGTH] if codes and codes[0] else None


def match_keys(view: MatchView) -> list[str]:
    """Every identifier and blocking key of a record, deduplicated, in a stable order."""
    keys: list[str] = [
        f"{kind}:{view.identifiers[kind]}" for kind in IDENTIFIER_KINDS if kind in view.identifiers
    ]
    surname_codes = [code[:_CODE_LENGTH] for code in view.surname_phonetics if code]
    forename_codes = [code[:_CODE_LENGTH] for code in view.forename_phonetics if code]
    # Index 0 is the main name only when the record has one (else it is an alias's).
    main_surname = _first_code(view.surname_phonetics) if view.surname else None
    main_forename = _first_code(view.forename_phonetics) if view.forenames else None
    names = _pair(main_forename, main_surname) if main_forename and main_surname else None
    dob = view.dob_iso
    born = view.date_of_birth
    if dob is not None and born is not None:
        keys.extend(f"dob_out:{dob}:{area}" for area in view.areas)
        keys.extend(f"sn_dob:{code}:{dob}" for code in surname_codes)
        keys.extend(f"fn_dob:{code}:{dob}" for code in forename_codes)
        if names is not None:
            keys.append(f"names_dob:{names}:{dob}")
        if view.dob_transposed_iso is not None and main_surname is not None:
            low, high = sorted((born.day, born.month))
            keys.append(f"dmx_sn:{born.year:04d}-{low:02d}-{high:02d}:{main_surname}")
    if names is not None:
        keys.extend(f"names_out:{names}:{area}" for area in view.areas)
    numbers = dict.fromkeys(street.number for street in view.streets if street.number)
    if dob is not None:
        keys.extend(f"dob_home:{dob}:{number}" for number in numbers)
    # Under the surname's initial and the first forename's, so either name may be wrong.
    initials = dict.fromkeys(
        name[0] for name in (view.surname, view.forenames[0] if view.forenames else None) if name
    )
    keys.extend(
        f"home:{street.number}:{_street_code(name)}:{initial}"
        for street in view.streets
        if street.number
        for name in street.names
        for initial in initials
    )
    if names is not None:
        keys.extend(f"names_town:{names}:{town}" for town in sorted(view.towns))
    postcodes = _full_postcodes(view)
    name_codes = dict.fromkeys(
        code[:_POSTCODE_NAME_CODE_LENGTH] for code in (*forename_codes, *surname_codes)
    )
    keys.extend(f"name_pc:{code}:{postcode}" for code in name_codes for postcode in postcodes)
    towns = _town_codes(view)
    if dob is not None:
        keys.extend(f"dob_town:{dob}:{town}" for town in towns)
    if view.forenames:
        initial = view.forenames[0][0]
        keys.extend(
            f"sn_fi_town:{code}:{initial}:{town}" for code in surname_codes for town in towns
        )
    if names is not None:
        keys.append(f"names:{names}")
    return list(dict.fromkeys(key[:MAX_KEY_LENGTH] for key in keys))


def _full_postcodes(view: MatchView) -> tuple[str, ...]:
    """Each postcode whole: a UK one as it is, one from abroad as ``@<code>`` (as in `areas`)."""
    return tuple(
        dict.fromkeys(code if code in view.uk_postcodes else f"@{code}" for code in view.postcodes)
    )


def _town_codes(view: MatchView) -> tuple[str, ...]:
    """The phonetic code of each town, sorted; a town with no letters has none."""
    return tuple(sorted({code[:_CODE_LENGTH] for town in view.towns if (code := phonetic(town))}))


def _street_code(name: str) -> str:
    return phonetic(name)[:_STREET_CODE_LENGTH]
