"""Model files: the packaged default, validation, clear errors, stable dumps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.matching import DEFAULT_MODEL_PATH, MatchModel, ModelFileError, load_model


def test_the_packaged_default_loads() -> None:
    model = load_model()
    assert model.version == "default-2"
    assert model == load_model(DEFAULT_MODEL_PATH)
    assert model.bands.link > model.bands.possible


def test_dump_round_trips_and_is_stable(tmp_path: Path) -> None:
    model = load_model()
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    model.dump(first)
    load_model(first).dump(second)
    assert first.read_text() == second.read_text()
    assert load_model(first) == model


def test_a_missing_file_is_a_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ModelFileError, match=r"absent\.json: no such file"):
        load_model(path)


def test_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ModelFileError, match=r"broken\.json: not JSON \(line 1"):
        load_model(path)


def _document(**changes: object) -> dict[str, object]:
    document: dict[str, object] = json.loads(DEFAULT_MODEL_PATH.read_text())
    document.update(changes)
    return document


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"bands": {"link": 1.0, "possible": 2.0}}, "bands.link must be greater"),
        ({"prior": 1.5}, "prior"),
        ({"colour": "blue"}, "colour"),
        ({"term_frequencies": {"postcode": {"ZE2 9XL": 0.1}}}, "not one of"),
    ],
)
def test_an_invalid_model_names_the_problem(
    tmp_path: Path, changes: dict[str, object], problem: str
) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(_document(**changes)))
    with pytest.raises(ModelFileError, match="invalid model") as caught:
        load_model(path)
    assert problem in str(caught.value)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_field_without_all_its_levels_is_refused(tmp_path: Path) -> None:
    document = _document()
    comparisons = document["comparisons"]
    assert isinstance(comparisons, dict)
    comparisons["sex"]["levels"] = comparisons["sex"]["levels"][1:]
    path = tmp_path / "model.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match=r"comparisons\.sex: levels should be"):
        load_model(path)


def test_a_missing_level_has_no_probabilities() -> None:
    document = _document()
    comparisons = document["comparisons"]
    assert isinstance(comparisons, dict)
    comparisons["sex"]["levels"][-1] = {"label": "missing", "m": 0.5, "u": 0.5}
    with pytest.raises(ValueError, match="has no m or u"):
        MatchModel.model_validate(document)


def test_a_copy_recompiles_its_weights() -> None:
    model = load_model()
    assert model.compiled.owner is model
    copy = model.model_copy(update={"prior": 0.5})
    assert copy.compiled.prior_weight == 0.0
    assert model.compiled.prior_weight < 0.0


def test_a_model_from_before_the_address_comparison_names_what_to_retrain(tmp_path: Path) -> None:
    document = _document()
    comparisons = document["comparisons"]
    assert isinstance(comparisons, dict)
    comparisons["postcode"] = comparisons.pop("address")
    del comparisons["middle_name"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(document))
    with pytest.raises(
        ModelFileError,
        match=r"old\.json: invalid model: .*missing fields \['address', 'middle_name'\], "
        r"unknown fields \['postcode'\]",
    ):
        load_model(path)
