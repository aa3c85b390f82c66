"""Synthetic persons for the matcher tests: canonical person dicts and their MatchViews."""

from __future__ import annotations

import copy
from typing import Any

from gateway.matching import MatchView, view_of
from schemas import Person
from tests.builders import deep_merge

__all__ = ["BASE_PERSON", "canonical_person", "make_view"]

# A fixed, fictional person, so that tests can change one field and know what the rest is.
BASE_PERSON: dict[str, Any] = {
    "forenames": ["Peregrine", "Zebedee"],
    "surname": "Quillfeather",
    "aliases": [],
    "date_of_birth": "1984-03-07",
    "sex": "MALE",
    "addresses": [
        {"status": "MAIN", "postcode": "ZE2 9XL", "no_fixed_abode": False},
        {"status": "PREVIOUS", "postcode": "KW15 1AB", "no_fixed_abode": False},
    ],
    "identifiers": {
        "crn": "X320741",
        "pnc": "2002/0073319Z",
        "cro": "065656/91H",
        "noms": "A1234BC",
        "nino": "AB123456C",
    },
}


def canonical_person(**overrides: Any) -> dict[str, Any]:
    """BASE_PERSON with ``overrides`` deep-merged, validated and dumped as the gateway does."""
    person = Person.model_validate(deep_merge(copy.deepcopy(BASE_PERSON), overrides))
    return person.model_dump(mode="json")


def make_view(**overrides: Any) -> MatchView:
    """The MatchView of `canonical_person(**overrides)`."""
    return view_of(canonical_person(**overrides))
