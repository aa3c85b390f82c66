"""Pools of names, streets, towns and postcodes drawn from Faker once per run.

Faker is slow per call (tens of microseconds), so a run draws a few thousand values of each kind
up front and the population model samples from these pools with its own seeded ``random.Random``.
Draws keep their duplicates, so common names stay common.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from faker import Faker

from schemas.postcodes import NO_FIXED_ABODE_POSTCODES, canonical_postcode

__all__ = ["NICKNAMES", "Pools", "draw_pools"]

# Formal forename -> the short forms a source may hold instead (and back, see `nickname_for`).
NICKNAMES: Final[dict[str, tuple[str, ...]]] = {
    "William": ("Bill", "Will", "Billy"),
    "Robert": ("Bob", "Rob", "Bobby"),
    "Elizabeth": ("Liz", "Beth", "Lizzie"),
    "Margaret": ("Maggie", "Peggy"),
    "James": ("Jim", "Jimmy"),
    "John": ("Jack", "Johnny"),
    "Richard": ("Rich", "Dick"),
    "Michael": ("Mick", "Mike"),
    "Thomas": ("Tom", "Tommy"),
    "Anthony": ("Tony",),
    "Christopher": ("Chris",),
    "Stephen": ("Steve",),
    "Daniel": ("Dan", "Danny"),
    "Edward": ("Ed", "Ted"),
    "Joseph": ("Joe",),
    "Andrew": ("Andy",),
    "David": ("Dave",),
    "Peter": ("Pete",),
    "Nicholas": ("Nick",),
    "Matthew": ("Matt",),
    "Samuel": ("Sam",),
    "Benjamin": ("Ben",),
    "Kenneth": ("Ken",),
    "Terence": ("Terry",),
    "Philip": ("Phil",),
    "Catherine": ("Cath", "Kate"),
    "Katherine": ("Kate", "Kathy"),
    "Rebecca": ("Becky",),
    "Jennifer": ("Jenny", "Jen"),
    "Susan": ("Sue",),
    "Patricia": ("Pat", "Trish"),
    "Victoria": ("Vicky",),
    "Deborah": ("Debbie",),
    "Samantha": ("Sam",),
    "Jacqueline": ("Jackie",),
}
_FEMALE_FORMAL: Final = (
    "Elizabeth",
    "Margaret",
    "Catherine",
    "Katherine",
    "Rebecca",
    "Jennifer",
    "Susan",
    "Patricia",
    "Victoria",
    "Deborah",
    "Samantha",
    "Jacqueline",
)
_MALE_FORMAL: Final = tuple(name for name in NICKNAMES if name not in _FEMALE_FORMAL)


@dataclass(frozen=True)
class Pools:
    """Values to sample from; every postcode passes the canonical schema's postcode check."""

    male_forenames: tuple[str, ...]
    female_forenames: tuple[str, ...]
    surnames: tuple[str, ...]
    streets: tuple[str, ...]
    towns: tuple[str, ...]
    counties: tuple[str, ...]
    postcodes: tuple[str, ...]


def draw_pools(seed: int, size: int = 3000) -> Pools:
    """Draw every pool from ``Faker("en_GB")`` seeded with ``seed`` (same seed, same pools)."""
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    # The formal names of the nickname table are added so that nicknames have names to act on.
    male = [fake.first_name_male() for _ in range(size)] + list(_MALE_FORMAL) * 3
    female = [fake.first_name_female() for _ in range(size)] + list(_FEMALE_FORMAL) * 3
    surnames = [fake.last_name() for _ in range(size)]
    # A few double-barrelled surnames, the ones whose spelling sources disagree on most.
    surnames += [f"{fake.last_name()}-{fake.last_name()}" for _ in range(size // 30)]
    return Pools(
        male_forenames=tuple(male),
        female_forenames=tuple(female),
        surnames=tuple(surnames),
        streets=tuple(fake.street_name() for _ in range(size)),
        towns=tuple(dict.fromkeys(fake.city() for _ in range(size))),
        counties=tuple(dict.fromkeys(fake.county() for _ in range(size // 10))),
        postcodes=tuple(_valid_postcode(fake) for _ in range(size)),
    )


def _valid_postcode(fake: Faker) -> str:
    """A Faker postcode in canonical form; re-drawn until the schema accepts it."""
    while True:
        try:
            postcode = canonical_postcode(fake.postcode())
        except ValueError:
            continue
        if postcode not in NO_FIXED_ABODE_POSTCODES:
            return postcode
