"""Each source's files read back through the adapter that owns the format."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.synthetic import SOURCE_FORMATS, MissingWriterPolicy, WriterUnavailable
from gateway.synthetic.sources import load_writer
from schemas import CaseRecord
from tests.synthetic.conftest import read_back, read_noise, read_truth, run_generator


@pytest.mark.parametrize("source", list(SOURCE_FORMATS))
def test_a_source_reads_back_through_its_adapter_with_the_truths_ids(
    source: str, tmp_path: Path
) -> None:
    fmt = SOURCE_FORMATS[source]
    try:
        load_writer(fmt)
    except WriterUnavailable as error:
        pytest.skip(str(error))
    run = run_generator(
        tmp_path,
        persons=300,
        seed=3,
        sources=(source,),
        records_per_file=120,
        on_missing_writer=MissingWriterPolicy.FAIL,
    )
    entry = run.manifest["sources"][source]
    assert entry["adapter"] == fmt.adapter
    assert entry["content_type"] == fmt.content_type
    assert len(entry["files"]) == 3
    noise = read_noise(run.out)

    items = list(read_back(run, source))
    truth_ids = [external_id for _, external_id, _ in read_truth(run.out)]

    assert [item.external_id for item in items] == truth_ids
    rejected = 0
    for item in items:
        if isinstance(item.outcome, CaseRecord):
            assert item.outcome.provenance.external_id == item.external_id
        else:
            rejected += 1
            assert "pnc_malformed" in noise[(source, item.external_id or "")]
    assert rejected == entry["invalid_records"]
