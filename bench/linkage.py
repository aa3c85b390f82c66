"""Identity resolution on public record-linkage data, through the real HTTP API.

For each data set in ``../shared/datasets`` (FEBRL1, FEBRL2, a pseudopeople WIC extract; see its
README), a fresh database is migrated, a real `crc-gateway serve` is started with one mapping
source for the set (``bench/linkage/*.yaml``), the rows are uploaded as CSV files in batches, and
the clustering is read back through the API and scored against the set's truth. Figures are
printed; nothing passes or fails.

    .venv/bin/python bench/linkage.py
    .venv/bin/python bench/linkage.py --only febrl1 --runs 3

The truth columns (``entity_id``, ``household_id``) are removed from every row before it is sent
and are read only to score.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import httpx

# The database handling (fresh SQLite files, DROP/CREATE of crc_bench* databases) and the server
# process are bench/ingest.py's, so every benchmark treats them the same way.
from ingest import (
    PostgresDatabases,
    SqliteDatabases,
    gateway_env,
    gateway_server,
    run_cli,
)

from gateway.matching import evaluation
from gateway.matching.keys import match_keys
from gateway.matching.views import view_of

REPO: Final = Path(__file__).resolve().parents[1]
MAPPINGS: Final = Path(__file__).resolve().parent / "linkage"
DEFAULT_DATASETS: Final = REPO.parent / "shared" / "datasets"
#: Columns that are the answer: never sent, read only to score.
TRUTH_COLUMN: Final = "entity_id"
ANSWER_COLUMNS: Final = frozenset({"entity_id", "household_id"})
RECORD_ID_COLUMN: Final = "rec_id"
REQUEST_TIMEOUT_S: Final = 600.0
JSON: Final = {"Content-Type": "application/json"}
PAGE_SIZE: Final = 1000


@dataclass(frozen=True)
class SplinkFigures:
    """Splink's pairwise figures on a data set, as its README gives them."""

    variant: str
    precision: float
    recall: float
    f1: float
    f1_clustered: float


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    mapping: str
    postal_column: str
    splink: SplinkFigures


# Splink's variant that uses only what the gateway can hold (no soc_sec_id; for WIC both variants
# use the same fields as this mapping, the one without address scored higher).
DATASETS: Final[tuple[Dataset, ...]] = (
    Dataset(
        "febrl1",
        "febrl1.csv",
        "febrl.yaml",
        "postcode",
        SplinkFigures("no soc_sec_id", 1.0000, 0.9980, 0.9990, 0.9990),
    ),
    Dataset(
        "febrl2",
        "febrl2.csv",
        "febrl.yaml",
        "postcode",
        SplinkFigures("no soc_sec_id", 0.9995, 0.9948, 0.9971, 0.9997),
    ),
    Dataset(
        "pseudopeople_wic",
        "pseudopeople_wic.csv",
        "pseudopeople_wic.yaml",
        "zipcode",
        SplinkFigures("without address", 0.9638, 0.9923, 0.9779, 0.9770),
    ),
)


# --------------------------------------------------------------------------------------------
# Scoring: pure functions over {record id: label}, tested in tests/bench/test_linkage.py.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    pairwise: evaluation.PairwiseMetrics
    clusters: evaluation.ClusterMetrics
    blocked_pairs: int
    true_pairs: int

    @property
    def blocking_recall(self) -> float:
        return self.blocked_pairs / self.true_pairs if self.true_pairs else 1.0


