"""`crc-gateway matcher train` and `show` against the run's database."""

from __future__ import annotations

import copy
from pathlib import Path

from typer.testing import CliRunner

from adapters.base import AdapterConfig
from adapters.canonical import CanonicalAdapter
from gateway import cli
from gateway.db import Database
from gateway.matching import load_model
from gateway.models import utcnow
from gateway.services import ingest
from tests.builders import as_raw_records, make_case_record

runner = CliRunner()


def _store(db: Database, count: int) -> None:
    records = []
    for _ in range(count):
        record = make_case_record()
        twin = copy.deepcopy(record)
        twin["provenance"]["external_id"] += "-b"
        twin["person"]["identifiers"] = {}
        records += [record, twin]
    db.write(
        lambda session: ingest.ingest_batch(
            session,
            source="crc-north",
            adapter=CanonicalAdapter(AdapterConfig()),
            raw_records=as_raw_records(records),
            principal=None,
            received_at=utcnow(),
        )
    )


def test_train_writes_a_model_that_loads_and_show_prints_it(
    cli_database: Database, tmp_path: Path
) -> None:
    _store(cli_database, 120)
    out = tmp_path / "model.json"

    trained = runner.invoke(cli.app, ["matcher", "train", "--out", str(out), "--max-pairs", "5000"])

    assert trained.exit_code == 0, trained.output
    model = load_model(out)
    assert model.version.startswith("trained-")
    assert model.trained is not None
    assert model.trained.records == 240
    shown = runner.invoke(cli.app, ["matcher", "show", str(out)])
    assert shown.exit_code == 0, shown.output
    assert model.version in shown.output
    again = runner.invoke(cli.app, ["matcher", "train", "--out", str(out)])
    assert again.exit_code == 2
    assert "exists" in again.output


def test_train_refuses_too_few_records(cli_database: Database, tmp_path: Path) -> None:
    _store(cli_database, 3)

    result = runner.invoke(cli.app, ["matcher", "train", "--out", str(tmp_path / "m.json")])

    assert result.exit_code == 2
    assert "at least" in result.output
