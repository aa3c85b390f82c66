"""The generator's output: determinism, validity, ground truth, overlap, twins, layout."""

from __future__ import annotations

import math
import sys
import types
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import IO

import pytest
from pydantic import ValidationError

from gateway.services.sources import load_source_settings
from gateway.settings import Settings
from gateway.synthetic import (
    SOURCE_FORMATS,
    GenerationError,
    MissingWriterPolicy,
    NoiseRates,
    PopulationSettings,
)
from schemas import CaseRecord
from schemas.identifiers import PLACEHOLDER_CRO, canonical_pnc
from schemas.postcodes import NO_FIXED_ABODE_POSTCODES
from tests.synthetic.conftest import (
    MAIN_PERSONS,
    MAIN_PNC_MALFORMED,
    ReadBack,
    Run,
    all_files,
    canonical_lines,
    read_noise,
    read_truth,
    run_generator,
)

ZERO_NOISE = NoiseRates(**dict.fromkeys(NoiseRates.model_fields, 0.0))


def test_the_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    first = run_generator(tmp_path / "a", seed=5)
    second = run_generator(tmp_path / "b", seed=5)

    files = all_files(first.out)
    assert files == all_files(second.out)
    assert any(name.startswith("crc-") for name in files)


def test_a_different_seed_gives_different_data(tmp_path: Path) -> None:
    first = all_files(run_generator(tmp_path / "a", seed=5).out)
    second = all_files(run_generator(tmp_path / "b", seed=6).out)

    assert first["truth.csv"] != second["truth.csv"]
    for source in SOURCE_FORMATS:
        first_part = next(data for name, data in first.items() if name.startswith(source))
        second_part = next(data for name, data in second.items() if name.startswith(source))
        assert first_part != second_part


@pytest.mark.slow
def test_worker_processes_do_not_change_the_output(tmp_path: Path) -> None:
    single = run_generator(tmp_path / "one", persons=2500, records_per_file=1000, workers=1)
    several = run_generator(tmp_path / "two", persons=2500, records_per_file=1000, workers=2)

    assert all_files(single.out) == all_files(several.out)
    assert len(single.manifest["sources"]["crc-canonical"]["files"]) == 3


def test_only_records_with_a_spoilt_pnc_are_invalid_and_at_the_configured_rate(
    main_run: Run,
) -> None:
    noise = read_noise(main_run.out)
    records = invalid = 0
    for record in canonical_lines(main_run, "crc-canonical"):
        records += 1
        external_id = record["provenance"]["external_id"]
        try:
            CaseRecord.model_validate(record)
        except ValidationError as error:
            invalid += 1
            paths = {".".join(map(str, item["loc"])) for item in error.errors()}
            assert paths == {"person.identifiers.pnc"}
            assert "pnc_malformed" in noise[("crc-canonical", external_id)]
            with pytest.raises(ValueError, match="check letter"):
                canonical_pnc(record["person"]["identifiers"]["pnc"])
        else:
            assert "pnc_malformed" not in noise.get(("crc-canonical", external_id), ())

    assert invalid == main_run.manifest["sources"]["crc-canonical"]["invalid_records"]
    _assert_near(invalid, records, MAIN_PNC_MALFORMED)


def test_every_source_is_rejected_only_for_its_spoilt_pncs_at_the_configured_rate(
    main_run: Run, main_read_back: dict[str, list[ReadBack]]
) -> None:
    noise = read_noise(main_run.out)
    total = invalid = 0
    for source, items in main_read_back.items():
        for item in items:
            total += 1
            assert item.external_id is not None
            kinds = noise.get((source, item.external_id), ())
            if isinstance(item.outcome, CaseRecord):
                assert "pnc_malformed" not in kinds, (source, item.external_id)
            else:
                invalid += 1
                assert "pnc_malformed" in kinds, (source, item.external_id)
                assert len(item.outcome.errors) == 1, item.outcome.errors
                assert "pnc" in item.outcome.errors[0]["path"].lower()

    assert total == main_run.report.records
    _assert_near(invalid, total, MAIN_PNC_MALFORMED)


def test_the_truth_covers_every_written_record_exactly_once(
    main_run: Run, main_read_back: dict[str, list[ReadBack]]
) -> None:
    truth = read_truth(main_run.out)
    written = [
        (source, item.external_id) for source, items in main_read_back.items() for item in items
    ]

    assert len(truth) == len(set(truth)) == main_run.report.records
    assert Counter((source, external_id) for source, external_id, _ in truth) == Counter(written)
    assert {key for _, _, key in truth} == {f"P{index:07d}" for index in range(1, MAIN_PERSONS + 1)}


