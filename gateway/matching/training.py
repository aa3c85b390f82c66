"""Unsupervised estimation of a MatchModel from unlabelled records, the way Splink does it.

* u probabilities: the level frequencies among pairs of records drawn at random (seeded), which are
  almost all non-matches.
* m probabilities and the prior: expectation-maximisation over the candidate pairs the blocking
  keys give. Within blocks non-matches agree far more often than at random (they share a key), so
  the EM fits its own in-block non-match distribution rather than the random-pair u; only its m
  and its match share are kept. The prior is the expected number of matches over all pairs.
* term frequencies: each cleaned surname's and first forename's share of the records.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from gateway.matching.keys import BLOCKING_KEY_KINDS, match_keys
from gateway.matching.model import FIELD_LEVELS, MISSING, MatchModel, TrainingInfo
from gateway.matching.scoring import FIELD_ORDER, compare
from gateway.matching.views import MatchView

__all__ = ["MIN_RECORDS", "train"]

MIN_RECORDS: Final = 100
MAX_TERM_FREQUENCIES: Final = 20_000
#: Trained probabilities are kept this far from 0 and 1, so no weight is infinite.
PROBABILITY_FLOOR: Final = 1e-6
#: A field compared (not missing) in fewer random pairs than this keeps the base model's u.
MIN_U_COMPARISONS: Final = 1_000
#: A field whose expected matches (not missing) are fewer than this keeps the base model's m.
MIN_M_COMPARISONS: Final = 20.0
#: A level with fewer expected matches than this keeps the base model's m.
MIN_M_LEVEL: Final = 2.0
#: A blocking key shared by more records than this is skipped when generating training pairs.
MAX_BLOCK: Final = 500
_CONVERGED: Final = 1e-5
_REPORT_EVERY: Final = 10_000

Progress = Callable[[str, int, int], None]
Distribution = list[float]


def _clip(p: float) -> float:
    return min(max(p, PROBABILITY_FLOOR), 1.0 - PROBABILITY_FLOOR)


def _missing_index(name: str) -> int:
    return FIELD_LEVELS[name].index(MISSING)


def _random_pairs(
    views: Sequence[MatchView], count: int, rng: random.Random, progress: Progress | None
) -> list[Counter[int]]:
    n = len(views)
    tallies: list[Counter[int]] = [Counter() for _ in FIELD_ORDER]
    for done in range(count):
        i = rng.randrange(n)
        j = rng.randrange(n - 1)
        j += j >= i
        for tally, level in zip(tallies, compare(views[i], views[j]), strict=True):
            tally[level] += 1
        if progress is not None and done % _REPORT_EVERY == 0:
            progress("u", done, count)
    return tallies


def _candidate_pairs(
    views: Sequence[MatchView], limit: int, rng: random.Random, progress: Progress | None
) -> list[tuple[int, int]]:
    blocks: defaultdict[str, list[int]] = defaultdict(list)
    for index, view in enumerate(views):
        for key in match_keys(view):
            if key.split(":", 1)[0] in BLOCKING_KEY_KINDS:
                blocks[key].append(index)
        if progress is not None and index % _REPORT_EVERY == 0:
            progress("candidates", index, len(views))
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if len(members) > MAX_BLOCK:
            continue
        for position, i in enumerate(members):
            pairs.update((i, j) for j in members[position + 1 :])
    # Blocking keys only: identifier keys would hand EM pairs that are matches by construction.
    ordered = sorted(pairs)
    if len(ordered) > limit:
        ordered = sorted(rng.sample(ordered, limit))
    return ordered


def _em(
    patterns: Counter[tuple[int, ...]],
    base: MatchModel,
    max_iterations: int,
    progress: Progress | None,
) -> tuple[list[Distribution], float, list[float], int, bool]:
    """EM over comparison patterns: (m per field, in-block match share, match mass, iterations)."""
    missing = [_missing_index(name) for name in FIELD_ORDER]
    m = [
        [base.comparisons[name].level(label).m or 1.0 for label in FIELD_LEVELS[name]]
        for name in FIELD_ORDER
    ]
    u = [
        [base.comparisons[name].level(label).u or 1.0 for label in FIELD_LEVELS[name]]
        for name in FIELD_ORDER
    ]
    share = 0.3
    total = sum(patterns.values())
    items = list(patterns.items())
    mass = [0.0] * len(FIELD_ORDER)
    converged = False
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        m_acc = [[0.0] * len(FIELD_LEVELS[name]) for name in FIELD_ORDER]
        u_acc = [[0.0] * len(FIELD_LEVELS[name]) for name in FIELD_ORDER]
        matched = 0.0
        for levels, count in items:
            like_m, like_u = share, 1.0 - share
            for field, level in enumerate(levels):
                if level != missing[field]:
                    like_m *= m[field][level]
                    like_u *= u[field][level]
            posterior = like_m / (like_m + like_u) if like_m + like_u > 0 else 0.0
            matched += count * posterior
            for field, level in enumerate(levels):
                m_acc[field][level] += count * posterior
                u_acc[field][level] += count * (1.0 - posterior)
        new_share = min(max(matched / total, PROBABILITY_FLOOR), 1.0 - PROBABILITY_FLOOR)
        change = abs(new_share - share)
        share = new_share
        for field in range(len(FIELD_ORDER)):
            seen_m = sum(v for i, v in enumerate(m_acc[field]) if i != missing[field])
            seen_u = sum(v for i, v in enumerate(u_acc[field]) if i != missing[field])
            mass[field] = seen_m
            if seen_m > 0:
                fresh = [max(v / seen_m, 1e-12) for v in m_acc[field]]
                change = max(change, *(abs(a - b) for a, b in zip(fresh, m[field], strict=True)))
                m[field] = fresh
            if seen_u > 0:
                u[field] = [max(v / seen_u, 1e-12) for v in u_acc[field]]
        if progress is not None:
            progress("em", iterations, max_iterations)
        if change < _CONVERGED:
            converged = True
            break
    return m, share, mass, iterations, converged


def _term_frequencies(values: list[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values())
    # Most common first, ties by value, so the table (and the file) is the same every run.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_TERM_FREQUENCIES]
    return {value: count / total for value, count in ranked}


def _fingerprint(document: dict[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def train(
    views: Sequence[MatchView],
    *,
    base: MatchModel,
    max_pairs: int = 200_000,
    max_iterations: int = 25,
    seed: int = 0,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> MatchModel:
    """Estimate u, m, the prior and term frequencies from ``views``; bands are kept from ``base``.

    Deterministic for a seed (and ``now``, which only stamps the version and `TrainingInfo`).
    Fields with too few comparisons keep the base model's probabilities. Raises ValueError when
    there are fewer than `MIN_RECORDS` records.
    """
    n = len(views)
    if n < MIN_RECORDS:
        raise ValueError(f"training needs at least {MIN_RECORDS} records, got {n}")
    if max_pairs < 1 or max_iterations < 1:
        raise ValueError("max_pairs and max_iterations must be at least 1")
    rng = random.Random(seed)  # noqa: S311 (sampling, not security)
    random_count = min(max_pairs, n * (n - 1) // 2)
    tallies = _random_pairs(views, random_count, rng, progress)
    candidates = _candidate_pairs(views, max_pairs, rng, progress)
    patterns = Counter(compare(views[i], views[j]) for i, j in candidates)
    m, share, mass, iterations, converged = (
        _em(patterns, base, max_iterations, progress)
        if patterns
        else ([], 0.0, [0.0] * len(FIELD_ORDER), 0, False)
    )

    comparisons: dict[str, Any] = {}
    for field, name in enumerate(FIELD_ORDER):
        base_field = base.comparisons[name]
        missing = _missing_index(name)
        tally = tallies[field]
        compared = sum(count for level, count in tally.items() if level != missing)
        keep_m = not m or mass[field] < MIN_M_COMPARISONS
        levels: list[dict[str, Any]] = []
        for index, label in enumerate(FIELD_LEVELS[name]):
            if index == missing:
                levels.append({"label": label})
                continue
            base_level = base_field.level(label)
            # A level never seen among random pairs (identifiers agreeing) keeps the base u.
            if compared < MIN_U_COMPARISONS or tally[index] == 0:
                u = base_level.u
            else:
                u = _clip(tally[index] / compared)
            # A level the candidate pairs barely show (an initial, a dob typo) keeps the base m
            # rather than being driven to the floor by a handful of pairs.
            rare = not keep_m and m[field][index] * mass[field] < MIN_M_LEVEL
            m_value = base_level.m if keep_m or rare else _clip(m[field][index])
            levels.append({"label": label, "m": m_value, "u": u})
        comparisons[name] = {"levels": levels, "tf_minimum_u": base_field.tf_minimum_u}

    all_pairs = n * (n - 1) / 2
    prior = _clip(share * len(candidates) / all_pairs) if candidates and iterations else base.prior
    term_frequencies = {
        "surname": _term_frequencies([v.surname for v in views if v.surname]),
        "forename": _term_frequencies([v.forenames[0] for v in views if v.forenames]),
    }
    parameters = {
        "prior": prior,
        "bands": base.bands.model_dump(mode="json"),
        "comparisons": comparisons,
        "term_frequencies": term_frequencies,
    }
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    return MatchModel.model_validate(
        {
            "version": f"trained-{stamp:%Y%m%d%H%M%S}-{_fingerprint(parameters)}",
            "description": (
                f"Trained from {n} records ({random_count} random pairs, {len(candidates)} "
                f"candidate pairs) on base model {base.version}."
            ),
            **parameters,
            "trained": TrainingInfo(
                trained_at=stamp,
                seed=seed,
                records=n,
                random_pairs=random_count,
                candidate_pairs=len(candidates),
                em_iterations=iterations,
                converged=converged,
            ),
        }
    )
