"""bench/linkage.py: its scoring on a hand-made truth, its input, and its mapping files."""

from __future__ import annotations

import csv
import io
import sys
from datetime import datetime
from pathlib import Path

import pytest

from adapters.base import RecordRejected
from adapters.mapping import MappingAdapter, MappingConfig

BENCH = Path(__file__).resolve().parents[2] / "bench"
# The benchmarks are scripts that import their siblings (linkage imports ingest).
sys.path.append(str(BENCH))
import linkage  # noqa: E402

FEBRL = MappingAdapter(MappingConfig(file=linkage.MAPPINGS / "febrl.yaml"))
WIC = MappingAdapter(MappingConfig(file=linkage.MAPPINGS / "pseudopeople_wic.yaml"))
ADAPTERS = {"febrl.yaml": FEBRL, "pseudopeople_wic.yaml": WIC}


def parse(adapter: MappingAdapter, text: str) -> list[dict[str, str]]:
    return [raw.data for raw in adapter.parse(io.BytesIO(text.encode()), "text/csv")]


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------

# Entities 1 = {a, b, c}, 2 = {d, e}, 3 = {f}: 3 + 1 = 4 true pairs.
TRUTH = {"a": "1", "b": "1", "c": "1", "d": "2", "e": "2", "f": "3"}


def test_pairwise_and_cluster_scores_on_a_hand_made_truth() -> None:
    predicted = {"a": "P", "b": "P", "c": "Q", "d": "R", "e": "R", "f": "S"}

    scores = linkage.score(predicted, TRUTH, {})

    # Predicted pairs ab and de, both right, of 4 true pairs.
    assert scores.pairwise.true_positive_pairs == 2
    assert scores.pairwise.predicted_pairs == 2
    assert scores.pairwise.true_pairs == 4
    assert scores.pairwise.precision == 1.0
    assert scores.pairwise.recall == 0.5
    assert scores.pairwise.f1 == pytest.approx(2 / 3)
    # Predicted {a,b} {c} {d,e} {f}: {d,e} and {f} equal true clusters exactly.
    assert scores.clusters.exact_clusters == 2
    assert scores.clusters.precision == 0.5
    assert scores.clusters.recall == pytest.approx(2 / 3)
    assert scores.clusters.f1 == pytest.approx(4 / 7)


def test_a_wrong_link_costs_pairwise_precision() -> None:
    predicted = {"a": "P", "b": "P", "c": "P", "d": "P", "e": "R", "f": "S"}

    scores = linkage.score(predicted, TRUTH, {})

    # {a,b,c,d} gives 6 pairs, 3 of them right; de is missed.
    assert scores.pairwise.predicted_pairs == 6
    assert scores.pairwise.precision == 0.5
    assert scores.pairwise.recall == 0.75
    assert scores.clusters.exact_clusters == 1


def test_a_record_the_gateway_rejected_is_a_person_of_its_own() -> None:
    # b and e were not stored: their true pairs are missed, not left out of the count.
    predicted = {"a": "P", "c": "P", "d": "R", "f": "S"}

    scores = linkage.score(predicted, TRUTH, {})

    assert scores.pairwise.true_pairs == 4
    assert scores.pairwise.true_positive_pairs == 1
    assert scores.pairwise.recall == 0.25
    assert scores.clusters.true_clusters == 3
    assert scores.clusters.predicted_clusters == 5
    assert scores.clusters.exact_clusters == 1


def test_blocking_recall_counts_true_pairs_sharing_a_key() -> None:
    keys = {
        "a": ["k1", "k2"],
        "b": ["k2"],
        "c": ["k3"],
        "d": [],
        "f": ["k1"],  # shares k1 with a, but f is another entity: not a true pair
    }  # e was rejected: no keys

    scores = linkage.score({}, TRUTH, keys)

    # Of ab, ac, bc and de only ab share a key.
    assert scores.blocked_pairs == 1
    assert scores.true_pairs == 4
    assert scores.blocking_recall == 0.25


def test_blocking_keys_are_the_products_keys_of_a_canonical_person() -> None:
    person = {"forenames": ["mitchell"], "surname": "berry", "date_of_birth": "1940-05-03"}
    typo = {"forenames": ["mitchell"], "surname": "bery", "date_of_birth": "1940-05-03"}
    other = {"forenames": ["nicholas"], "surname": "ryan", "date_of_birth": "1951-11-30"}

    keys = linkage.blocking_keys(person)

    assert "sn_dob" in {key.split(":")[0] for key in keys}
    assert set(keys) & set(linkage.blocking_keys(typo))
    assert not set(keys) & set(linkage.blocking_keys(other))
    assert linkage.blocking_keys({"surname": "berry"}) == []


# ---------------------------------------------------------------------------------------------
# Input and mapping files
# ---------------------------------------------------------------------------------------------


def test_the_answer_columns_are_never_sent(tmp_path: Path) -> None:
    path = tmp_path / "set.csv"
    path.write_text(
        "rec_id,entity_id,household_id,first_name,last_name\n"
        "w1,E1,H1,Ann,Smith\nw2,E1,H1,Anne,Smith\nw3,E2,H1,Bob,Smith\n"
    )

    data = linkage.read_input(path, batch_size=2)

    assert data.truth == {"w1": "E1", "w2": "E1", "w3": "E2"}
    assert data.records == 3
    assert len(data.uploads) == 2
    rows = [row for upload in data.uploads for row in csv.DictReader(io.StringIO(upload.decode()))]
    assert [row["rec_id"] for row in rows] == ["w1", "w2", "w3"]
    assert all(set(row) == {"rec_id", "first_name", "last_name"} for row in rows)