def true_pairs(truth: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """Every pair of records the truth puts in one entity."""
    members: dict[str, list[str]] = defaultdict(list)
    for record, entity in truth.items():
        members[entity].append(record)
    for records in members.values():
        yield from itertools.combinations(sorted(records), 2)


def blocked_pair_count(keys: Mapping[str, Collection[str]], truth: Mapping[str, str]) -> int:
    """True pairs whose records share at least one key (a record without keys shares none)."""
    return sum(
        1
        for first, second in true_pairs(truth)
        if not set(keys.get(first, ())).isdisjoint(keys.get(second, ()))
    )


def score(
    predicted: Mapping[str, str],
    truth: Mapping[str, str],
    keys: Mapping[str, Collection[str]],
) -> Scores:
    """Score the gateway's clustering of every record the truth names.

    A record the gateway did not store (rejected) is a person of its own, so its true pairs
    count as missed: throwing a record away must not look better than keeping it.
    """
    complete: dict[str, tuple[str, str]] = {
        record: ("person", predicted[record]) if record in predicted else ("rejected", record)
        for record in truth
    }
    return Scores(
        pairwise=evaluation.pairwise(complete, truth),
        clusters=evaluation.cluster(complete, truth),
        blocked_pairs=blocked_pair_count(keys, truth),
        true_pairs=sum(1 for _ in true_pairs(truth)),
    )


def blocking_keys(person: Mapping[str, Any]) -> list[str]:
    """The keys the product files a canonical person under (identifier and blocking keys)."""
    return match_keys(view_of(person))


# --------------------------------------------------------------------------------------------
# Input: the data set's rows without the answer, cut into CSV uploads.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Input:
    truth: dict[str, str]
    uploads: list[bytes]
    records: int


def read_input(path: Path, batch_size: int) -> Input:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [name for name in reader.fieldnames or () if name not in ANSWER_COLUMNS]
        rows = list(reader)
    truth = {row[RECORD_ID_COLUMN]: row[TRUTH_COLUMN] for row in rows}
    uploads = []
    for start in range(0, len(rows), batch_size):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows[start : start + batch_size])
        uploads.append(buffer.getvalue().encode())
    return Input(truth=truth, uploads=uploads, records=len(rows))


def mapping_file(dataset: Dataset, workdir: Path, *, postal_codes: bool) -> Path:
    source = MAPPINGS / dataset.mapping
    if not postal_codes:
        return source
    # `fields:` is the last section of every mapping here, so an appended rule lands in it.
    derived = workdir / f"{source.stem}-postal.yaml"
    rule = f"  person.addresses[].postcode: {{from: {dataset.postal_column}, strip: true}}\n"
    derived.write_text(source.read_text() + rule)
    return derived


# --------------------------------------------------------------------------------------------
# One run: a fresh gateway, the push, the read-back.
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    sent: int
    stored: int
    rejected: int
    push_s: float
    predicted: dict[str, str]
    keys: dict[str, list[str]]
    review_items: int
    review_true: int
    read_requests: int
    warned: int


def _api_key(output: str) -> str:
    match = re.search(r"API key \(shown once\): (\S+)", output)
    if match is None:
        raise RuntimeError("`crc-gateway clients create` printed no API key")
    return match.group(1)


def _create_client(env: dict[str, str], role: str, source: str | None = None) -> str:
    args = ["clients", "create", "--name", f"linkage {role}", "--role", role]
    if source is not None:
        args += ["--source", source]
    return _api_key(run_cli(args, env))


def _get(client: httpx.Client, path: str, key: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers={"Authorization": f"Bearer {key}"})
    response.raise_for_status()
    return response.json()


