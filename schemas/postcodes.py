"""Canonical UK postcodes.

The check is structural (outward code ``A9``, ``A99``, ``AA9``, ``AA99``, ``A9A`` or ``AA9A``;
inward code a digit and two letters other than C, I, K, M, O, V) plus the special ``GIR 0AA``.
It does not enforce the per-position letter tables: real postcodes such as ``WC1B`` break them.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["NO_FIXED_ABODE_POSTCODES", "canonical_postcode", "is_no_fixed_abode_postcode"]

#: Postcodes that case systems record for a person of no fixed abode.
NO_FIXED_ABODE_POSTCODES: Final = frozenset({"NF1 1NF", "NF1 1FA"})

_POSTCODE = re.compile(r"(?P<outward>[A-Z]{1,2}\d[A-Z\d]?)(?P<inward>\d[ABD-HJLNP-UW-Z]{2})")
_GIRO = "GIR0AA"


def canonical_postcode(raw: str) -> str:
    """Return the postcode upper-cased with one space before the inward code, or raise ValueError.

    ``" sw1a1aa"`` becomes ``"SW1A 1AA"``.
    """
    compact = "".join(raw.split()).upper()
    if compact == _GIRO:
        return "GIR 0AA"
    if not _POSTCODE.fullmatch(compact):
        raise ValueError("postcode should be a UK postcode such as SW1A 1AA")
    return f"{compact[:-3]} {compact[-3:]}"


def is_no_fixed_abode_postcode(postcode: str) -> bool:
    """Tell whether a postcode is one of the no-fixed-abode codes (any accepted spelling)."""
    try:
        return canonical_postcode(postcode) in NO_FIXED_ABODE_POSTCODES
    except ValueError:
        return False
