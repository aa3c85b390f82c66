"""Clustering metrics: hand-worked examples, and properties checked against brute force."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from itertools import combinations
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.matching import evaluation
from gateway.matching.evaluation import ClusterMetrics, PairwiseMetrics


def clustering(*clusters: str, label: str = "c") -> dict[str, str]:
    """`clustering("ab", "c")`: records a and b in one cluster, c alone."""
    return {
        record: f"{label}{number}" for number, members in enumerate(clusters) for record in members
    }


def brute_force_pairs(
    predicted: Mapping[Any, Hashable], truth: Mapping[Any, Hashable]
) -> tuple[int, int, int]:
    common = sorted((key for key in predicted if key in truth), key=repr)
    together_predicted = {
        (a, b) for a, b in combinations(common, 2) if predicted[a] == predicted[b]
    }
    together_true = {(a, b) for a, b in combinations(common, 2) if truth[a] == truth[b]}
    return len(together_predicted & together_true), len(together_predicted), len(together_true)


Sides = tuple[dict[int, int], dict[int, int]]

# Small clusterings over the same few records: labels drawn from a small set, so clusters form.
records = st.lists(st.integers(0, 30), unique=True, max_size=25)


@st.composite
def clusterings(draw: st.DrawFn) -> dict[int, int]:
    keys = draw(records)
    return {key: draw(st.integers(0, 6)) for key in keys}


@st.composite
def two_clusterings(draw: st.DrawFn) -> Sides:
    keys = draw(records)
    first = {key: draw(st.integers(0, 6)) for key in keys}
    # Some records only on one side, to check that only common records count.
    second = {key: draw(st.integers(0, 6)) for key in keys if draw(st.booleans()) or key % 3}
    second |= {100 + key: draw(st.integers(0, 6)) for key in draw(st.lists(st.integers(0, 5)))}
    return first, second


def test_pairwise_hand_worked() -> None:
    # Predicted {a,b,c} {d,e}; truth {a,b} {c,d,e}.
    # Predicted pairs ab ac bc de (4); true pairs ab cd ce de (4); both: ab de (2).
    metrics = evaluation.pairwise(clustering("abc", "de"), clustering("ab", "cde", label="t"))
    assert metrics == PairwiseMetrics(
        true_positive_pairs=2, predicted_pairs=4, true_pairs=4, precision=0.5, recall=0.5, f1=0.5
    )


def test_pairwise_over_merge_and_split() -> None:
    truth = clustering("ab", "cd", label="t")
    merged = evaluation.pairwise(clustering("abcd"), truth)
    assert (merged.true_positive_pairs, merged.predicted_pairs, merged.true_pairs) == (2, 6, 2)
    assert merged.precision == pytest.approx(1 / 3)
    assert merged.recall == 1.0
    assert merged.f1 == pytest.approx(0.5)
    split = evaluation.pairwise(clustering("a", "b", "c", "d"), truth)
    # Nothing claimed: precision 1.0 by convention, recall 0.0, so F1 0.0.
    assert (split.precision, split.recall, split.f1) == (1.0, 0.0, 0.0)


def test_pairwise_empty_denominators() -> None:
    singletons = clustering("a", "b")
    assert evaluation.pairwise(singletons, clustering("a", "b", label="t")).f1 == 1.0
    assert evaluation.pairwise({}, {}) == PairwiseMetrics(0, 0, 0, 1.0, 1.0, 1.0)
    wrong = evaluation.pairwise(clustering("ab"), clustering("a", "b", label="t"))
    assert (wrong.precision, wrong.recall, wrong.f1) == (0.0, 1.0, 0.0)


def test_only_common_records_count() -> None:
    predicted = clustering("abx", "y")
    truth = clustering("ab", "z", label="t")
    metrics = evaluation.pairwise(predicted, truth)
    assert (metrics.true_positive_pairs, metrics.predicted_pairs, metrics.true_pairs) == (1, 1, 1)
    assert evaluation.cluster(predicted, truth).exact_clusters == 1


def test_cluster_hand_worked() -> None:
    # Predicted {a,b} {c} {d,e,f} {g}; truth {a,b} {c,d} {e,f} {g}: ab and g are exact.
    metrics = evaluation.cluster(
        clustering("ab", "c", "def", "g"), clustering("ab", "cd", "ef", "g")
    )
    assert metrics == ClusterMetrics(
        precision=0.5, recall=0.5, f1=0.5, predicted_clusters=4, true_clusters=4, exact_clusters=2
    )


def test_cluster_counts_a_subset_as_wrong() -> None:
    metrics = evaluation.cluster(clustering("ab", "c"), clustering("abc", label="t"))
    assert (metrics.exact_clusters, metrics.predicted_clusters, metrics.true_clusters) == (0, 2, 1)
    assert (metrics.precision, metrics.recall, metrics.f1) == (0.0, 0.0, 0.0)


def test_cluster_empty() -> None:
    assert evaluation.cluster({}, clustering("ab")) == ClusterMetrics(1.0, 1.0, 1.0, 0, 0, 0)


def test_agreement_hand_worked() -> None:
    # Same pairs as the pairwise example: F1 0.5 either way round.
    first, second = clustering("abc", "de"), clustering("ab", "cde")
    assert evaluation.agreement(first, second) == evaluation.agreement(second, first) == 0.5


def test_agreement_is_not_the_share_of_agreeing_pairs() -> None:
    # 1,000 singletons plus one pair the other side splits: 499,500 pairs, 499,499 agree on,
    # yet the one pair that mattered is lost, so agreement is 0.
    first: dict[Hashable, Hashable] = {n: f"alone{n}" for n in range(1000)}
    first |= {"x": "pair", "y": "pair"}
    second = {**first, "y": "alone"}
    assert evaluation.agreement(first, second) == 0.0


def test_counts_at_scale() -> None:
    # Correctness at scale (not timing; O(n), no pair enumeration): every second true pair split.
    truth = {n: n // 2 for n in range(200_000)}
    predicted = {n: ("pair", n // 2) if n % 4 < 2 else ("alone", n) for n in range(200_000)}
    metrics = evaluation.pairwise(predicted, truth)
    assert (metrics.true_positive_pairs, metrics.predicted_pairs, metrics.true_pairs) == (
        50_000,
        50_000,
        100_000,
    )
    clusters = evaluation.cluster(predicted, truth)
    # The kept pairs are exact; the split ones' singletons are not.
    assert (clusters.exact_clusters, clusters.predicted_clusters, clusters.true_clusters) == (
        50_000,
        150_000,
        100_000,
    )


@given(clusterings())
def test_a_clustering_against_itself_is_perfect(labels: dict[int, int]) -> None:
    pairs = evaluation.pairwise(labels, labels)
    assert (pairs.precision, pairs.recall, pairs.f1) == (1.0, 1.0, 1.0)
    clusters = evaluation.cluster(labels, labels)
    assert (clusters.precision, clusters.recall, clusters.f1) == (1.0, 1.0, 1.0)
    assert clusters.exact_clusters == clusters.predicted_clusters == len(set(labels.values()))
    assert evaluation.agreement(labels, labels) == 1.0


@given(two_clusterings())
def test_pair_counts_equal_brute_force(
    sides: Sides,
) -> None:
    predicted, truth = sides
    metrics = evaluation.pairwise(predicted, truth)
    assert (
        metrics.true_positive_pairs,
        metrics.predicted_pairs,
        metrics.true_pairs,
    ) == brute_force_pairs(predicted, truth)


@given(two_clusterings())
def test_exact_clusters_equal_brute_force(
    sides: Sides,
) -> None:
    predicted, truth = sides
    common = [key for key in predicted if key in truth]

    def member_sets(labels: Mapping[int, int]) -> set[frozenset[int]]:
        groups: dict[int, set[int]] = {}
        for key in common:
            groups.setdefault(labels[key], set()).add(key)
        return {frozenset(group) for group in groups.values()}

    metrics = evaluation.cluster(predicted, truth)
    assert metrics.exact_clusters == len(member_sets(predicted) & member_sets(truth))
    assert metrics.predicted_clusters == len(member_sets(predicted))
    assert metrics.true_clusters == len(member_sets(truth))


@given(two_clusterings())
def test_agreement_is_symmetric(
    sides: Sides,
) -> None:
    first, second = sides
    assert evaluation.agreement(first, second) == pytest.approx(evaluation.agreement(second, first))
    forward, backward = evaluation.pairwise(first, second), evaluation.pairwise(second, first)
    assert (forward.precision, forward.recall) == (backward.recall, backward.precision)


@given(two_clusterings(), st.integers(1, 1000))
def test_relabelling_clusters_changes_nothing(sides: Sides, offset: int) -> None:
    predicted, truth = sides
    # An injective relabelling of each side, to labels of another type.
    relabelled_predicted = {key: f"p{label}" for key, label in predicted.items()}
    relabelled_truth = {key: (label + offset, "t") for key, label in truth.items()}
    assert evaluation.pairwise(relabelled_predicted, relabelled_truth) == evaluation.pairwise(
        predicted, truth
    )
    assert evaluation.cluster(relabelled_predicted, relabelled_truth) == evaluation.cluster(
        predicted, truth
    )


@given(two_clusterings())
def test_metrics_are_between_zero_and_one(
    sides: Sides,
) -> None:
    predicted, truth = sides
    pairs, clusters = evaluation.pairwise(predicted, truth), evaluation.cluster(predicted, truth)
    for value in (pairs.precision, pairs.recall, pairs.f1, clusters.precision, clusters.recall):
        assert 0.0 <= value <= 1.0
    assert pairs.true_positive_pairs <= min(pairs.predicted_pairs, pairs.true_pairs)