def run_once(
    dataset: Dataset,
    data: Input,
    database_url: str,
    workdir: Path,
    *,
    postal_codes: bool,
    trained: bool = False,
    reverse: bool = False,
) -> tuple[RunResult, RunResult | None]:
    """Push the set (upload order reversed if asked), read the clustering back; with `trained`,
    then train a model on the stored records, activate it and re-run the matcher through the
    admin API, and read the clustering back again. (cold, trained or None)."""
    source = f"linkage-{dataset.name.replace('_', '-')}"
    env = gateway_env(database_url, 1, max(len(upload) for upload in data.uploads))
    # The re-run is picked up at once.
    env["GATEWAY_MATCHING__RERUN_CHECK_SECONDS"] = "0.2"
    env["GATEWAY_SOURCES"] = json.dumps(
        {
            source: {
                "adapter": "mapping",
                "config": {"file": str(mapping_file(dataset, workdir, postal_codes=postal_codes))},
            }
        }
    )
    run_cli(["migrate"], env)
    source_key = _create_client(env, "source", source)
    central_key = _create_client(env, "central")
    operator_key = _create_client(env, "operator")
    admin_key = _create_client(env, "admin") if trained else ""
    uploads = list(reversed(data.uploads)) if reverse else data.uploads

    with (
        gateway_server(env, workdir / f"{dataset.name}-server.log") as base_url,
        httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client,
    ):
        _get(client, "/health/live", source_key)
        summaries = []
        started = time.perf_counter()
        for number, upload in enumerate(uploads):
            response = client.post(
                f"/v1/sources/{source}/records",
                content=upload,
                headers={
                    "Authorization": f"Bearer {source_key}",
                    "Content-Type": "text/csv",
                    "X-Filename": f"{dataset.name}-{number:04d}.csv",
                },
            )
            response.raise_for_status()
            summaries.append(response.json())
        push_s = time.perf_counter() - started
        for summary in summaries:
            if summary["status"] != "completed":
                raise RuntimeError(f"an upload ended {summary['status']}: {summary['failure']}")
        received = sum(item["summary"]["received"] for item in summaries)
        stored = sum(item["summary"]["created"] + item["summary"]["updated"] for item in summaries)
        rejected = sum(item["summary"]["rejected"] for item in summaries)

        # The persons' view a central system has: list the persons, then ask each for its source
        # records (one request per person), whose canonical person gives the blocking keys.
        person_ids: list[str] = []
        requests = 0
        for page in _pages(client, "/v1/persons", central_key, "next_after"):
            requests += 1
            person_ids.extend(item["id"] for item in page)
        predicted: dict[str, str] = {}
        keys: dict[str, list[str]] = {}
        for person_id in person_ids:
            linked = _get(client, f"/v1/persons/{person_id}/sources", central_key)
            requests += 1
            for item in linked["items"]:
                if item["source"] == source:
                    predicted[item["external_id"]] = person_id
                    keys[item["external_id"]] = blocking_keys(item["person"])

        quality = _get(client, f"/v1/sources/{source}/data-quality", operator_key)
        requests += 1
        warned = int(quality["warned_records"])
        review_items, review_true, review_requests = _review_queue(
            client, operator_key, data, predicted
        )
        requests += review_requests
        if received != data.records or len(predicted) != stored:
            raise RuntimeError(
                f"{dataset.name}: sent {data.records}, the gateway read {received}, reported "
                f"{stored} stored and {len(predicted)} were read back"
            )
        cold = RunResult(
            sent=data.records,
            stored=stored,
            rejected=rejected,
            push_s=push_s,
            predicted=predicted,
            keys=keys,
            review_items=review_items,
            review_true=review_true,
            read_requests=requests,
            warned=warned,
        )
        retrained: RunResult | None = None
        if trained:
            started = time.perf_counter()
            _train_and_rerun(client, admin_key, dataset, env, workdir)
            rerun_s = time.perf_counter() - started
            after_rerun = _clustering(client, source, central_key)
            items, true, review_requests = _review_queue(client, operator_key, data, after_rerun)
            retrained = replace(
                cold,
                push_s=rerun_s,
                predicted=after_rerun,
                review_items=items,
                review_true=true,
                read_requests=review_requests,
            )
    return cold, retrained


def _pages(
    client: httpx.Client, path: str, key: str, cursor: str
) -> Iterator[list[dict[str, Any]]]:
    """Each page of a keyset-paged list, to the end (`cursor`: the field naming the next page)."""
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if after is not None:
            params["after"] = after
        page = _get(client, path, key, **params)
        yield page["items"]
        after = page[cursor]
        if after is None:
            return


def _review_queue(
    client: httpx.Client, key: str, data: Input, predicted: Mapping[str, str]
) -> tuple[int, int, int]:
    """(review items, of which the record and candidate are truly one entity, requests)."""
    members: dict[str, set[str]] = defaultdict(set)
    for record, person_id in predicted.items():
        members[person_id].add(data.truth[record])
    items = true = requests = 0
    for page in _pages(client, "/v1/review", key, "next"):
        requests += 1
        for item in page:
            items += 1
            candidate = item["candidate"]
            entity = data.truth.get(item["record"]["external_id"])
            if candidate is not None and entity in members.get(candidate["person_id"], ()):
                true += 1
    return items, true, requests