def test_the_febrl_mapping_translates_a_row() -> None:
    [raw] = parse(
        FEBRL,
        "rec_id,given_name,surname,street_number,address_1,address_2,suburb,postcode,state,"
        "date_of_birth,soc_sec_id\n"
        "f1-1,mitchell,berry,1,braine street,,smithfield,3188,nsw,19400503,2887622\n",
    )

    record = FEBRL.translate(raw)

    assert record.provenance.external_id == "f1-1"
    person = record.person
    assert (person.forenames, person.surname) == (["mitchell"], "berry")
    assert person.date_of_birth is not None
    assert person.date_of_birth.isoformat() == "1940-05-03"
    [address] = person.addresses
    assert (address.lines, address.town, address.county) == (
        ["1", "braine street"],
        "smithfield",
        "nsw",
    )
    assert address.postcode is None
    assert person.identifiers.model_dump(exclude_none=True) == {}


def test_the_wic_mapping_translates_a_row() -> None:
    [raw] = parse(
        WIC,
        "rec_id,year,first_name,middle_initial,last_name,date_of_birth,sex,street_number,"
        "street_name,unit_number,city,state,zipcode\n"
        "w1,2024,Amara,L,Seguin,2022-07-15,Female,17611,pinta pl,,Anytown,WA,00000\n",
    )

    person = WIC.translate(raw).person

    assert (person.forenames, person.surname) == (["Amara", "L"], "Seguin")
    assert person.date_of_birth is not None
    assert person.date_of_birth.isoformat() == "2022-07-15"
    assert person.sex == "FEMALE"
    [address] = person.addresses
    assert (address.lines, address.town, address.county) == (
        ["17611", "pinta pl"],
        "Anytown",
        "WA",
    )


def test_postal_codes_are_added_to_a_derived_mapping(tmp_path: Path) -> None:
    [febrl] = [dataset for dataset in linkage.DATASETS if dataset.name == "febrl1"]
    derived = linkage.mapping_file(febrl, tmp_path, postal_codes=True)
    adapter = MappingAdapter(MappingConfig(file=derived))
    # A UK postcode, so the test holds whether or not the schema takes other countries' codes.
    [raw] = parse(
        adapter,
        "rec_id,given_name,surname,street_number,address_1,address_2,suburb,postcode,state,"
        "date_of_birth\nf1-1,mitchell,berry,1,braine street,,smithfield,sw1a1aa,nsw,19400503\n",
    )

    [address] = adapter.translate(raw).person.addresses

    assert address.postcode == "SW1A 1AA"
    assert linkage.mapping_file(febrl, tmp_path, postal_codes=False) == (
        linkage.MAPPINGS / "febrl.yaml"
    )


DATE_FORMATS = {"febrl.yaml": "%Y%m%d", "pseudopeople_wic.yaml": "%Y-%m-%d"}
SURNAME_COLUMNS = {"febrl.yaml": "surname", "pseudopeople_wic.yaml": "last_name"}


def _well_formed(row: dict[str, str], mapping: str) -> bool:
    if not row[SURNAME_COLUMNS[mapping]].strip():
        return False
    try:
        datetime.strptime(row["date_of_birth"], DATE_FORMATS[mapping])
    except ValueError:
        return row["date_of_birth"] == ""
    return True


@pytest.mark.parametrize("dataset", linkage.DATASETS, ids=lambda dataset: dataset.name)
def test_well_formed_rows_of_each_data_set_translate(dataset: linkage.Dataset) -> None:
    path = linkage.DEFAULT_DATASETS / dataset.file
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    with path.open(encoding="utf-8") as handle:
        head = "".join(line for _, line in zip(range(101), handle, strict=False))
    rows = [
        {key: value for key, value in row.items() if key not in linkage.ANSWER_COLUMNS}
        for row in csv.DictReader(io.StringIO(head))
    ]
    adapter = ADAPTERS[dataset.mapping]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    raws = parse(adapter, text.getvalue())
    well_formed = [raw for raw in raws if _well_formed(raw, dataset.mapping)]

    assert len(well_formed) >= 90
    for raw in well_formed:
        try:
            record = adapter.translate(raw)
        except RecordRejected as error:
            pytest.fail(f"{raw['rec_id']} rejected: {[e['path'] for e in error.errors]}")
        assert record.provenance.external_id == raw["rec_id"]
        assert record.person.date_of_birth is not None or raw["date_of_birth"] == ""


def test_a_trained_report_is_labelled_and_asked_for_by_flag() -> None:
    febrl = next(dataset for dataset in linkage.DATASETS if dataset.name == "febrl1")
    scores = linkage.score({"a": "p"}, {"a": "e"}, {"a": []})
    run = linkage.RunResult(
        sent=1,
        stored=1,
        rejected=0,
        push_s=1.0,
        predicted={"a": "p"},
        keys={"a": []},
        review_items=0,
        review_true=0,
        read_requests=1,
        warned=0,
    )

    cold = linkage.Report(dataset=febrl, run=run, scores=scores, records_per_s=1.0)
    trained = linkage.Report(
        dataset=febrl, run=run, scores=scores, records_per_s=1.0, model="trained"
    )

    assert (cold.label, trained.label) == ("febrl1", "febrl1 (trained)")
    assert linkage.parse_args(["--trained"]).trained
    assert not linkage.parse_args([]).trained
