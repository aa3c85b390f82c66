"""A generated data set, every source in its own format, imports end to end through the CLI and
the API, and every record in the ground truth is accounted for: stored, or quarantined."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.db import Database
from gateway.main import create_app
from gateway.models import RejectedRecord, SourceRecord
from gateway.services.clients import Role
from gateway.settings import Settings, get_settings
from tests.conftest import KeyMaker, bearer


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated") / "data"
    result = CliRunner().invoke(
        cli, ["generate", "--persons", "150", "--seed", "11", "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return out


def manifest(out: Path) -> dict[str, Any]:
    sources: dict[str, Any] = json.loads((out / "manifest.json").read_text())["sources"]
    return sources


def truth_ids(out: Path) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    with (out / "truth.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            ids.setdefault(row["source"], set()).add(row["external_id"])
    return ids


def accounted(db: Database) -> tuple[dict[str, set[str]], dict[str, int]]:
    def read(session: Any) -> tuple[dict[str, set[str]], dict[str, int]]:
        stored: dict[str, set[str]] = {}
        for source, external_id in session.execute(
            select(SourceRecord.source, SourceRecord.external_id)
        ):
            stored.setdefault(source, set()).add(external_id)
        rejected = dict(
            session.execute(
                select(RejectedRecord.source, func.sum(RejectedRecord.occurrences)).group_by(
                    RejectedRecord.source
                )
            ).all()
        )
        return stored, {source: int(count) for source, count in rejected.items()}

    return db.read(read)


def assert_every_record_accounted_for(out: Path, db: Database) -> None:
    stored, rejected = accounted(db)
    truth = truth_ids(out)
    for source, summary in manifest(out).items():
        assert rejected.get(source, 0) == summary["invalid_records"], source
        assert len(stored.get(source, set())) + rejected.get(source, 0) == summary["records"]
        assert stored.get(source, set()) <= truth[source], source


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, generated: Path, database_url: str, db: Database
) -> Iterator[None]:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_SOURCES_FILE", str(generated / "sources.yaml"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_a_generated_data_set_imports_through_the_cli(generated: Path, db: Database) -> None:
    for source, summary in manifest(generated).items():
        for file in summary["files"]:
            result = CliRunner().invoke(
                cli,
                [
                    "import",
                    str(generated / file),
                    "--source",
                    source,
                    "--content-type",
                    summary["content_type"],
                ],
            )
            assert result.exit_code == 0, result.output

    assert_every_record_accounted_for(generated, db)


@pytest.mark.anyio
async def test_a_generated_data_set_imports_through_the_api(
    generated: Path, settings: Settings, db: Database, make_key: KeyMaker
) -> None:
    configured = settings.model_copy(update={"sources_file": generated / "sources.yaml"})
    transport = httpx.ASGITransport(app=create_app(configured, db=db))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        for source, summary in manifest(generated).items():
            key = bearer(make_key(Role.SOURCE, source=source))
            for file in summary["files"]:
                response = await http.post(
                    f"/v1/sources/{source}/records",
                    content=(generated / file).read_bytes(),
                    headers={**key, "Content-Type": summary["content_type"]},
                )
                assert response.status_code == 200, response.text
                assert response.json()["summary"]["received"] == summary["records"]

    assert_every_record_accounted_for(generated, db)
