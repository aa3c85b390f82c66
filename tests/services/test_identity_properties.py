"""Properties of identity resolution on generated data (hypothesis and the generator).

- an identical re-send never changes a cluster;
- a human decision survives any later automatic pass;
- ingesting the same data set in two different orders gives clusterings that agree, and after a
  matcher re-run the very same clusters.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from adapters import registry
from adapters.base import Adapter, RawRecord
from gateway.db import Database
from gateway.matching import evaluation
from gateway.models import SourceRecord, utcnow
from gateway.services import ingest, reruns, review
from gateway.services.golden import DEFAULT_POLICY
from gateway.services.identity import Matcher
from gateway.services.sources import SourceRegistry
from gateway.settings import MatchingSettings, Settings
from gateway.synthetic import GenerateOptions, generate
from tests.conftest import empty_all_tables

PERSONS = 120
CONTENT_TYPES = {
    "crc-delius": "text/csv",
    "crc-xml": "application/xml",
    "crc-rest": "application/vnd.crc-rest-json+jsonl",
    "crc-canonical": "application/x-ndjson",
}
PROPERTY_SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Item:
    source: str
    adapter: Adapter[Any]
    raw: RawRecord


@pytest.fixture(scope="module")
def data_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Item], dict[Any, str]]:
    """A small generated data set, parsed by each source's own adapter, with its truth."""
    out = tmp_path_factory.mktemp("identity") / "data"
    generate(GenerateOptions(persons=PERSONS, seed=7, out=out))
    sources = SourceRegistry(registry.discover(), Settings(sources_file=out / "sources.yaml"))
    items = []
    for source, content_type in CONTENT_TYPES.items():
        adapter = sources.adapter_for(source, content_type)
        for path in sorted((out / source).iterdir()):
            with path.open("rb") as stream:
                items += [Item(source, adapter, raw) for raw in adapter.parse(stream, content_type)]
    with (out / "truth.csv").open(newline="", encoding="utf-8") as handle:
        truth = {
            (row["source"], row["external_id"]): row["person_key"] for row in csv.DictReader(handle)
        }
    return items, truth


def ingest_in_batches(db: Database, items: Sequence[Item], batch: int) -> None:
    by_source: dict[str, list[Item]] = defaultdict(list)
    for start in range(0, len(items), batch):
        by_source.clear()
        for item in items[start : start + batch]:
            by_source[item.source].append(item)
        for source, chunk in by_source.items():
            db.write(
                lambda session, source=source, chunk=chunk: ingest.ingest_batch(
                    session,
                    source=source,
                    adapter=chunk[0].adapter,
                    raw_records=[item.raw for item in chunk],
                    principal=None,
                    received_at=utcnow(),
                )
            )


def clustering(db: Database) -> dict[tuple[str, str], uuid.UUID]:
    rows = db.read(
        lambda s: s.execute(
            select(SourceRecord.source, SourceRecord.external_id, SourceRecord.person_id)
        ).all()
    )
    return {(source, external_id): person for source, external_id, person in rows}


def record_ids(db: Database) -> dict[tuple[str, str], uuid.UUID]:
    rows = db.read(
        lambda s: s.execute(
            select(SourceRecord.source, SourceRecord.external_id, SourceRecord.id)
        ).all()
    )
    return {(source, external_id): record_id for source, external_id, record_id in rows}


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), batch=st.sampled_from([7, 50, 400]))
def test_two_orders_give_clusterings_that_agree(
    db: Database, data_set: tuple[list[Item], dict[Any, str]], seed: int, batch: int
) -> None:
    items, truth = data_set
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    try:
        ingest_in_batches(db, items, 400)
        first = clustering(db)
        empty_all_tables(db)
        ingest_in_batches(db, shuffled, batch)
        second = clustering(db)
    finally:
        empty_all_tables(db)

    agreement = evaluation.agreement(first, second)
    assert agreement >= 0.99, f"pairwise agreement {agreement:.5f}"
    for clusters in (first, second):
        assert evaluation.pairwise(clusters, truth).precision >= 0.999


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), batch=st.sampled_from([7, 50, 400]))
def test_after_a_rerun_two_orders_give_the_same_clusters(
    db: Database, data_set: tuple[list[Item], dict[Any, str]], seed: int, batch: int
) -> None:
    items, truth = data_set
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    matcher = Matcher.build(MatchingSettings(), DEFAULT_POLICY)
    try:
        ingest_in_batches(db, items, 400)
        rerun(db, matcher)
        first = clustering(db)
        empty_all_tables(db)
        ingest_in_batches(db, shuffled, batch)
        rerun(db, matcher)
        second = clustering(db)
    finally:
        empty_all_tables(db)

    assert evaluation.agreement(first, second) == 1.0
    assert evaluation.pairwise(first, truth).precision >= 0.999


