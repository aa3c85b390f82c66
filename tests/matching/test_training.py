"""Training a model from unlabelled synthetic records."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from adapters import registry
from adapters.base import RecordRejected
from gateway.matching import (
    FIELD_LEVELS,
    Band,
    MatchModel,
    MatchView,
    load_model,
    score,
    train,
    view_of,
)
from gateway.matching.training import PASSES, pass_pairs, smoothed_m
from gateway.synthetic import GenerateOptions, generate

NOW = datetime(2021, 6, 26, 9, 30, tzinfo=UTC)
# As the generated sources.yaml says each source's files are to be sent.
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".xml": "application/xml",
    ".jsonl": "application/vnd.crc-rest-json+jsonl",
    ".ndjson": "application/x-ndjson",
}


def _records(directory: Path) -> list[tuple[str, MatchView]]:
    """(person key, view) of every record that translates, through the real adapters."""
    document = yaml.safe_load((directory / "sources.yaml").read_text())
    with (directory / "truth.csv").open(newline="") as handle:
        truth = {
            (row["source"], row["external_id"]): row["person_key"] for row in csv.DictReader(handle)
        }
    adapters = registry.discover()
    found: list[tuple[str, MatchView]] = []
    for source, entry in document["sources"].items():
        adapter_class = adapters[entry["adapter"]]
        adapter = adapter_class(adapter_class.config_model())
        for path in sorted((directory / source).glob("part-*")):
            with path.open("rb") as stream:
                for raw in adapter.parse(stream, CONTENT_TYPES[path.suffix]):
                    if raw.errors:
                        continue
                    try:
                        record = adapter.translate(raw.data)
                    except RecordRejected:
                        continue
                    key = truth[(source, record.provenance.external_id or "")]
                    found.append((key, view_of(record.person.model_dump(mode="json"))))
    return found


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, MatchView]]:
    out = tmp_path_factory.mktemp("generated") / "out"
    generate(GenerateOptions(persons=400, seed=7, out=out))
    return _records(out)


@pytest.fixture(scope="module")
def trained(records: list[tuple[str, MatchView]]) -> MatchModel:
    views = [view for _, view in records]
    return train(views, base=load_model(), max_pairs=20_000, seed=3, now=NOW)


def test_training_fills_in_the_model(trained: MatchModel) -> None:
    assert trained.version.startswith("trained-20210626093000-")
    assert len(trained.version.rsplit("-", 1)[1]) == 8
    assert trained.trained is not None
    assert trained.trained.records > 400
    assert trained.trained.em_iterations >= 1
    assert trained.bands == load_model().bands
    assert trained.term_frequencies["surname"]
    assert trained.term_frequencies["forename"]
    assert sum(trained.term_frequencies["surname"].values()) == pytest.approx(1.0)


def test_trained_weights_point_the_right_way(trained: MatchModel) -> None:
    for name in ("forename", "surname", "date_of_birth", "sex", "pnc"):
        levels = trained.comparisons[name]
        assert levels.level("exact").weight > 0 > levels.level("different").weight
    assert trained.comparisons["address"].level("street_postcode").weight > 0


def test_trained_model_separates_links_from_non_links(
    trained: MatchModel, records: list[tuple[str, MatchView]]
) -> None:
    by_person: dict[str, list[MatchView]] = {}
    for key, view in records:
        by_person.setdefault(key, []).append(view)
    matches = [(group[0], group[1]) for group in by_person.values() if len(group) > 1]
    rng = random.Random(5)
    strangers = []
    while len(strangers) < 2_000:
        (ka, a), (kb, b) = rng.sample(records, 2)
        if ka != kb:
            strangers.append((a, b))
    linked = sum(score(a, b, trained).band is Band.LINK for a, b in matches)
    assert linked / len(matches) > 0.95
    assert not any(score(a, b, trained).band is Band.LINK for a, b in strangers)


def test_trained_model_round_trips(trained: MatchModel, tmp_path: Path) -> None:
    path = tmp_path / "trained.json"
    trained.dump(path)
    assert load_model(path) == trained


def test_training_is_deterministic_for_a_seed(
    trained: MatchModel, records: list[tuple[str, MatchView]]
) -> None:
    views = [view for _, view in records]
    again = train(views, base=load_model(), max_pairs=20_000, seed=3, now=NOW)
    assert again.model_dump() == trained.model_dump()
    other = train(views, base=load_model(), max_pairs=20_000, seed=4, now=NOW)
    assert other.comparisons != trained.comparisons


def test_progress_is_reported(records: list[tuple[str, MatchView]]) -> None:
    stages: set[str] = set()

    def progress(stage: str, done: int, total: int) -> None:
        assert 0 <= done <= total
        stages.add(stage)

    train([v for _, v in records], base=load_model(), max_pairs=2_000, progress=progress)
    assert {"u", "pairs: date of birth", "em: date of birth", "pairs: names", "em: names"} <= stages


def test_a_level_no_match_shows_is_smoothed_towards_the_base_model() -> None:
    base = load_model()
    labels = FIELD_LEVELS["date_of_birth"]
    # Every expected match agrees exactly: the other levels keep a little of the base's m.
    expected = [100.0 if label == "exact" else 0.0 for label in labels]

    m = smoothed_m("date_of_birth", expected, base)

    assert m[labels.index("missing")] is None
    shares = [value for value in m if value is not None]
    assert sum(shares) == pytest.approx(1.0)
    typo = m[labels.index("typo")]
    assert typo is not None
    assert 0.0 < typo < base.comparisons["date_of_birth"].level("typo").m  # type: ignore[operator]
    # With no matches at all, the base model's proportions come back.
    none = smoothed_m("date_of_birth", [0.0] * len(labels), base)
    base_m = [base.comparisons["date_of_birth"].level(label).m for label in labels]
    total = sum(value for value in base_m if value is not None)
    for got, want in zip(none, base_m, strict=True):
        if want is not None:
            assert got == pytest.approx(want / total)


def test_the_prior_comes_from_the_data(trained: MatchModel) -> None:
    # Generated data: about two records per person, so roughly one pair in n/2 matches.
    assert trained.trained is not None
    n = trained.trained.records
    assert 0.2 / n < trained.prior < 5.0 / n


def test_too_few_records_to_train() -> None:
    view = view_of({"surname": "Quillfeather"})
    with pytest.raises(ValueError, match="at least 100 records, got 99"):
        train([view] * 99, base=load_model())


def test_a_pass_with_more_pairs_than_asked_for_draws_them_from_its_blocks() -> None:
    views = [
        view_of({"surname": f"Name{i % 7}", "date_of_birth": "1980-01-0" + str(1 + i % 3)})
        for i in range(300)
    ]
    dob_pass = PASSES[0]
    rng = random.Random(1)

    everything, total = pass_pairs(views, dob_pass, 10**9, rng)
    drawn, same_total = pass_pairs(views, dob_pass, 500, rng)

    assert total == same_total == 3 * (100 * 99 // 2)
    assert len(everything) == total
    assert 0 < len(drawn) <= 500
    assert set(drawn) <= set(everything)
