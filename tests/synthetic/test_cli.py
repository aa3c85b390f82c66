"""`crc-gateway generate` end to end through Typer."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from tests.synthetic.conftest import read_truth

runner = CliRunner()


def test_generate_writes_every_source_the_truth_and_a_sources_file(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    result = runner.invoke(
        app,
        [
            "generate",
            "--persons", "200",
            "--seed", "9",
            "--out", str(out),
            "--records-per-file", "100",
            "--on-missing-writer", "canonical",
            "--noise", "name_typo=0.2",
            "--overlap", "0,0,1",
            "--workers", "1",
        ],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "records/s" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["persons"] == 200
    assert manifest["noise_rates"]["name_typo"] == 0.2
    assert manifest["persons_by_source_count"] == {"3": 200}
    assert manifest["records"] == 600 == len(read_truth(out))
    for source, entry in manifest["sources"].items():
        assert entry["files"], source
        assert all((out / name).stat().st_size > 0 for name in entry["files"])
        assert entry["records"] <= 100 * len(entry["files"])
    assert "sources:" in (out / "sources.yaml").read_text()


def test_generate_refuses_bad_input_with_a_message(tmp_path: Path) -> None:
    base = ["generate", "--persons", "10", "--seed", "1", "--out", str(tmp_path / "x")]

    bad_rate = runner.invoke(app, [*base, "--noise", "name_typo=2"])
    bad_kind = runner.invoke(app, [*base, "--noise", "sneezes=0.1"])
    bad_source = runner.invoke(app, [*base, "--sources", "crc-nowhere"])
    bad_policy = runner.invoke(app, [*base, "--on-missing-writer", "maybe"])

    for result in (bad_rate, bad_kind, bad_source, bad_policy):
        assert result.exit_code == 2, result.output
        assert "error:" in result.output
    assert "crc-nowhere" in bad_source.output
