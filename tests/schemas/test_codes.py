import pytest

from schemas import RoshLevel


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("RLRH", RoshLevel.LOW),
        ("RMRH", RoshLevel.MEDIUM),
        ("RHRH", RoshLevel.HIGH),
        ("RVHR", RoshLevel.VERY_HIGH),
    ],
)
def test_rosh_delius_codes_map_both_ways(code: str, level: RoshLevel) -> None:
    assert RoshLevel.from_delius_code(code) is level
    assert level.delius_code == code


def test_rosh_delius_code_lookup_ignores_case_and_spaces() -> None:
    assert RoshLevel.from_delius_code(" rmrh ") is RoshLevel.MEDIUM


def test_unknown_rosh_delius_code_rejected() -> None:
    with pytest.raises(ValueError, match="unknown Delius RoSH register code"):
        RoshLevel.from_delius_code("MAPP")


def test_rosh_delius_codes_cover_every_level() -> None:
    assert {level.delius_code for level in RoshLevel} == RoshLevel.delius_codes()
