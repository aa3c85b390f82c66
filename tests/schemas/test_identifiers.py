from datetime import date

import pytest

from schemas.identifiers import (
    PLACEHOLDER_CRO,
    canonical_crn,
    canonical_cro,
    canonical_nino,
    canonical_noms,
    canonical_pnc,
    cro_check_letter,
    is_placeholder_cro,
    make_cro,
    make_pnc,
    pnc_check_letter,
)

TODAY = date(2025, 6, 1)


# --- worked examples from the architecture's domain facts -------------------------------------


def test_pnc_worked_example_2002() -> None:
    assert 20073319 % 23 == 0
    assert pnc_check_letter("02", "73319") == "Z"
    assert canonical_pnc("02/73319Z", today=TODAY) == "2002/0073319Z"


def test_pnc_worked_example_1979() -> None:
    assert 790163001 % 23 == 2
    assert pnc_check_letter("79", "163001") == "B"
    assert canonical_pnc("79/163001B", today=TODAY) == "1979/0163001B"


def test_cro_worked_example_standard() -> None:
    assert 91065656 % 23 == 8
    assert cro_check_letter("65656", "91") == "H"
    assert canonical_cro("65656/91H") == "065656/91H"


def test_cro_worked_example_short_form() -> None:
    assert 5482703 % 23 == 9
    assert cro_check_letter("482703", "05", short_form=True) == "J"
    assert canonical_cro("SF05/482703J") == "SF05/482703J"


def test_crn_worked_example() -> None:
    assert canonical_crn("x320741") == "X320741"


# --- CRN -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [" X320741 ", "x 320741", "X320741\t"])
def test_crn_accepts_spacing_and_case(raw: str) -> None:
    assert canonical_crn(raw) == "X320741"


@pytest.mark.parametrize("raw", ["320741", "XX20741", "X32074", "X3207411", "", "   "])
def test_crn_rejects_bad_format(raw: str) -> None:
    with pytest.raises(ValueError, match="CRN"):
        canonical_crn(raw)


# --- PNC -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "02/73319Z",
        "02/073319z",
        "02/0073319Z",
        "2002/73319Z",
        "2002/0073319Z",
        " 2002 / 0073319 Z ",
        "020073319Z",  # slashless, 2-digit year, full serial
        "20020073319Z",  # slashless, 4-digit year, full serial
    ],
)
def test_pnc_accepted_surface_forms(raw: str) -> None:
    assert canonical_pnc(raw, today=TODAY) == "2002/0073319Z"


@pytest.mark.parametrize(
    "raw",
    [
        "2002073319Z",  # slashless with a 6-digit serial: split would be a guess
        "02073319Z",
        "02/00073319Z",  # serial longer than 7 digits
        "2/73319Z",
        "02/Z",
        "02/73319",
        "002/73319Z",
        "02-73319Z",
    ],
)
def test_pnc_rejects_bad_format(raw: str) -> None:
    with pytest.raises(ValueError, match="PNC ID should be"):
        canonical_pnc(raw, today=TODAY)


def test_pnc_rejects_wrong_check_letter_with_clear_message() -> None:
    with pytest.raises(ValueError, match="PNC check letter should be Z, got Q"):
        canonical_pnc("02/73319Q", today=TODAY)


def test_pnc_two_digit_year_pivots_on_today() -> None:
    assert canonical_pnc(make_pnc(2025, 1)[2:], today=TODAY).startswith("2025/")
    assert canonical_pnc(make_pnc(1926, 1)[2:], today=TODAY).startswith("1926/")
    # The same 2-digit year reads as 20YY once that year has come.
    assert canonical_pnc(make_pnc(2026, 1)[2:], today=date(2026, 1, 1)).startswith("2026/")


def test_pnc_rejects_four_digit_year_out_of_range() -> None:
    with pytest.raises(ValueError, match="PNC year should be between 1900 and 2025"):
        canonical_pnc(make_pnc(2026, 5), today=TODAY)
    with pytest.raises(ValueError, match="PNC year"):
        canonical_pnc("1899/0000001Z", today=TODAY)


def test_pnc_error_message_does_not_echo_the_value() -> None:
    with pytest.raises(ValueError) as excinfo:
        canonical_pnc("02/73319Q", today=TODAY)
    assert "73319" not in str(excinfo.value)


