"""Offline matcher benchmark: cluster a generated directory in memory the way the gateway will.

Reads every source's files (``crc-gateway generate`` output) through the real adapters, keeps the
records that translate (rejections are skipped, as the gateway quarantines them), cleans each into
a MatchView and clusters the records in file order: candidates via `match_keys` among the records
seen so far; a record joins the cluster of its best candidate that scores LINK (or that agrees
on a strong identifier with no strong conflict, as the gateway's ingest does); when it links to
several clusters they are merged unless that would put two values of a strong identifier in one;
otherwise it starts a new cluster. Prints pairwise precision/recall/F1 against truth.csv, false
and missed links by noise kind, twins kept apart, candidates per record and scoring speed.

    .venv/bin/crc-gateway generate --persons 5000 --seed 1 --out /tmp/match-5k
    .venv/bin/python bench/matching_offline.py /tmp/match-5k
    .venv/bin/python bench/matching_offline.py /tmp/match-5k --model my_model.json --explain 10
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adapters import registry
from adapters.base import Adapter, RecordRejected
from gateway.matching import (
    STRONG_IDENTIFIER_KINDS,
    Band,
    MatchModel,
    MatchView,
    load_model,
    match_keys,
    score,
    view_of,
)

_CONTENT_TYPE_COMMENT = re.compile(r"#\s*(?P<source>[\w-]+)/part-\*\.\w+ as (?P<type>\S+)")


@dataclass
class Record:
    source: str
    external_id: str
    view: MatchView


def _content_types(sources_file: Path) -> dict[str, str]:
    text = sources_file.read_text(encoding="utf-8")
    return {m["source"]: m["type"] for m in _CONTENT_TYPE_COMMENT.finditer(text)}


def read_records(directory: Path) -> tuple[list[Record], Counter[str]]:
    """Every translatable record of every source, in file order; and rejections per source."""
    sources_file = directory / "sources.yaml"
    document = yaml.safe_load(sources_file.read_text(encoding="utf-8"))
    content_types = _content_types(sources_file)
    adapters = registry.discover()
    records: list[Record] = []
    rejected: Counter[str] = Counter()
    for source, entry in document["sources"].items():
        adapter_class = adapters[entry["adapter"]]
        adapter: Adapter[Any] = adapter_class(
            adapter_class.config_model.model_validate(entry.get("config") or {})
        )
        content_type = content_types.get(source) or adapter.content_types[0]
        for path in sorted((directory / source).glob("part-*")):
            with path.open("rb") as stream:
                for raw in adapter.parse(stream, content_type):
                    if raw.errors:
                        rejected[source] += 1
                        continue
                    try:
                        record = adapter.translate(raw.data)
                    except RecordRejected:
                        rejected[source] += 1
                        continue
                    external_id = record.provenance.external_id or raw.external_id or ""
                    person = record.person.model_dump(mode="json")
                    records.append(Record(source, external_id, view_of(person)))
    return records, rejected


def _read_csv(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


class Clusters:
    """Union-find over record indexes, tracking each cluster's strong identifier values."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.identifiers: dict[int, dict[str, set[str]]] = {}

    def add(self, view: MatchView) -> int:
        index = len(self.parent)
        self.parent.append(index)
        self.identifiers[index] = {
            kind: {view.identifiers[kind]}
            for kind in STRONG_IDENTIFIER_KINDS
            if kind in view.identifiers
        }
        return index

    def find(self, index: int) -> int:
        root = index
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[index] != root:
            self.parent[index], index = root, self.parent[index]
        return root

    def compatible(self, a: int, b: int) -> bool:
        ids_a, ids_b = self.identifiers[a], self.identifiers[b]
        return all(len(ids_a[kind] | ids_b[kind]) <= 1 for kind in ids_a.keys() & ids_b.keys())

    def union(self, a: int, b: int) -> bool:
        a, b = self.find(a), self.find(b)
        if a == b:
            return True
        if not self.compatible(a, b):
            return False
        self.parent[b] = a
        merged = self.identifiers.pop(b)
        for kind, values in merged.items():
            self.identifiers[a].setdefault(kind, set()).update(values)
        return True


def _links(pair_score: Any) -> bool:
    if pair_score.band is Band.LINK:
        return True
    # The gateway's ingest links on an agreeing strong identifier when no strong one conflicts.
    return pair_score.links_on_identifier and not pair_score.identifiers_conflict


def cluster(
    records: list[Record], model: MatchModel
) -> tuple[Clusters, list[int], list[tuple[int, int]], float]:
    """Cluster in file order; returns clusters, candidates per record, scored pairs, score time."""
    clusters = Clusters()
    index: defaultdict[str, list[int]] = defaultdict(list)
    candidates_per_record: list[int] = []
    scored: list[tuple[int, int]] = []
    score_seconds = 0.0
    for position, record in enumerate(records):
        keys = match_keys(record.view)
        candidates: set[int] = set()
        for key in keys:
            candidates.update(index.get(key, ()))
        candidates_per_record.append(len(candidates))
        linked: list[tuple[float, int]] = []
        started = time.perf_counter()
        for other in candidates:
            pair_score = score(record.view, records[other].view, model)
            if _links(pair_score):
                linked.append((pair_score.match_weight, other))
        score_seconds += time.perf_counter() - started
        scored.extend((position, other) for other in candidates)
        me = clusters.add(record.view)
        # Best first: the record joins its best candidate's cluster, then merges the others in.
        for _, other in sorted(linked, reverse=True):
            clusters.union(other, me)
        for key in keys:
            index[key].append(position)
    return clusters, candidates_per_record, scored, score_seconds


