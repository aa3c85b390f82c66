"""The push response says, per record, whether it made a person, linked to one, or waits."""

from __future__ import annotations

import httpx
import pytest

from gateway.services.clients import Role
from tests.api.conftest import push_records
from tests.builders import OMIT, another_record_of, make_case_record, random_pnc
from tests.conftest import KeyMaker


@pytest.mark.anyio
async def test_each_record_reports_how_it_was_resolved(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    north = make_key(Role.SOURCE, source="crc-north")
    south = make_key(Role.SOURCE, source="crc-south")
    original = make_case_record(
        person={"surname": "Fictionworth", "identifiers": {"crn": OMIT, "noms": OMIT}}
    )
    [first] = await push_records(client, north, "crc-north", original)
    by_pnc = make_case_record(
        person={
            "date_of_birth": original["person"]["date_of_birth"],
            "identifiers": {
                "pnc": original["person"]["identifiers"]["pnc"],
                "crn": OMIT,
                "noms": OMIT,
            },
        }
    )
    typo = another_record_of(original, surname="Fictionwroth")
    conflicting = another_record_of(original, identifiers={"pnc": random_pnc()})

    linked, probable = await push_records(client, south, "crc-south", by_pnc, typo)
    [waiting] = await push_records(client, south, "crc-south", conflicting)
    [again] = await push_records(client, north, "crc-north", original)

    assert (first["outcome"], first["resolution"], first["method"]) == (
        "created",
        "new_person",
        None,
    )
    assert (linked["outcome"], linked["resolution"], linked["method"]) == (
        "created",
        "linked",
        "pnc",
    )
    assert linked["person_id"] == first["person_id"]
    assert (probable["resolution"], probable["method"]) == ("linked", "probabilistic")
    assert probable["person_id"] == first["person_id"]
    assert (waiting["resolution"], waiting["method"]) == ("review", None)
    assert waiting["person_id"] != first["person_id"]
    assert (again["outcome"], again["resolution"], again["method"]) == ("unchanged", None, None)
