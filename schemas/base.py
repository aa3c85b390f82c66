"""The base class and the constrained text types every canonical model shares."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

__all__ = ["CanonicalModel", "Code", "LongText", "Name", "ShortText"]


class CanonicalModel(BaseModel):
    """Base of every model in the canonical case schema.

    Unknown fields are rejected (``extra="forbid"``) so that a misspelt or unmapped field in an
    adapter's output is a visible validation error rather than silently lost data. Leading and
    trailing whitespace is stripped from every string before its constraints are checked, so a
    padded legacy value such as ``"SMITH   "`` is stored as ``"SMITH"`` and a blank one is rejected.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


#: A personal name or name part.
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
#: A short free-text value: a town, an address line, a court name.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
#: A longer free-text value: a description.
LongText = Annotated[str, StringConstraints(min_length=1, max_length=500)]
#: A code from a source or central code list (provider, team, staff, register codes).
Code = Annotated[str, StringConstraints(min_length=1, max_length=32)]
