"""Unsupervised estimation of a MatchModel from unlabelled records, Splink's recipe.

* m probabilities: expectation-maximisation in three passes over record pairs blocked on one
  thing each. In the date-of-birth pass (pairs born the same day) every field but the date of
  birth is estimated; in the names pass (pairs whose forename and surname codes agree, either way
  round) every field but the names; in the postcode pass (pairs sharing a full postal code) every
  field but the address. A field's m pools the expected matches of the passes that estimated
  it. Within a
  pass non-matches agree far more often than at random, so each pass fits its own in-block
  non-match distribution; only its m is kept. A level's m is smoothed towards the base model's by
  a few pseudo-pairs, so a level the data barely shows is neither driven to zero nor trusted.
* the prior: the date-of-birth pass's expected matches, scaled up to all its pairs and divided by
  the share of matches whose dates of birth agree exactly (its m), over all pairs of records.
* u probabilities: the level frequencies among pairs of records drawn at random (seeded), less the
  share of them the prior says are matches, so a small store's u is not inflated by its matches.
* term frequencies: each cleaned surname's and first forename's share of the records.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from gateway.matching.model import FIELD_LEVELS, MISSING, MatchModel, TrainingInfo
from gateway.matching.scoring import FIELD_ORDER, compare
from gateway.matching.views import MatchView

__all__ = ["MIN_RECORDS", "PASSES", "train"]

MIN_RECORDS: Final = 100
DIFFERENT: Final = "different"
MAX_TERM_FREQUENCIES: Final = 20_000
#: Trained probabilities are kept this far from 0 and 1, so no weight is infinite.
PROBABILITY_FLOOR: Final = 1e-6
#: A field compared (not missing) in fewer random pairs than this keeps the base model's u.
MIN_U_COMPARISONS: Final = 1_000
#: A block of more records than this is skipped when generating training pairs.
MAX_BLOCK: Final = 500
#: Pseudo-pairs a level's m is smoothed with, in the proportions of the base model's m.
M_PSEUDO_PAIRS: Final = 5.0
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


@dataclass(frozen=True)
class Pass:
    """One EM pass: pairs of records sharing `key`; `fixed` fields are not estimated by it
    (every pair agrees on them by construction)."""

    name: str
    key: Callable[[MatchView], str | None]
    fixed: frozenset[str]


def _names_key(view: MatchView) -> str | None:
    if not (view.surname and view.forenames and view.surname_phonetics and view.forename_phonetics):
        return None
    return "|".join(sorted((view.forename_phonetics[0], view.surname_phonetics[0])))


def _postcode_key(view: MatchView) -> str | None:
    codes = sorted(view.postcode_set)
    return codes[0] if codes else None


PASSES: Final[tuple[Pass, ...]] = (
    Pass("date of birth", lambda view: view.dob_iso, frozenset({"date_of_birth"})),
    Pass("names", _names_key, frozenset({"forename", "surname"})),
    Pass("postcode", _postcode_key, frozenset({"address"})),
)


def pass_pairs(
    views: Sequence[MatchView], blocking: Pass, limit: int, rng: random.Random
) -> tuple[list[tuple[int, int]], int]:
    """Pairs sharing the pass's key (blocks over `MAX_BLOCK`, placeholder-like values, are
    skipped), about `limit` of them drawn at random when there are more; and how many there
    are in all."""
    blocks: defaultdict[str, list[int]] = defaultdict(list)
    for index, view in enumerate(views):
        key = blocking.key(view)
        if key:
            blocks[key].append(index)
    kept = [members for members in blocks.values() if 1 < len(members) <= MAX_BLOCK]
    sizes = [len(members) * (len(members) - 1) // 2 for members in kept]
    total = sum(sizes)
    if total <= limit:
        pairs = [
            (i, j)
            for members in kept
            for position, i in enumerate(members)
            for j in members[position + 1 :]
        ]
        return sorted(pairs), total
    # Too many to list (a million records make tens of millions): draw pairs straight from the
    # blocks, each block as often as it has pairs, without building them all.
    ends = list(itertools.accumulate(sizes))
    drawn: set[tuple[int, int]] = set()
    for _ in range(limit):
        members = kept[bisect.bisect_right(ends, rng.randrange(total))]
        i, j = rng.sample(members, 2)
        drawn.add((min(i, j), max(i, j)))
    return sorted(drawn), total


def _em(
    patterns: Counter[tuple[int, ...]],
    base: MatchModel,
    fixed: frozenset[str],
    max_iterations: int,
    progress: Progress | None,
    stage: str,
) -> tuple[list[list[float]], float, int, bool]:
    """EM over comparison patterns, leaving `fixed` fields out: (expected matches per field and
    level, in-block match share, iterations, converged)."""
    missing = [_missing_index(name) for name in FIELD_ORDER]
    free = [field for field, name in enumerate(FIELD_ORDER) if name not in fixed]
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
    m_acc: list[list[float]] = [[0.0] * len(FIELD_LEVELS[name]) for name in FIELD_ORDER]
    converged = False
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        m_acc = [[0.0] * len(FIELD_LEVELS[name]) for name in FIELD_ORDER]
        u_acc = [[0.0] * len(FIELD_LEVELS[name]) for name in FIELD_ORDER]
        matched = 0.0
        for levels, count in items:
            like_m, like_u = share, 1.0 - share
            for field in free:
                level = levels[field]
                if level != missing[field]:
                    like_m *= m[field][level]
                    like_u *= u[field][level]
            posterior = like_m / (like_m + like_u) if like_m + like_u > 0 else 0.0
            matched += count * posterior
            for field in free:
                m_acc[field][levels[field]] += count * posterior
                u_acc[field][levels[field]] += count * (1.0 - posterior)
        new_share = min(max(matched / total, PROBABILITY_FLOOR), 1.0 - PROBABILITY_FLOOR)
        change = abs(new_share - share)
        share = new_share
        for field in free:
            seen_m = sum(v for i, v in enumerate(m_acc[field]) if i != missing[field])
            seen_u = sum(v for i, v in enumerate(u_acc[field]) if i != missing[field])
            if seen_m > 0:
                fresh = [max(v / seen_m, 1e-12) for v in m_acc[field]]
                change = max(change, *(abs(a - b) for a, b in zip(fresh, m[field], strict=True)))
                m[field] = fresh
            if seen_u > 0:
                u[field] = [max(v / seen_u, 1e-12) for v in u_acc[field]]
        if progress is not None:
            progress(stage, iterations, max_iterations)
        if change < _CONVERGED:
            converged = True
            break
    return m_acc, share, iterations, converged


def smoothed_m(name: str, expected: list[float], base: MatchModel) -> list[float | None]:
    """Each level's m from the expected matches at it, smoothed towards the base model's m by
    `M_PSEUDO_PAIRS` pairs; None for "missing"."""
    missing = _missing_index(name)
    labels = FIELD_LEVELS[name]
    prior_m = [base.comparisons[name].level(label).m or 0.0 for label in labels]
    prior_total = sum(v for i, v in enumerate(prior_m) if i != missing) or 1.0
    seen = sum(v for i, v in enumerate(expected) if i != missing)
    return [
        None
        if index == missing
        else _clip(
            (expected[index] + M_PSEUDO_PAIRS * prior_m[index] / prior_total)
            / (seen + M_PSEUDO_PAIRS)
        )
        for index in range(len(labels))
    ]


def _no_closer_level_below_different(levels: list[dict[str, Any]]) -> None:
    """A level closer than "different" (a date of birth within a year, a street alone) never
    weighs less than "different" does: where the data are too thin to say so, the estimate is
    noise, and a near miss is no evidence against a match that a clear miss is not."""
    different = next((level for level in levels if level["label"] == DIFFERENT), None)
    if different is None:
        return
    floor = different["m"] / different["u"]
    for level in levels:
        if "m" in level and level["m"] / level["u"] < floor:
            level["m"] = _clip(level["u"] * floor)


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
    max_iterations: int = 100,
    seed: int = 0,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> MatchModel:
    """Estimate u, m, the prior and term frequencies from ``views``; bands are kept from ``base``.

    Deterministic for a seed (and ``now``, which only stamps the version and `TrainingInfo`).
    A field no pass sees compared keeps the base model's m, and one too rarely compared among
    random pairs keeps its u. Raises ValueError when there are fewer than `MIN_RECORDS` records.
    """
    n = len(views)
    if n < MIN_RECORDS:
        raise ValueError(f"training needs at least {MIN_RECORDS} records, got {n}")
    if max_pairs < 1 or max_iterations < 1:
        raise ValueError("max_pairs and max_iterations must be at least 1")
    rng = random.Random(seed)  # noqa: S311 (sampling, not security)
    random_count = min(max_pairs, n * (n - 1) // 2)
    tallies = _random_pairs(views, random_count, rng, progress)

    # A field's expected matches per level, summed over the passes that estimate it.
    expected = [[0.0] * len(FIELD_LEVELS[name]) for name in FIELD_ORDER]
    estimated_by = [0] * len(FIELD_ORDER)
    candidate_pairs = 0
    iterations = 0
    converged = True
    dob_pass: tuple[float, int, int] | None = None
    for number, blocking in enumerate(PASSES):
        pairs, total = pass_pairs(views, blocking, max_pairs, rng)
        if progress is not None:
            progress(f"pairs: {blocking.name}", number + 1, len(PASSES))
        candidate_pairs += len(pairs)
        if not pairs:
            continue
        patterns = Counter(compare(views[i], views[j]) for i, j in pairs)
        m_acc, share, used, done = _em(
            patterns, base, blocking.fixed, max_iterations, progress, f"em: {blocking.name}"
        )
        iterations = max(iterations, used)
        converged = converged and done
        for field, name in enumerate(FIELD_ORDER):
            if name in blocking.fixed:
                continue
            missing = _missing_index(name)
            seen = sum(v for i, v in enumerate(m_acc[field]) if i != missing)
            if seen <= 0:
                continue
            # Each pass is one vote on the level shares; the mass behind them is averaged too.
            for index, value in enumerate(m_acc[field]):
                if index != missing:
                    expected[field][index] += value
            estimated_by[field] += 1
        if "date_of_birth" in blocking.fixed:
            dob_pass = (share, len(pairs), total)

    comparisons: dict[str, Any] = {}
    m_by_field: dict[str, list[float | None]] = {}
    for field, name in enumerate(FIELD_ORDER):
        if estimated_by[field]:
            m_by_field[name] = smoothed_m(
                name, [value / estimated_by[field] for value in expected[field]], base
            )
        else:
            m_by_field[name] = [
                base.comparisons[name].level(label).m for label in FIELD_LEVELS[name]
            ]

    prior = base.prior
    dob_exact = m_by_field["date_of_birth"][FIELD_LEVELS["date_of_birth"].index("exact")]
    if dob_pass is not None and dob_exact:
        share, sampled, total = dob_pass
        matches = share * sampled * (total / sampled) / dob_exact
        prior = _clip(matches / (n * (n - 1) / 2))

    for field, name in enumerate(FIELD_ORDER):
        base_field = base.comparisons[name]
        missing = _missing_index(name)
        tally = tallies[field]
        compared = sum(count for level, count in tally.items() if level != missing)
        levels: list[dict[str, Any]] = []
        for index, label in enumerate(FIELD_LEVELS[name]):
            if index == missing:
                levels.append({"label": label})
                continue
            base_level = base_field.level(label)
            m_value = m_by_field[name][index] or base_level.m
            # A level never seen among random pairs (identifiers agreeing) keeps the base u.
            if compared < MIN_U_COMPARISONS or tally[index] == 0:
                u = base_level.u
            else:
                # Random pairs include a few matches: take the prior's share of them out.
                share_seen = tally[index] / compared
                assert m_value is not None  # noqa: S101 (not "missing")
                u = _clip(max((share_seen - prior * m_value) / (1.0 - prior), 0.5 / compared))
            levels.append({"label": label, "m": m_value, "u": u})
        _no_closer_level_below_different(levels)
        comparisons[name] = {"levels": levels, "tf_minimum_u": base_field.tf_minimum_u}

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
                f"Trained from {n} records ({random_count} random pairs, {candidate_pairs} "
                f"pairs over {len(PASSES)} EM passes) on base model {base.version}."
            ),
            **parameters,
            "trained": TrainingInfo(
                trained_at=stamp,
                seed=seed,
                records=n,
                random_pairs=random_count,
                candidate_pairs=candidate_pairs,
                em_iterations=iterations,
                converged=converged and iterations > 0,
            ),
        }
    )
