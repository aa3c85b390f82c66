"""Survivorship: most recent non-empty value wins, and every field says where it came from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.services.golden import LinkedRecord, SurvivorshipPolicy, build_golden
from gateway.settings import SurvivorshipSettings, SurvivorshipStrategy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def linked(source: str, hours: int, **person: object) -> LinkedRecord:
    return LinkedRecord(
        source=source,
        external_id=f"{source}-1",
        received_at=T0 + timedelta(hours=hours),
        person={"identifiers": {}, **person},
    )


def test_the_most_recent_non_empty_value_wins_per_field() -> None:
    golden = build_golden(
        [
            linked("crc-b", 2, surname="Later", date_of_birth=None),
            linked("crc-a", 1, surname="Earlier", date_of_birth="1980-02-03"),
        ]
    )

    assert golden.person["surname"] == "Later"
    assert golden.person["date_of_birth"] == "1980-02-03"
    assert golden.provenance["surname"]["source"] == "crc-b"
    assert golden.provenance["date_of_birth"]["source"] == "crc-a"


def test_identifiers_survive_field_by_field_with_provenance() -> None:
    golden = build_golden(
        [
            linked("crc-a", 1, surname="X", identifiers={"crn": "X320741", "pnc": None}),
            linked("crc-b", 2, surname="X", identifiers={"pnc": "2002/0073319Z"}),
        ]
    )

    assert golden.person["identifiers"] == {
        "crn": "X320741",
        "pnc": "2002/0073319Z",
        "cro": None,
        "noms": None,
        "nino": None,
    }
    assert golden.provenance["identifiers.crn"]["source"] == "crc-a"
    assert golden.provenance["identifiers.pnc"]["source"] == "crc-b"


def test_empty_lists_never_replace_values() -> None:
    golden = build_golden(
        [
            linked("crc-a", 1, surname="X", forenames=["Ada"]),
            linked("crc-b", 2, surname="X", forenames=[]),
        ]
    )

    assert golden.person["forenames"] == ["Ada"]


def test_the_result_does_not_depend_on_input_order() -> None:
    records = [linked(f"crc-{n}", n, surname=f"S{n}") for n in range(5)]

    assert build_golden(records) == build_golden(list(reversed(records)))


def test_source_priority_prefers_the_trusted_source_whatever_arrived_later() -> None:
    policy = SurvivorshipPolicy.from_settings(
        SurvivorshipSettings(
            fields={"date_of_birth": SurvivorshipStrategy.SOURCE_PRIORITY},
            source_priority=["crc-trusted", "crc-b"],
        )
    )
    records = [
        linked("crc-trusted", 1, surname="Older", date_of_birth="1980-02-03"),
        linked("crc-b", 2, surname="Newer", date_of_birth="1980-03-02"),
        linked("crc-unlisted", 3, surname="Newest", date_of_birth="1981-01-01"),
    ]

    golden = build_golden(records, policy)

    assert golden.person["date_of_birth"] == "1980-02-03"
    assert golden.provenance["date_of_birth"]["source"] == "crc-trusted"
    # Fields not named keep the default, most recent.
    assert golden.person["surname"] == "Newest"


def test_most_complete_takes_the_fullest_value() -> None:
    policy = SurvivorshipPolicy.from_settings(
        SurvivorshipSettings(default=SurvivorshipStrategy.MOST_COMPLETE)
    )
    records = [
        linked("crc-a", 1, surname="X", forenames=["Ada", "Mary", "Jo"]),
        linked("crc-b", 2, surname="X", forenames=["Ada"]),
    ]

    assert build_golden(records, policy).person["forenames"] == ["Ada", "Mary", "Jo"]


def test_placeholders_never_win_over_a_real_value() -> None:
    records = [
        linked("crc-a", 1, surname="X", date_of_birth="1984-05-06"),
        linked(
            "crc-b", 2, surname="X", date_of_birth="1900-01-01", identifiers={"cro": "000000/00Z"}
        ),
    ]

    golden = build_golden(records)

    assert golden.person["date_of_birth"] == "1984-05-06"
    # With nothing better, the placeholder is still what the sources said.
    assert golden.person["identifiers"]["cro"] == "000000/00Z"


def test_an_unknown_survivorship_field_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown fields nickname"):
        SurvivorshipPolicy.from_settings(
            SurvivorshipSettings(fields={"nickname": SurvivorshipStrategy.MOST_RECENT})
        )
