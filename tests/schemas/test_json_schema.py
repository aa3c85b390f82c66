import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import CaseRecord, export_json_schema
from schemas import export as schema_export


def test_committed_json_schema_is_current() -> None:
    committed = schema_export.JSON_SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema_export.render_json_schema(), (
        "schemas/json/case-record.v1.json is stale: run `python -m schemas.export` and commit it"
    )
    assert json.loads(committed) == export_json_schema()


def test_exported_schema_is_identified_draft_2020_12() -> None:
    schema = export_json_schema()
    assert schema["$id"] == "https://crc-gateway.example/schemas/case-record.v1.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "CaseRecord"
    assert schema["additionalProperties"] is False


def _properties(schema: dict[str, object]) -> dict[str, dict[str, object]]:
    properties = schema.get("properties", {})
    assert isinstance(properties, dict)
    return properties


def test_every_model_and_field_is_documented() -> None:
    schema = export_json_schema()
    models = {"CaseRecord": schema, **schema["$defs"]}
    for name, model in models.items():
        assert model.get("description"), f"{name} has no docstring"
        for field, spec in _properties(model).items():
            assert spec.get("description"), f"{name}.{field} has no description"
        if model.get("type") == "object":
            assert model["additionalProperties"] is False, name


def test_render_is_sorted_indented_with_trailing_newline() -> None:
    rendered = schema_export.render_json_schema()
    assert rendered.endswith("}\n")
    assert rendered == json.dumps(json.loads(rendered), indent=2, sort_keys=True) + "\n"


def test_check_fails_on_stale_or_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "json" / "case-record.v1.json"
    monkeypatch.setattr(schema_export, "JSON_SCHEMA_PATH", target)
    assert schema_export.main(["--check"]) == 1
    assert schema_export.main([]) == 0
    assert schema_export.main(["--check"]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace("CaseRecord", "Stale"))
    assert schema_export.main(["--check"]) == 1


def test_module_entry_point_checks_committed_file() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "schemas.export", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_schema_version_is_a_constant_in_the_contract() -> None:
    version = export_json_schema()["properties"]["schema_version"]
    assert version["const"] == 1
    assert CaseRecord.model_fields["schema_version"].default == 1
