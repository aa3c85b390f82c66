"""The population model: seeded bijections, blocks that regenerate identically, valid persons."""

from __future__ import annotations

from itertools import pairwise
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from gateway.synthetic.pools import draw_pools
from gateway.synthetic.population import Permutation, Population
from gateway.synthetic.settings import PopulationSettings
from schemas.identifiers import canonical_cro, canonical_nino, canonical_pnc
from schemas.postcodes import canonical_postcode

POOLS = draw_pools(4, size=300)


@given(st.integers(1, 600), st.integers(0, 2**32))
def test_a_permutation_is_a_bijection(modulus: int, seed: int) -> None:
    permutation = Permutation(modulus, Random(seed))

    assert sorted(permutation(value) for value in range(modulus)) == list(range(modulus))


def test_consecutive_numbers_do_not_give_evenly_spaced_ids() -> None:
    permutation = Permutation(10**8, Random(1))
    ids = [permutation(value) for value in range(1, 50)]

    assert len({b - a for a, b in pairwise(ids)}) > 40


def _population(**settings: float) -> Population:
    return Population(
        persons=2500,
        seed=8,
        sources=("crc-a", "crc-b", "crc-c", "crc-d"),
        settings=PopulationSettings(**settings),
        pools=POOLS,
    )


def test_a_block_regenerates_identically() -> None:
    first, second = _population(), _population()

    assert first.block(1) == second.block(1)
    assert first.block(1) != first.block(2)
    assert [person.index for person in first.block(2)] == list(range(2001, 2501))


def test_persons_are_valid_and_in_one_to_three_sources() -> None:
    population = _population(twin_rate=0.05)
    persons = [person for block in population.blocks() for person in block]

    assert len(persons) == 2500
    for person in persons:
        assert canonical_pnc(person.pnc) == person.pnc
        assert person.cro is None or canonical_cro(person.cro) == person.cro
        assert person.nino is None or canonical_nino(person.nino) == person.nino
        assert canonical_postcode(person.address.postcode) == person.address.postcode
        assert 1 <= len(person.sources) <= 3
        assert list(person.sources) == sorted(person.sources)
    twins = [person for person in persons if person.twin_of is not None]
    assert twins
    by_index = {person.index: person for person in persons}
    for twin in twins:
        other = by_index[twin.twin_of or 0]
        assert (twin.surname, twin.date_of_birth, twin.address) == (
            other.surname,
            other.date_of_birth,
            other.address,
        )
        assert twin.forenames[0] != other.forenames[0]
        assert twin.crn != other.crn