def rerun(db: Database, matcher: Matcher) -> None:
    run = db.write(lambda session: reruns.request_run(session, principal=None, now=utcnow()))
    claimed = db.write(lambda session: reruns.claim_next(session, now=utcnow()))
    assert claimed is not None
    assert claimed.run_id == run.id
    finished = reruns.execute(db, matcher, claimed)
    assert finished is not None
    assert finished.status == "succeeded"


def bridges(db: Database, keys: Sequence[tuple[str, str]]) -> list[Item]:
    """New canonical records, each a copy of one of these records' persons, identifiers and all:
    an automatic pass that ties every person those records are in."""
    adapter = next(iter(_canonical_adapter()))
    items = []
    for source, external_id in keys:
        person = db.read(
            lambda s, source=source, external_id=external_id: s.scalar(
                select(SourceRecord.canonical["person"]).where(
                    SourceRecord.source == source, SourceRecord.external_id == external_id
                )
            )
        )
        data = {"provenance": {"external_id": f"bridge-{uuid.uuid4().hex[:10]}"}, "person": person}
        items.append(Item("crc-bridge", adapter, RawRecord(data=data, external_id=None)))
    return items


def _canonical_adapter() -> list[Adapter[Any]]:
    return [SourceRegistry(registry.discover(), Settings()).canonical]


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_identical_resends_never_change_a_cluster(
    db: Database, data_set: tuple[list[Item], dict[Any, str]], seed: int
) -> None:
    items, _truth = data_set
    rng = random.Random(seed)
    try:
        ingest_in_batches(db, items, 200)
        before = clustering(db)
        again = rng.sample(items, len(items) // 3)
        ingest_in_batches(db, again, rng.choice([5, 60]))
        assert clustering(db) == before
    finally:
        empty_all_tables(db)


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), split_first=st.booleans())
def test_a_human_decision_survives_later_automatic_passes(
    db: Database, data_set: tuple[list[Item], dict[Any, str]], seed: int, split_first: bool
) -> None:
    items, _truth = data_set
    rng = random.Random(seed)
    order = list(items)
    rng.shuffle(order)
    cut = len(order) // 2
    try:
        ingest_in_batches(db, order[:cut], 100)
        clusters, ids = clustering(db), record_ids(db)
        together: tuple[Any, Any] | None = None
        apart: tuple[Any, Any] | None = None
        members: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for key, person in clusters.items():
            members[person].append(key)
        shared = sorted((keys for keys in members.values() if len(keys) > 1), key=len)
        if split_first and shared:
            # Split one record away from the others of its person: they must stay apart.
            keys = rng.choice(shared)
            moved, kept = keys[0], keys[1]
            db.write(
                lambda s: review.split_records(
                    s,
                    clusters[moved],
                    source_record_ids=[ids[moved]],
                    note=None,
                    principal=None,
                    policy=DEFAULT_POLICY,
                    now=utcnow(),
                )
            )
            apart = (moved, kept)
        else:
            # Link two records of different persons by hand: they must stay together.
            left, right = rng.sample(sorted(clusters), 2)
            db.write(
                lambda s: review.link_record(
                    s,
                    clusters[right],
                    source_record_id=ids[left],
                    note=None,
                    principal=None,
                    policy=DEFAULT_POLICY,
                    now=utcnow(),
                )
            )
            together = (left, right)

        # Later automatic passes: the rest of the data, all of it again, and new records that
        # copy both sides of the decision (each ties the persons the human decided about).
        ingest_in_batches(db, order[cut:], 100)
        ingest_in_batches(db, order, 300)
        decided = [key for pair in (together, apart) if pair is not None for key in pair]
        ingest_in_batches(db, bridges(db, decided), 10)

        after = clustering(db)
        if together is not None:
            assert after[together[0]] == after[together[1]]
        if apart is not None:
            assert after[apart[0]] != after[apart[1]]
    finally:
        empty_all_tables(db)


def test_the_fixture_data_set_has_people_in_several_sources(
    data_set: tuple[list[Item], dict[Any, str]],
) -> None:
    items, truth = data_set
    per_person: dict[str, int] = defaultdict(int)
    for item in items:
        key = truth.get((item.source, item.raw.external_id or ""))
        if key is not None:
            per_person[key] += 1
    assert max(per_person.values()) >= 3