def test_make_pnc_builds_canonical_values() -> None:
    assert make_pnc(2002, 73319) == "2002/0073319Z"
    assert make_pnc(1979, 163001) == "1979/0163001B"
    with pytest.raises(ValueError):
        make_pnc(1850, 1)
    with pytest.raises(ValueError):
        make_pnc(2000, 10_000_000)


def test_pnc_check_letter_rejects_non_digits() -> None:
    with pytest.raises(ValueError):
        pnc_check_letter("2002", "1")
    with pytest.raises(ValueError):
        pnc_check_letter("02", "12345678")


# --- CRO -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["65656/91H", "065656/91H", " 65656 / 91h "])
def test_cro_accepted_surface_forms(raw: str) -> None:
    assert canonical_cro(raw) == "065656/91H"


def test_cro_short_form_keeps_serial_as_written() -> None:
    assert canonical_cro("sf05/482703j") == "SF05/482703J"
    # Leading zeros change the short-form check number (5012345 vs 512345), so they are kept.
    assert cro_check_letter("012345", "05", short_form=True) == "A"
    assert cro_check_letter("12345", "05", short_form=True) == "W"
    assert canonical_cro("SF05/012345A") == "SF05/012345A"
    assert canonical_cro("SF05/12345W") == "SF05/12345W"
    with pytest.raises(ValueError, match="should be W, got A"):
        canonical_cro("SF05/12345A")


@pytest.mark.parametrize(
    "raw", ["1234567/91H", "65656/9H", "65656-91H", "0656569 1H", "SF5/482703J", "SF05/J", ""]
)
def test_cro_rejects_bad_format(raw: str) -> None:
    with pytest.raises(ValueError, match="CRO number"):
        canonical_cro(raw)


def test_cro_rejects_wrong_check_letter() -> None:
    with pytest.raises(ValueError, match="CRO check letter should be H, got A"):
        canonical_cro("65656/91A")
    with pytest.raises(ValueError, match="CRO check letter should be J, got K"):
        canonical_cro("SF05/482703K")


def test_placeholder_cro_is_valid_and_recognised() -> None:
    assert canonical_cro("000000/00Z") == PLACEHOLDER_CRO
    assert canonical_cro("0/00z") == PLACEHOLDER_CRO
    assert is_placeholder_cro(" 0/00Z")
    assert not is_placeholder_cro("065656/91H")
    assert not is_placeholder_cro("not a cro")


def test_make_cro_builds_canonical_values() -> None:
    assert make_cro(65656, 91) == "065656/91H"
    assert make_cro(0, 0) == PLACEHOLDER_CRO
    with pytest.raises(ValueError):
        make_cro(1_000_000, 1)
    with pytest.raises(ValueError):
        make_cro(1, 100)


# --- NOMS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["A1234BC", "a1234bc", " A1234 BC "])
def test_noms_accepted(raw: str) -> None:
    assert canonical_noms(raw) == "A1234BC"


@pytest.mark.parametrize("raw", ["11234BC", "A123BC", "A1234B", "A1234B1", "AB234BC"])
def test_noms_rejects_bad_format(raw: str) -> None:
    with pytest.raises(ValueError, match="NOMS number should be"):
        canonical_noms(raw)


# --- National Insurance number -------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["AB123456C", "ab 12 34 56 c", "AB 12 34 56 C"])
def test_nino_accepted(raw: str) -> None:
    assert canonical_nino(raw) == "AB123456C"


@pytest.mark.parametrize("raw", ["AB123456E", "AB12345C", "A1123456C", "AB1234567"])
def test_nino_rejects_bad_format(raw: str) -> None:
    with pytest.raises(ValueError, match="National Insurance number should be"):
        canonical_nino(raw)


@pytest.mark.parametrize(
    "prefix",
    [
        *(f"{first}A" for first in "DFIQUV"),
        *(f"A{second}" for second in "DFIOQUV"),
        "BG",
        "GB",
        "KN",
        "NK",
        "NT",
        "TN",
        "ZZ",
    ],
)
def test_nino_rejects_never_issued_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match=f"prefix {prefix} is never issued"):
        canonical_nino(f"{prefix}123456A")
