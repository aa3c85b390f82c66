"""How well a clustering of records into persons agrees with the truth, or with another clustering.

A clustering is a mapping from a record's key (for example ``(source, external_id)``) to the label
of its cluster (a person id, a true person key). Only records present in both mappings are
compared, so a record one side never saw (say, one the gateway rejected) neither helps nor hurts.

Pairwise metrics count pairs of records placed in the same cluster; they are computed in O(n)
from the sizes of the clusters and of their intersections (the contingency counts): the pairs
two clusterings both put together are the sum over every predicted/true cluster intersection of
C(n_ij, 2). Cluster metrics count whole clusters that match a true cluster member for member.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["ClusterMetrics", "PairwiseMetrics", "agreement", "cluster", "pairwise"]

# Generic in the key: Mapping is invariant in its key type, so a Mapping[Hashable, ...] parameter
# would refuse a dict[tuple[str, str], ...] under mypy.
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class PairwiseMetrics:
    """Pairs of records put in one cluster, compared with the pairs the truth puts together.

    ``precision`` is 1.0 when no pair was predicted (nothing claimed, nothing wrong) and
    ``recall`` is 1.0 when the truth has no pairs (nothing to find); ``f1`` is 0.0 when both
    precision and recall are 0.0.
    """

    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class ClusterMetrics:
    """Predicted clusters that equal a true cluster exactly (singletons count as clusters).

    ``precision`` = exact / predicted clusters, ``recall`` = exact / true clusters, each 1.0
    when there is no cluster to count (no record common to both sides).
    """

    precision: float
    recall: float
    f1: float
    predicted_clusters: int
    true_clusters: int
    exact_clusters: int


def _pairs(size: int) -> int:
    return size * (size - 1) // 2


def _ratio(numerator: int, denominator: int) -> float:
    # An empty denominator means nothing was claimed (or nothing was there to find): no error.
    return numerator / denominator if denominator else 1.0


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 2 * precision * recall / total if total else 0.0


def _contingency(
    predicted: Mapping[K, Hashable], truth: Mapping[K, Hashable]
) -> tuple[Counter[tuple[Hashable, Hashable]], Counter[Hashable], Counter[Hashable]]:
    """Sizes of each (predicted, true) intersection and of each side's clusters (common keys)."""
    joint: Counter[tuple[Hashable, Hashable]] = Counter()
    for key, label in predicted.items():
        if key in truth:
            joint[label, truth[key]] += 1
    predicted_sizes: Counter[Hashable] = Counter()
    true_sizes: Counter[Hashable] = Counter()
    for (predicted_label, true_label), count in joint.items():
        predicted_sizes[predicted_label] += count
        true_sizes[true_label] += count
    return joint, predicted_sizes, true_sizes


def pairwise(predicted: Mapping[K, Hashable], truth: Mapping[K, Hashable]) -> PairwiseMetrics:
    """Pairwise precision, recall and F1 of ``predicted`` against ``truth``, in O(n)."""
    joint, predicted_sizes, true_sizes = _contingency(predicted, truth)
    together = sum(_pairs(count) for count in joint.values())
    predicted_pairs = sum(_pairs(size) for size in predicted_sizes.values())
    true_pairs = sum(_pairs(size) for size in true_sizes.values())
    precision = _ratio(together, predicted_pairs)
    recall = _ratio(together, true_pairs)
    return PairwiseMetrics(
        true_positive_pairs=together,
        predicted_pairs=predicted_pairs,
        true_pairs=true_pairs,
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
    )


def cluster(predicted: Mapping[K, Hashable], truth: Mapping[K, Hashable]) -> ClusterMetrics:
    """Cluster precision, recall and F1: a predicted cluster is right if it equals a true one."""
    joint, predicted_sizes, true_sizes = _contingency(predicted, truth)
    # Clusters i and j are the same member set exactly when their intersection is all of both.
    exact = sum(
        1
        for (predicted_label, true_label), count in joint.items()
        if count == predicted_sizes[predicted_label] == true_sizes[true_label]
    )
    precision = _ratio(exact, len(predicted_sizes))
    recall = _ratio(exact, len(true_sizes))
    return ClusterMetrics(
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        predicted_clusters=len(predicted_sizes),
        true_clusters=len(true_sizes),
        exact_clusters=exact,
    )


def agreement(first: Mapping[K, Hashable], second: Mapping[K, Hashable]) -> float:
    """Pairwise agreement of two clusterings of the same records: the pairwise F1 of one vs other.

    Symmetric (swapping the sides swaps precision and recall). Not the share of all record pairs
    on which the two agree: nearly every pair is a non-match in both, so that share is ~1.0 even
    for clusterings that disagree on most of the pairs that matter, the ones put together.
    """
    return pairwise(first, second).f1
