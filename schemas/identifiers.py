"""Canonical forms of the identifiers that probation, police and prison systems share.

Every ``canonical_*`` function takes a raw string as a source system holds it and returns the one
canonical spelling, or raises :class:`ValueError` naming the expected format. All whitespace is
removed and letters are upper-cased before the format is checked, so ``" x320741 "`` and
``"ab 12 34 56 c"`` are accepted. Error messages never repeat the raw value: identifiers are
personal data and these messages end up in quarantine records and logs.

Accepted surface forms:

* CRN: ``X320741`` (one letter, six digits; no check character).
* PNC ID: ``YYYY/N…C`` or ``YY/N…C`` with a serial of 1 to 7 digits (padded to 7), or with no slash
  only when the serial is the full 7 digits: ``YYYYNNNNNNNC`` (12 characters) or ``YYNNNNNNNC``
  (10 characters). A slashless form with a shorter serial is rejected because the split between
  year and serial would be a guess. Canonical: ``YYYY/NNNNNNNC``.
* CRO number: ``N…/YYC`` with a serial of 1 to 6 digits (padded to 6), canonical ``NNNNNN/YYC``;
  or the short form ``SFYY/N…C`` with a serial of 1 to 6 digits kept exactly as given, because its
  check letter is computed over the serial as written.
* NOMS number: ``A1234BC``.
* National Insurance number: ``AB123456C``; HMRC's never-issued prefixes are rejected.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

__all__ = [
    "CHECK_LETTERS",
    "PLACEHOLDER_CRO",
    "canonical_crn",
    "canonical_cro",
    "canonical_nino",
    "canonical_noms",
    "canonical_pnc",
    "cro_check_letter",
    "is_placeholder_cro",
    "make_cro",
    "make_pnc",
    "pnc_check_letter",
]

#: Check-letter alphabet shared by PNC IDs and CRO numbers (no I, O or S: they read as digits).
CHECK_LETTERS: Final = "ZABCDEFGHJKLMNPQRTUVWXY"

#: The CRO number legacy systems hold when they have none; its check letter works out.
PLACEHOLDER_CRO: Final = "000000/00Z"

_PNC_SERIAL_DIGITS: Final = 7
_CRO_SERIAL_DIGITS: Final = 6

_CRN = re.compile(r"[A-Z]\d{6}")
_PNC_SLASHED = re.compile(r"(?P<year>\d{4}|\d{2})/(?P<serial>\d{1,7})(?P<check>[A-Z])")
_PNC_SLASHLESS = re.compile(r"(?P<year>\d{4}|\d{2})(?P<serial>\d{7})(?P<check>[A-Z])")
_CRO_STANDARD = re.compile(r"(?P<serial>\d{1,6})/(?P<yy>\d{2})(?P<check>[A-Z])")
_CRO_SHORT_FORM = re.compile(r"SF(?P<yy>\d{2})/(?P<serial>\d{1,6})(?P<check>[A-Z])")
_NOMS = re.compile(r"[A-Z]\d{4}[A-Z]{2}")
_NINO = re.compile(r"[A-Z]{2}\d{6}[A-D]")

_NINO_BAD_FIRST: Final = frozenset("DFIQUV")
_NINO_BAD_SECOND: Final = frozenset("DFIOQUV")
_NINO_BAD_PREFIXES: Final = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def _compact(raw: str, what: str) -> str:
    """Remove all whitespace and upper-case; reject an empty result."""
    compact = "".join(raw.split()).upper()
    if not compact:
        raise ValueError(f"{what} is empty")
    return compact


def _require_digits(value: str, what: str, max_digits: int) -> None:
    if not (value.isascii() and value.isdigit()) or len(value) > max_digits:
        raise ValueError(f"{what} should be 1 to {max_digits} digits")


def canonical_crn(raw: str) -> str:
    """Return the canonical CRN (``X320741``) or raise ValueError."""
    crn = _compact(raw, "CRN")
    if not _CRN.fullmatch(crn):
        raise ValueError("CRN should be one letter followed by six digits, e.g. X320741")
    return crn


def pnc_check_letter(yy: str, serial: str) -> str:
    """Return the PNC check letter for a 2-digit year and a serial of up to 7 digits."""
    _require_digits(yy, "PNC year", 2)
    if len(yy) != 2:
        raise ValueError("PNC check letter needs the 2-digit year")
    _require_digits(serial, "PNC serial", _PNC_SERIAL_DIGITS)
    return CHECK_LETTERS[int(yy + serial.zfill(_PNC_SERIAL_DIGITS)) % 23]


def canonical_pnc(raw: str, *, today: date | None = None) -> str:
    """Return the canonical PNC ID (``YYYY/NNNNNNNC``) or raise ValueError.

    A 2-digit year is read as 20YY when it is at most the last two digits of ``today``'s year
    (default: the current date), else as 19YY. A 4-digit year must lie in 1900..``today``'s year.
    """
    pnc = _compact(raw, "PNC ID")
    match = _PNC_SLASHED.fullmatch(pnc) or _PNC_SLASHLESS.fullmatch(pnc)
    if match is None:
        raise ValueError(
            "PNC ID should be YYYY/NNNNNNNC or YY/NNNNNNNC (serial of 1 to 7 digits, "
            "then a check letter); without a slash the serial must be 7 digits"
        )
    current_year = (today or date.today()).year
    year_text, serial, check = match["year"], match["serial"], match["check"]
    if len(year_text) == 2:
        century = 2000 if int(year_text) <= current_year % 100 else 1900
        year = century + int(year_text)
    else:
        year = int(year_text)
        if not 1900 <= year <= current_year:
            raise ValueError(f"PNC year should be between 1900 and {current_year}")
    yy = f"{year % 100:02d}"
    expected = pnc_check_letter(yy, serial)
    if check != expected:
        raise ValueError(f"PNC check letter should be {expected}, got {check}")
    return f"{year:04d}/{serial.zfill(_PNC_SERIAL_DIGITS)}{check}"


def cro_check_letter(serial: str, yy: str, *, short_form: bool = False) -> str:
    """Return the CRO check letter for a serial and a 2-digit year.

    The standard form pads the serial to 6 digits; the short form (``SFYY/N…C``) uses the serial
    exactly as written, so ``"0482703"`` and ``"482703"`` give different letters there.
    """
    _require_digits(serial, "CRO serial", _CRO_SERIAL_DIGITS)
    _require_digits(yy, "CRO year", 2)
    if len(yy) != 2:
        raise ValueError("CRO check letter needs the 2-digit year")
    digits = serial if short_form else serial.zfill(_CRO_SERIAL_DIGITS)
    return CHECK_LETTERS[int(yy + digits) % 23]


def canonical_cro(raw: str) -> str:
    """Return the canonical CRO number (``NNNNNN/YYC`` or ``SFYY/N…C``) or raise ValueError."""
    cro = _compact(raw, "CRO number")
    if match := _CRO_STANDARD.fullmatch(cro):
        serial, short_form = match["serial"].zfill(_CRO_SERIAL_DIGITS), False
    elif match := _CRO_SHORT_FORM.fullmatch(cro):
        serial, short_form = match["serial"], True
    else:
        raise ValueError("CRO number should be NNNNNN/YYC or SFYY/NNNNNNC")
    yy, check = match["yy"], match["check"]
    expected = cro_check_letter(serial, yy, short_form=short_form)
    if check != expected:
        raise ValueError(f"CRO check letter should be {expected}, got {check}")
    return f"SF{yy}/{serial}{check}" if short_form else f"{serial}/{yy}{check}"


def is_placeholder_cro(value: str) -> bool:
    """Tell whether ``value`` is the placeholder CRO ``000000/00Z`` in any accepted spelling."""
    try:
        return canonical_cro(value) == PLACEHOLDER_CRO
    except ValueError:
        return False


def canonical_noms(raw: str) -> str:
    """Return the canonical NOMS (prison) number (``A1234BC``) or raise ValueError."""
    noms = _compact(raw, "NOMS number")
    if not _NOMS.fullmatch(noms):
        raise ValueError(
            "NOMS number should be a letter, four digits and two letters, e.g. A1234BC"
        )
    return noms


def canonical_nino(raw: str) -> str:
    """Return the canonical National Insurance number (``AB123456C``) or raise ValueError."""
    nino = _compact(raw, "National Insurance number")
    if not _NINO.fullmatch(nino):
        raise ValueError(
            "National Insurance number should be two letters, six digits and a letter A-D"
        )
    prefix = nino[:2]
    if (
        prefix[0] in _NINO_BAD_FIRST
        or prefix[1] in _NINO_BAD_SECOND
        or prefix in _NINO_BAD_PREFIXES
    ):
        raise ValueError(f"National Insurance number prefix {prefix} is never issued")
    return nino


def make_pnc(year: int, serial: int) -> str:
    """Build a valid canonical PNC ID from a 4-digit year and a serial (synthetic data, tests)."""
    if not 1900 <= year <= 2099:
        raise ValueError("PNC year should be between 1900 and 2099")
    if not 0 <= serial < 10**_PNC_SERIAL_DIGITS:
        raise ValueError("PNC serial should be 0 to 9999999")
    serial7 = f"{serial:07d}"
    return f"{year:04d}/{serial7}{pnc_check_letter(f'{year % 100:02d}', serial7)}"


def make_cro(serial: int, yy: int) -> str:
    """Build a valid canonical standard-form CRO number (synthetic data, tests)."""
    if not 0 <= serial < 10**_CRO_SERIAL_DIGITS:
        raise ValueError("CRO serial should be 0 to 999999")
    if not 0 <= yy <= 99:
        raise ValueError("CRO year should be 0 to 99")
    serial6, yy2 = f"{serial:06d}", f"{yy:02d}"
    return f"{serial6}/{yy2}{cro_check_letter(serial6, yy2)}"