def micro_benchmark(
    records: list[Record], pairs: list[tuple[int, int]], model: MatchModel
) -> float:
    """Median microseconds per score() call over up to 50,000 of the pairs, 5 repeats."""
    sample = [(records[a].view, records[b].view) for a, b in pairs[:50_000]]
    if not sample:
        return float("nan")
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        for a, b in sample:
            score(a, b, model)
        timings.append((time.perf_counter() - started) / len(sample) * 1e6)
    return statistics.median(timings)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def evaluate(directory: Path, model: MatchModel, explain: int) -> None:
    started = time.perf_counter()
    records, rejected = read_records(directory)
    read_seconds = time.perf_counter() - started
    truth = {
        (row["source"], row["external_id"]): row["person_key"]
        for row in _read_csv(directory / "truth.csv")
    }
    noise = {
        (row["source"], row["external_id"]): tuple(k for k in row["kinds"].split(";") if k)
        for row in _read_csv(directory / "noise.csv")
    }
    twins = [
        (row["person_key_a"], row["person_key_b"]) for row in _read_csv(directory / "twins.csv")
    ]
    people = [truth[(r.source, r.external_id)] for r in records]
    kinds = [noise.get((r.source, r.external_id), ()) for r in records]

    started = time.perf_counter()
    clusters, candidates, scored, score_seconds = cluster(records, model)
    cluster_seconds = time.perf_counter() - started
    roots = [clusters.find(i) for i in range(len(records))]

    by_cluster: defaultdict[int, list[int]] = defaultdict(list)
    by_person: defaultdict[str, list[int]] = defaultdict(list)
    for i, (root, person) in enumerate(zip(roots, people, strict=True)):
        by_cluster[root].append(i)
        by_person[person].append(i)
    predicted = sum(_pairs(len(m)) for m in by_cluster.values())
    actual = sum(_pairs(len(m)) for m in by_person.values())
    true_positive = sum(
        _pairs(count)
        for members in by_cluster.values()
        for count in Counter(people[i] for i in members).values()
    )
    precision = true_positive / predicted if predicted else 1.0
    recall = true_positive / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    false_by_kind: Counter[str] = Counter()
    false_examples: list[tuple[int, int]] = []
    for members in by_cluster.values():
        for x, a in enumerate(members):
            for b in members[x + 1 :]:
                if people[a] != people[b]:
                    false_examples.append((a, b))
                    for kind in set(kinds[a]) | set(kinds[b]) or {"(none)"}:
                        false_by_kind[kind] += 1
    missed_by_kind: Counter[str] = Counter()
    missed_examples: list[tuple[int, int]] = []
    for members in by_person.values():
        for x, a in enumerate(members):
            for b in members[x + 1 :]:
                if roots[a] != roots[b]:
                    missed_examples.append((a, b))
                    for kind in set(kinds[a]) | set(kinds[b]) or {"(none)"}:
                        missed_by_kind[kind] += 1
    root_sets = {p: {roots[i] for i in m} for p, m in by_person.items()}
    twins_present = [(a, b) for a, b in twins if a in root_sets and b in root_sets]
    twins_apart = sum(1 for a, b in twins_present if root_sets[a].isdisjoint(root_sets[b]))

    per_pair_us = micro_benchmark(records, scored, model)
    ordered = sorted(candidates)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0
    print(f"data {directory}  model {model.version}")
    print(
        f"records {len(records):,} kept, {sum(rejected.values()):,} rejected; "
        f"persons {len(by_person):,}; clusters {len(by_cluster):,}"
    )
    print(f"pairs: true {actual:,}, predicted {predicted:,}, correct {true_positive:,}")
    print(f"precision {precision:.5f}  recall {recall:.5f}  F1 {f1:.5f}")
    false_kinds, missed_kinds = (
        dict(false_by_kind.most_common()),
        dict(missed_by_kind.most_common()),
    )
    print(f"false-link pairs {predicted - true_positive:,} by noise kind: {false_kinds}")
    print(f"missed pairs {actual - true_positive:,} by noise kind: {missed_kinds}")
    print(f"twins kept apart {twins_apart}/{len(twins_present)}")
    print(
        f"candidates per record: mean {statistics.fmean(candidates):.2f}, p99 {p99}, "
        f"max {ordered[-1] if ordered else 0}"
    )
    print(
        f"pairs scored {len(scored):,} in {score_seconds:.2f} s "
        f"({len(scored) / max(score_seconds, 1e-9):,.0f}/s in clustering); "
        f"score() {per_pair_us:.1f} us per pair (median of 5)"
    )
    print(f"read+clean {read_seconds:.1f} s; cluster {cluster_seconds:.1f} s")
    for title, examples in (("false link", false_examples), ("missed link", missed_examples)):
        for a, b in examples[:explain]:
            pair_score = score(records[a].view, records[b].view, model)
            levels = " ".join(
                f"{c.field}={c.level}({c.weight:+.1f})" for c in pair_score.comparisons
            )
            print(
                f"  {title}: {pair_score.match_weight:+.1f} {pair_score.band.value} "
                f"guards={list(pair_score.guards)} noise={sorted(set(kinds[a]) | set(kinds[b]))}\n"
                f"    {levels}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="output directory of crc-gateway generate")
    parser.add_argument("--model", type=Path, default=None, help="model file (default: packaged)")
    parser.add_argument(
        "--explain", type=int, default=0, help="print this many false and missed links"
    )
    args = parser.parse_args()
    evaluate(args.directory, load_model(args.model), args.explain)


if __name__ == "__main__":
    main()
