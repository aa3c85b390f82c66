"""Blocking and clustering on a small labelled sample written by hand for the noise the public
development sets show (FEBRL, pseudopeople): typos, swapped names, a replaced or missing date of
birth, a move, a postal code from abroad, a missing house number, and relatives who must stay
apart. Every person here is fictional.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from gateway.matching import evaluation, load_model, match_keys, view_of
from gateway.services.reresolve import Member, cluster

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _person(
    forename: str | None,
    surname: str | None,
    born: str | None,
    lines: list[str],
    town: str,
    postcode: str | None,
    sex: str | None = None,
) -> dict[str, Any]:
    return {
        "forenames": [forename] if forename else [],
        "surname": surname,
        "date_of_birth": born,
        "sex": sex,
        "addresses": [{"status": "MAIN", "lines": lines, "town": town, "postcode": postcode}],
    }


# (entity, record): each entity's first record is clean; the others carry one or two kinds of
# noise. Entities "p*" are the Pembertons, one household: a parent and two children who share a
# surname and a home and must never be put together.
SAMPLE: list[tuple[str, dict[str, Any]]] = [
    ("a", _person("Ottoline", "Fairweather", "1971-04-12", ["12 Quarry Lane"], "Leeds", "LS6 2QT")),
    ("a", _person("Ottoline", "Fairwether", "1971-04-12", ["12 Quarry Ln"], "Leeds", "LS6 2QT")),
    ("a", _person("Fairweather", "Ottoline", "1971-04-12", ["12 Quarry Lane"], "Leeds", None)),
    ("b", _person("Barnaby", "Quenby", "1988-11-03", ["7 Mill Road"], "Hull", "HU5 3PL")),
    ("b", _person("Barnaby", "Quenby", None, ["7 Mill Road"], "Hull", "HU5 3PL")),
    ("b", _person("Barnaby", "Quenby", "1988-03-11", ["44 Cross Street"], "York", "YO1 7HD")),
    ("c", _person("Imogen", "Thackeray", "1990-06-21", ["Rose Cottage"], "Ripon", "HG4 1AA")),
    ("c", _person("Imogen", "Thackery", "1990-06-12", ["Rose Cottage"], "Ripon", "HG4 1AA")),
    ("d", _person("Caspian", "Wilberforce", "1965-09-30", ["3 Palana Place"], "Bucasia", "3222")),
    ("d", _person("Caspian", "Wilberforce", "1965-09-03", ["Palana Place"], "Bucaisa", "3222")),
    ("e", _person("Rosalind", "Ashdown", "1979-01-17", ["88 Bank Street"], "Bury", "BL9 0DN")),
    ("e", _person("Roz", "Ashdown", "1979-01-17", ["88 Bank St"], "Bury", "BL9 0DN")),
    ("f", _person("Evander", "Okonkwo", "1983-12-05", ["19 Vale Road"], "Derby", "DE1 1AB")),
    ("f", _person(None, "Okonkwo", "1983-12-05", ["19 Vale Road"], "Derby", "DE1 1AB")),
    (
        "p1",
        _person("Aldous", "Pemberton", "1962-02-14", ["5 Elm Grove"], "Wigan", "WN1 2XX", "MALE"),
    ),
    (
        "p2",
        _person("Cuthbert", "Pemberton", "1991-08-09", ["5 Elm Grove"], "Wigan", "WN1 2XX", "MALE"),
    ),
    ("p3", _person("Cuthbert", "Pemberton", None, ["5 Elm Grove"], "Wigan", "WN1 2XX", "MALE")),
    ("p4", _person("Dorcas", "Pemberton", None, ["5 Elm Grove"], "Wigan", "WN1 2XX", "FEMALE")),
]
# p2 and p3 are one person: the second record lost its date of birth.
TRUTH = {str(i): ("p2" if entity == "p3" else entity) for i, (entity, _) in enumerate(SAMPLE)}


def _true_pairs() -> Iterator[tuple[int, int]]:
    for i, j in itertools.combinations(range(len(SAMPLE)), 2):
        if TRUTH[str(i)] == TRUTH[str(j)]:
            yield i, j


def test_every_true_pair_of_the_sample_shares_a_key() -> None:
    keys = [set(match_keys(view_of(person))) for _, person in SAMPLE]

    missed = [(i, j) for i, j in _true_pairs() if not keys[i] & keys[j]]

    assert missed == []


def test_the_default_model_clusters_the_sample_without_joining_the_household() -> None:
    members = [
        Member(
            record_id=uuid.UUID(int=i + 1),
            person_id=uuid.UUID(int=i + 1),
            pinned=False,
            view=view_of(person),
            created_at=NOW,
        )
        for i, (_, person) in enumerate(SAMPLE)
    ]

    result = cluster(members, load_model(), max_key_records=500)

    predicted = {str(i): result.cluster_of[i] for i in range(len(SAMPLE))}
    scores = evaluation.pairwise(predicted, TRUTH)
    assert scores.precision == 1.0
    assert scores.recall == 1.0
    # The parent and the two children are three people.
    of = {entity: result.cluster_of[i] for i, (entity, _) in enumerate(SAMPLE)}
    assert len({of["p1"], of["p2"], of["p4"]}) == 3