def test_each_person_is_in_one_to_three_sources_as_weighted(main_run: Run) -> None:
    sources_of: dict[str, set[str]] = defaultdict(set)
    for source, _, key in read_truth(main_run.out):
        assert source not in sources_of[key], "a person is at most once in a source"
        sources_of[key].add(source)
    histogram = Counter(len(sources) for sources in sources_of.values())

    assert set(histogram) == {1, 2, 3}
    weights = PopulationSettings().overlap_weights
    for count, weight in enumerate(weights, start=1):
        _assert_near(histogram[count], MAIN_PERSONS, weight / sum(weights))
    assert main_run.manifest["persons_by_source_count"] == {
        str(count): histogram[count] for count in sorted(histogram)
    }
    # The same person is known by a different id in every source.
    external_ids: dict[str, set[str]] = defaultdict(set)
    for _, external_id, key in read_truth(main_run.out):
        external_ids[key].add(external_id)
    assert all(len(external_ids[key]) == len(sources_of[key]) for key in sources_of)


def test_twins_share_surname_birth_date_and_address_but_are_two_people(tmp_path: Path) -> None:
    run = run_generator(
        tmp_path,
        persons=600,
        sources=("crc-canonical",),
        noise=ZERO_NOISE,
        population=PopulationSettings(twin_rate=0.05),
    )
    key_of = {external_id: key for _, external_id, key in read_truth(run.out)}
    by_key = {
        key_of[record["provenance"]["external_id"]]: record
        for record in canonical_lines(run, "crc-canonical")
    }
    pairs = (run.out / "twins.csv").read_text().splitlines()[1:]

    assert len(pairs) == run.report.twin_pairs >= 10
    for pair in pairs:
        first_key, second_key = pair.split(",")
        assert first_key != second_key
        first, second = by_key[first_key]["person"], by_key[second_key]["person"]
        assert first["surname"] == second["surname"]
        assert first["date_of_birth"] == second["date_of_birth"]
        assert first["addresses"][0]["postcode"] == second["addresses"][0]["postcode"]
        assert first["addresses"][0]["lines"] == second["addresses"][0]["lines"]
        assert first["forenames"][0] != second["forenames"][0]
        assert first["identifiers"]["pnc"] != second["identifiers"]["pnc"]


def test_identifiers_are_valid_and_unique_per_person(tmp_path: Path) -> None:
    run = run_generator(tmp_path, persons=1500, sources=("crc-canonical",), noise=ZERO_NOISE)
    seen: dict[str, set[str]] = defaultdict(set)
    for line in canonical_lines(run, "crc-canonical"):
        record = CaseRecord.model_validate(line)
        identifiers = record.person.identifiers.model_dump(exclude_none=True)
        for kind, value in identifiers.items():
            assert value not in seen[kind], kind
            seen[kind].add(value)

    assert len(seen["pnc"]) == 1500
    assert {"crn", "cro", "noms", "nino"} <= set(seen)


def test_files_hold_at_most_records_per_file(tmp_path: Path) -> None:
    run = run_generator(tmp_path, persons=700, sources=("crc-canonical",), records_per_file=150)
    files = run.manifest["sources"]["crc-canonical"]["files"]
    sizes = [len((run.out / name).read_bytes().splitlines()) for name in files]

    assert files == [f"crc-canonical/part-{n:05d}.ndjson" for n in range(1, len(files) + 1)]
    assert max(sizes) <= 150
    assert sum(sizes) == 700


def test_the_manifest_and_sources_file_describe_the_run(main_run: Run, tmp_path: Path) -> None:
    manifest = main_run.manifest
    assert manifest["persons"] == MAIN_PERSONS
    assert manifest["records"] == sum(entry["records"] for entry in manifest["sources"].values())
    assert manifest["noise_rates"]["pnc_malformed"] == MAIN_PNC_MALFORMED
    assert manifest["generator_version"]
    for source, entry in manifest["sources"].items():
        fmt = SOURCE_FORMATS[source]
        assert entry["adapter"] in (fmt.adapter, "canonical")
        for name in entry["files"]:
            assert (main_run.out / name).is_file()

    configured = load_source_settings(
        Settings(sources_file=main_run.out / "sources.yaml", database_url="sqlite://")
    )
    assert {name: s.adapter for name, s in configured.items()} == {
        source: entry["adapter"] for source, entry in manifest["sources"].items()
    }