def _clustering(client: httpx.Client, source: str, key: str) -> dict[str, str]:
    """Every record of the source with its person, paged (GET /v1/sources/{source}/records)."""
    return {
        item["external_id"]: item["person_id"]
        for page in _pages(client, f"/v1/sources/{source}/records", key, "next_after")
        for item in page
    }


def _train_and_rerun(
    client: httpx.Client, key: str, dataset: Dataset, env: dict[str, str], workdir: Path
) -> None:
    """`crc-gateway matcher train` on the stored records; the model is stored and activated and
    the matcher re-run through the admin API, as an admin would."""
    out = workdir / f"{dataset.name}-trained.json"
    run_cli(["matcher", "train", "--out", str(out), "--force"], env)
    headers = {"Authorization": f"Bearer {key}"}
    client.post(
        "/v1/matcher/models", content=out.read_bytes(), headers={**headers, **JSON}
    ).raise_for_status()
    version = json.loads(out.read_text())["version"]
    client.post(f"/v1/matcher/models/{version}/activate", headers=headers).raise_for_status()
    requested = client.post("/v1/matcher/reruns", headers=headers)
    requested.raise_for_status()
    location = requested.headers["location"]
    while True:
        run = _get(client, location, key)
        if run["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    if run["status"] != "succeeded":
        raise RuntimeError(f"the matcher re-run failed: {run['failure']}")


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    dataset: Dataset
    run: RunResult
    scores: Scores
    records_per_s: float
    model: str = "cold"

    @property
    def label(self) -> str:
        return self.dataset.name if self.model == "cold" else f"{self.dataset.name} ({self.model})"


def print_report(reports: Sequence[Report], *, engine: str, runs: int, batch_size: int) -> None:
    print()
    models = (
        " and trained (EM on the same records, activated and re-run through the API)"
        if any(report.model != "cold" for report in reports)
        else ""
    )
    print(f"Identity resolution through the HTTP API, cold (default model){models}, {engine}")
    print()
    print(
        "| data set | sent | stored | rejected | warned | review | review share "
        "| review true | rec/s | read-back requests |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for report in reports:
        run = report.run
        share = run.review_items / run.sent if run.sent else 0.0
        print(
            f"| {report.label} | {run.sent:,} | {run.stored:,} | {run.rejected:,} "
            f"| {run.warned:,} "
            f"| {run.review_items:,} | {share:.1%} | {run.review_true:,} "
            f"| {report.records_per_s:,.0f} | {run.read_requests:,} |"
        )
    print()
    print(
        "| data set | pw P | pw R | pw F1 | cl P | cl R | cl F1 | blocking recall "
        "| Splink variant | Splink P | Splink R | Splink F1 | Splink F1 clustered |"
    )
    print(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
    )
    for report in reports:
        pw, cl, splink = report.scores.pairwise, report.scores.clusters, report.dataset.splink
        print(
            f"| {report.label} | {pw.precision:.4f} | {pw.recall:.4f} | {pw.f1:.4f} "
            f"| {cl.precision:.4f} | {cl.recall:.4f} | {cl.f1:.4f} "
            f"| {report.scores.blocking_recall:.4f} | {splink.variant} | {splink.precision:.4f} "
            f"| {splink.recall:.4f} | {splink.f1:.4f} | {splink.f1_clustered:.4f} |"
        )
    print()
    for report in reports:
        pw, cl, scores = report.scores.pairwise, report.scores.clusters, report.scores
        print(
            f"{report.label}: pairs {pw.true_positive_pairs:,} right of "
            f"{pw.predicted_pairs:,} predicted, {pw.true_pairs:,} true; clusters "
            f"{cl.exact_clusters:,} exact of {cl.predicted_clusters:,} predicted, "
            f"{cl.true_clusters:,} true; true pairs sharing a key {scores.blocked_pairs:,} of "
            f"{scores.true_pairs:,}"
        )
    print()
    print(
        "warned: records kept with a data-quality warning (GET /v1/sources/{source}/"
        "data-quality). A rejected record counts as a person of its own. rec/s: records sent / "
        f"wall time of the push (CSV uploads of {batch_size:,} rows), median of {runs} run(s); "
        "the other figures are the first run's. The read-back asks each person for its source "
        "records, whose canonical person gives the blocking keys. Splink: its README's pairwise "
        "figures at p >= 0.5."
    )
    print(f"Python {platform.python_version()}, {engine}, {os.cpu_count()} CPUs")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--datasets",
        type=Path,
        default=DEFAULT_DATASETS,
        help="folder of the data sets (default ../shared/datasets beside the repository)",
    )
    parser.add_argument(
        "--only", choices=[dataset.name for dataset in DATASETS], action="append", default=None
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="run on PostgreSQL; the database must be named crc_bench... (dropped and recreated)",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs per data set (timing median)")
    parser.add_argument("--batch-size", type=int, default=1000, help="rows per CSV upload")
    parser.add_argument(
        "--trained",
        action="store_true",
        help="also train a model on each set's stored records (crc-gateway matcher train), "
        "store and activate it and re-run the matcher through the admin API, and score again",
    )
    parser.add_argument(
        "--orders",
        action="store_true",
        help="also push each set with its uploads in reverse order and print how far the two "
        "clusterings agree",
    )
    parser.add_argument(
        "--no-postal-codes",
        dest="postal_codes",
        action="store_false",
        help="leave the postal code out (a non-UK one is kept as text with a warning)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.batch_size < 1:
        parser.error("--runs and --batch-size must be at least 1")
    return args


def _report(dataset: Dataset, data: Input, runs: list[RunResult], model: str) -> Report:
    first = runs[0]
    return Report(
        dataset=dataset,
        run=first,
        scores=score(first.predicted, data.truth, first.keys),
        records_per_s=statistics.median(run.sent / run.push_s for run in runs),
        model=model,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [dataset for dataset in DATASETS if args.only is None or dataset.name in args.only]
    missing = [d.file for d in chosen if not (args.datasets / d.file).is_file()]
    if missing:
        print(f"not found in {args.datasets}: {', '.join(missing)}", file=sys.stderr)
        return 2
    reports: list[Report] = []
    agreements: list[tuple[str, float, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="crc-linkage-") as tmp:
        workdir = Path(tmp)
        databases = (
            PostgresDatabases(args.postgres) if args.postgres else SqliteDatabases(None, workdir)
        )
        for dataset in chosen:
            data = read_input(args.datasets / dataset.file, args.batch_size)
            runs: list[RunResult] = []
            trained: RunResult | None = None
            for number in range(args.runs):
                print(
                    f"{dataset.name}: run {number + 1} of {args.runs}, {data.records:,} records",
                    file=sys.stderr,
                )
                url = databases.fresh("gateway")
                try:
                    cold, retrained = run_once(
                        dataset,
                        data,
                        url,
                        workdir,
                        postal_codes=args.postal_codes,
                        trained=args.trained and number == 0,
                    )
                finally:
                    databases.drop("gateway")
                runs.append(cold)
                trained = trained or retrained
            reports.append(_report(dataset, data, runs, "cold"))
            if trained is not None:
                reports.append(_report(dataset, data, [trained], "trained, re-run"))
            if args.orders:
                print(f"{dataset.name}: the uploads in reverse order", file=sys.stderr)
                url = databases.fresh("gateway")
                try:
                    cold_reversed, trained_reversed = run_once(
                        dataset,
                        data,
                        url,
                        workdir,
                        postal_codes=args.postal_codes,
                        trained=trained is not None,
                        reverse=True,
                    )
                finally:
                    databases.drop("gateway")
                agreements.append(
                    (
                        dataset.name,
                        evaluation.agreement(runs[0].predicted, cold_reversed.predicted),
                        evaluation.agreement(trained.predicted, trained_reversed.predicted)
                        if trained is not None and trained_reversed is not None
                        else None,
                    )
                )
    print_report(reports, engine=databases.engine, runs=args.runs, batch_size=args.batch_size)
    if agreements:
        print()
        print("Arrival order: pairwise agreement of the clusterings from the uploads in the")
        print("given order and in reverse (1.0 = the same clusters)")
        print()
        print("| data set | cold | trained, re-run |")
        print("| --- | ---: | ---: |")
        for name, cold_agreement, trained_agreement in agreements:
            shown = f"{trained_agreement:.5f}" if trained_agreement is not None else "-"
            print(f"| {name} | {cold_agreement:.5f} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
