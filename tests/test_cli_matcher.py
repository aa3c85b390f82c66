"""`crc-gateway matcher train`, `show`, `activate`, `models` and `rerun` against the run's
database."""

from __future__ import annotations

import copy
from pathlib import Path

from sqlalchemy import delete, select
from typer.testing import CliRunner

from adapters.base import AdapterConfig
from adapters.canonical import CanonicalAdapter
from gateway import cli
from gateway.db import Database
from gateway.matching import load_model, match_keys, view_of
from gateway.models import MatcherRun, MatchKey, MatchModelRow, SourceRecord, utcnow
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


def test_train_activate_then_rerun_applies_the_trained_model(
    cli_database: Database, tmp_path: Path
) -> None:
    _store(cli_database, 120)
    out = tmp_path / "model.json"

    trained = runner.invoke(
        cli.app, ["matcher", "train", "--out", str(out), "--max-pairs", "5000", "--activate"]
    )

    assert trained.exit_code == 0, trained.output
    version = load_model(out).version
    assert f"model {version} stored and activated" in trained.output
    listed = runner.invoke(cli.app, ["matcher", "models"])
    assert listed.exit_code == 0, listed.output
    assert f"* {version}" in listed.output
    rerun = runner.invoke(cli.app, ["matcher", "rerun"])
    assert rerun.exit_code == 0, rerun.output
    assert f"succeeded with model {version}: 240 records" in rerun.output
    runs = cli_database.read(lambda s: s.scalars(select(MatcherRun.status)).all())
    assert runs == ["succeeded"]


def test_activate_refuses_a_file_that_is_not_a_model(
    cli_database: Database, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "x"}')

    result = runner.invoke(cli.app, ["matcher", "activate", str(bad)])

    assert result.exit_code == 2
    assert "invalid model" in result.output
    assert cli_database.read(lambda s: s.scalars(select(MatchModelRow)).all()) == []


def test_show_prints_m_u_and_weight_of_every_level(cli_database: Database) -> None:
    shown = runner.invoke(cli.app, ["matcher", "show"])

    assert shown.exit_code == 0, shown.output
    model = load_model()
    exact = model.comparisons["surname"].level("exact")
    assert f"{exact.m:.4g}" in shown.output
    assert f"{exact.u:.4g}" in shown.output
    assert f"{exact.weight:+.2f} bits" in shown.output


def test_rerun_rekey_writes_the_keys_of_records_stored_under_older_rules(
    cli_database: Database,
) -> None:
    _store(cli_database, 3)
    # As if stored by a version whose rules made fewer keys.
    cli_database.write(lambda s: s.execute(delete(MatchKey).where(MatchKey.key.like("names:%"))))
    expected = cli_database.read(
        lambda s: {
            (record_id, key)
            for record_id, person in s.execute(
                select(SourceRecord.id, SourceRecord.canonical["person"])
            )
            for key in match_keys(view_of(person))
        }
    )

    result = runner.invoke(cli.app, ["matcher", "rerun", "--rekey"])

    assert result.exit_code == 0, result.output
    stored = cli_database.read(
        lambda s: {
            (row[0], row[1]) for row in s.execute(select(MatchKey.source_record_id, MatchKey.key))
        }
    )
    assert stored == expected
    assert any(key.startswith("names:") for _, key in stored)