def test_junk_placeholders_appear_at_default_rates(
    main_run: Run, main_read_back: dict[str, list[ReadBack]]
) -> None:
    totals: Counter[str] = Counter()
    for entry in main_run.manifest["sources"].values():
        totals.update(entry["noise"])
    for kind in ("junk_dob", "junk_cro", "junk_no_fixed_abode", "junk_name"):
        assert totals[kind] > 0, kind
    people = [
        item.outcome.person
        for items in main_read_back.values()
        for item in items
        if isinstance(item.outcome, CaseRecord)
    ]
    assert any(str(person.date_of_birth) in ("1900-01-01", "1970-01-01") for person in people)
    assert any(person.identifiers.cro == PLACEHOLDER_CRO for person in people)
    postcodes = {address.postcode for person in people for address in person.addresses}
    assert postcodes & NO_FIXED_ABODE_POSTCODES
    assert any(
        person.surname.startswith(("DUPLICATE_", "MIG_ERROR_")) or "NOT ENTERED" in person.forenames
        for person in people
    )


def test_an_occupied_directory_is_refused_unless_overwriting(tmp_path: Path) -> None:
    run_generator(tmp_path, persons=50, sources=("crc-canonical",), records_per_file=20)
    (tmp_path / "notes.txt").write_text("keep me")

    with pytest.raises(GenerationError, match="not empty"):
        run_generator(tmp_path, persons=50, sources=("crc-canonical",))
    run = run_generator(tmp_path, persons=50, sources=("crc-canonical",), overwrite=True)

    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "crc-canonical").iterdir()) == ["part-00001.ndjson"]
    assert run.report.records == 50


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="unknown source"):
        run_generator(tmp_path, sources=("crc-nowhere",))
    with pytest.raises(GenerationError, match="records_per_file"):
        run_generator(tmp_path, records_per_file=0)
    with pytest.raises(ValidationError):
        NoiseRates(pnc_missing=0.7, pnc_malformed=0.5)
    with pytest.raises(ValidationError):
        PopulationSettings(overlap_weights=(0.0, 0.0))


@pytest.fixture
def missing_xml_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = SOURCE_FORMATS["crc-xml"]
    monkeypatch.setitem(
        SOURCE_FORMATS, "crc-xml", replace(fmt, writer_module="adapters.not_there.writer")
    )


@pytest.mark.usefixtures("missing_xml_writer")
def test_a_missing_writer_fails_clearly_by_default(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match=r"crc-xml.*not installed.*--on-missing-writer"):
        run_generator(tmp_path, on_missing_writer=MissingWriterPolicy.FAIL)


@pytest.mark.usefixtures("missing_xml_writer")
def test_a_missing_writer_can_be_skipped(tmp_path: Path) -> None:
    run = run_generator(tmp_path, on_missing_writer=MissingWriterPolicy.SKIP)

    assert "crc-xml" not in run.manifest["sources"]
    assert "crc-xml" in run.manifest["skipped_sources"]
    assert "crc-xml" not in {source for source, _, _ in read_truth(run.out)}


@pytest.mark.usefixtures("missing_xml_writer")
def test_a_missing_writer_can_be_replaced_by_canonical_ndjson(tmp_path: Path) -> None:
    run = run_generator(tmp_path, on_missing_writer=MissingWriterPolicy.CANONICAL)

    entry = run.manifest["sources"]["crc-xml"]
    assert entry["adapter"] == "canonical"
    assert entry["files"] == ["crc-xml/part-00001.ndjson"]
    assert "adapter: canonical" in (run.out / "sources.yaml").read_text()


def test_a_writer_that_fails_stops_the_run_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def write_records(records: Iterable[CaseRecord], stream: IO[bytes]) -> None:
        for number, _ in enumerate(records):
            if number == 10:
                raise RuntimeError("disk on fire")

    module = types.ModuleType("fake_failing_writer")
    module.write_records = write_records  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_failing_writer", module)
    fmt = SOURCE_FORMATS["crc-canonical"]
    monkeypatch.setitem(
        SOURCE_FORMATS, "crc-canonical", replace(fmt, writer_module="fake_failing_writer")
    )

    with pytest.raises(RuntimeError, match="disk on fire"):
        run_generator(tmp_path, persons=3000, sources=("crc-canonical",))


def _assert_near(observed: int, trials: int, rate: float) -> None:
    """Within five standard deviations of the binomial expectation (seeded: never flaky)."""
    expected = trials * rate
    tolerance = 5 * math.sqrt(trials * rate * (1 - rate)) + 1
    assert abs(observed - expected) <= tolerance, (observed, expected, tolerance)
