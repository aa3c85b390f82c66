"""The person part of a canonical case record: names, addresses, contact details, identifiers."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from schemas.base import CanonicalModel, Name, ShortText
from schemas.codes import AddressStatus, Sex
from schemas.identifiers import (
    canonical_crn,
    canonical_cro,
    canonical_nino,
    canonical_noms,
    canonical_pnc,
)
from schemas.postcodes import canonical_postcode

__all__ = ["Address", "Alias", "ContactDetails", "Identifiers", "Person"]

# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is not our concern.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

PhoneNumber = Annotated[str, StringConstraints(min_length=1, max_length=50)]


class Identifiers(CanonicalModel):
    """The national identifiers a person may hold, each in its canonical spelling.

    Each value is canonicalised on the way in (whitespace removed, upper-cased, serials padded,
    check letters verified) by the functions in :mod:`schemas.identifiers`, so two sources that
    spell the same PNC ID differently (``02/73319z`` and ``2002/0073319Z``) produce the same value.
    An invalid identifier is a validation error on its own field path, e.g.
    ``person.identifiers.pnc``. A placeholder such as CRO ``000000/00Z`` is syntactically valid
    and is kept: deciding that it carries no identity is the matcher's job.
    """

    crn: str | None = Field(
        default=None,
        description=(
            "Case reference number in the central case system: one letter and six digits, "
            "e.g. X320741. Accepted in any case and with surrounding spaces."
        ),
        examples=["X320741"],
    )
    pnc: str | None = Field(
        default=None,
        description=(
            "Police National Computer ID. Canonical YYYY/NNNNNNNC; YY/N...C and YYYY/N...C "
            "(serial of 1 to 7 digits, padded to 7) are accepted, and without a slash only with "
            "the full 7-digit serial (YYYYNNNNNNNC or YYNNNNNNNC). A 2-digit year is 20YY when at "
            "most the current year's last two digits, else 19YY. The check letter is verified."
        ),
        examples=["2002/0073319Z"],
    )
    cro: str | None = Field(
        default=None,
        description=(
            "Criminal Records Office number. Canonical NNNNNN/YYC (serial padded to 6) or the "
            "short form SFYY/N...C (serial kept as written). The check letter is verified."
        ),
        examples=["065656/91H", "SF05/482703J"],
    )
    noms: str | None = Field(
        default=None,
        description="Prison (NOMS) number: a letter, four digits and two letters, e.g. A1234BC.",
        examples=["A1234BC"],
    )
    nino: str | None = Field(
        default=None,
        description=(
            "National Insurance number: two letters, six digits and a letter A-D, spaces removed. "
            "Prefixes HMRC never issues are rejected."
        ),
    )

    @field_validator("crn")
    @classmethod
    def _canonical_crn(cls, value: str | None) -> str | None:
        return None if value is None else canonical_crn(value)

    @field_validator("pnc")
    @classmethod
    def _canonical_pnc(cls, value: str | None) -> str | None:
        return None if value is None else canonical_pnc(value)

    @field_validator("cro")
    @classmethod
    def _canonical_cro(cls, value: str | None) -> str | None:
        return None if value is None else canonical_cro(value)

    @field_validator("noms")
    @classmethod
    def _canonical_noms(cls, value: str | None) -> str | None:
        return None if value is None else canonical_noms(value)

    @field_validator("nino")
    @classmethod
    def _canonical_nino(cls, value: str | None) -> str | None:
        return None if value is None else canonical_nino(value)


class Alias(CanonicalModel):
    """Another name (and possibly another date of birth) a person is known by.

    Aliases matter to identity resolution: a person arrested under a false name keeps that name as
    an alias on their record, and a candidate match may agree on an alias rather than the main name.
    """

    forenames: list[Name] = Field(
        default_factory=list,
        max_length=10,
        description="Forenames of the alias, first name first then middle names; may be empty.",
    )
    surname: Name = Field(description="Surname of the alias.")
    date_of_birth: date | None = Field(
        default=None, description="Date of birth given with the alias, if different or known."
    )


class Address(CanonicalModel):
    """One address in a person's address history.

    ``postcode`` is canonicalised to upper case with a single space before the inward code
    (``" sw1a1aa"`` becomes ``"SW1A 1AA"``). The no-fixed-abode postcodes ``NF1 1NF`` and
    ``NF1 1FA`` are syntactically valid and kept; whether to believe an address is the matcher's
    business. A postal code from outside the UK is kept as text in ``postal_code``, never
    canonicalised. ``end_date`` may not be before ``start_date``.
    """

    status: AddressStatus = Field(description="Status of the address (MAIN is the current home).")
    lines: list[ShortText] = Field(
        default_factory=list,
        max_length=6,
        description="Address lines above the town, most specific first (at most 6).",
    )
    town: ShortText | None = Field(default=None, description="Town or city.")
    county: ShortText | None = Field(default=None, description="County.")
    postcode: str | None = Field(
        default=None,
        description="UK postcode, canonicalised to upper case with one space, e.g. SW1A 1AA.",
        examples=["SW1A 1AA"],
    )
    postal_code: ShortText | None = Field(
        default=None,
        description=(
            "A postal code that is not a UK postcode (an address abroad), kept as given; "
            "compared as text. A UK postcode belongs in postcode."
        ),
        examples=["75001"],
    )
    start_date: date | None = Field(default=None, description="Date the person moved in.")
    end_date: date | None = Field(
        default=None, description="Date the person left; not before start_date."
    )
    no_fixed_abode: bool = Field(
        default=False, description="True when the person has no fixed abode at this time."
    )

    @field_validator("postcode")
    @classmethod
    def _canonical_postcode(cls, value: str | None) -> str | None:
        return None if value is None else canonical_postcode(value)

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("address end_date is before start_date")
        return self


class ContactDetails(CanonicalModel):
    """How to reach a person.

    Telephone numbers are kept as written (trimmed); the email address is checked loosely.
    """

    telephone: PhoneNumber | None = Field(default=None, description="Landline telephone number.")
    mobile: PhoneNumber | None = Field(default=None, description="Mobile telephone number.")
    email: Annotated[str, StringConstraints(min_length=3, max_length=254)] | None = Field(
        default=None, description="Email address (one @, no spaces, a dot in the domain)."
    )

    @field_validator("email")
    @classmethod
    def _plausible_email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.fullmatch(value):
            raise ValueError("email should look like name@example.org")
        return value


class Person(CanonicalModel):
    """The person a case record is about, as the source system holds them.

    This is one source's view, not the golden record: the gateway's identity resolution links it
    to an existing person or creates a new one. Names are kept as given (whitespace trimmed). Junk
    values that real systems hold (placeholder dates of birth such as 1900-01-01, names like
    NOT ENTERED) are syntactically valid here and are discounted by the matcher, not rejected by
    the schema. ``surname`` must be present but may be null when the source holds no surname.
    """

    forenames: list[Name] = Field(
        default_factory=list,
        max_length=10,
        description="Forenames, first name first then middle names; may be empty (at most 10).",
    )
    surname: Name | None = Field(
        description=(
            "Surname (family name). Required as a key; null only when the source holds none, "
            "which the gateway accepts with a data-quality warning if enough else identifies "
            "the person."
        )
    )
    aliases: list[Alias] = Field(
        default_factory=list, description="Other names the person is known by."
    )
    date_of_birth: date | None = Field(default=None, description="Date of birth.")
    sex: Sex | None = Field(default=None, description="Sex as recorded by the source.")
    addresses: list[Address] = Field(
        default_factory=list, description="Address history, current and previous."
    )
    contact: ContactDetails | None = Field(default=None, description="Contact details.")
    identifiers: Identifiers = Field(
        default_factory=Identifiers,
        description="National identifiers (CRN, PNC, CRO, NOMS, NINO) in canonical form.",
    )
