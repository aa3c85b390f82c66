"""What a generator run is asked for: population shape and noise rates, with documented defaults."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["NoiseRates", "PopulationSettings", "Rate"]

Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class NoiseRates(BaseModel):
    """Probability per source record of each kind of noise (defaults are the documented rates).

    Kinds that need something to act on apply only where it exists: a nickname needs a forename in
    the nickname table, dropping middle names needs a middle name, transposing day and month needs
    both to be 12 or less and different. ``pnc_missing`` and ``pnc_malformed`` exclude each other,
    so the share of records with a wrong PNC check letter is ``pnc_malformed`` itself.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name_typo: Rate = Field(0.03, description="A letter substituted, deleted or transposed.")
    nickname: Rate = Field(0.05, description="First forename as its nickname (or back).")
    dob_transposed: Rate = Field(0.02, description="Day and month of birth swapped.")
    pnc_missing: Rate = Field(0.10, description="PNC ID not held.")
    pnc_malformed: Rate = Field(0.01, description="PNC ID with a wrong check letter.")
    surname_changed: Rate = Field(0.02, description="Married surname, maiden name as an alias.")
    address_moved: Rate = Field(0.08, description="A newer MAIN address, the old one PREVIOUS.")
    middle_names_missing: Rate = Field(0.15, description="Middle names not held.")
    case_spacing: Rate = Field(0.10, description="Names upper/lower-cased or re-spaced.")
    junk_dob: Rate = Field(0.003, description="Placeholder date of birth 1900-01-01/1970-01-01.")
    junk_cro: Rate = Field(0.005, description="Placeholder CRO number 000000/00Z.")
    junk_no_fixed_abode: Rate = Field(0.005, description="MAIN address NF1 1NF / NF1 1FA.")
    junk_name: Rate = Field(0.003, description="NOT ENTERED, DUPLICATE_ or MIG_ERROR_ names.")

    @model_validator(mode="after")
    def _pnc_rates_fit(self) -> Self:
        if self.pnc_missing + self.pnc_malformed > 1.0:
            raise ValueError("pnc_missing + pnc_malformed must be at most 1")
        return self


class PopulationSettings(BaseModel):
    """The shape of the true population: overlap between sources, twins, identifiers held."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    overlap_weights: tuple[float, ...] = Field(
        (0.2, 0.3, 0.5),
        description=(
            "Relative weights of a person being in 1, 2, 3... sources (capped at the number of "
            "sources generated). The default averages 2.3 source records per person."
        ),
    )
    twin_rate: Rate = Field(
        0.01, description="Probability that a person starts a pair of twins (the next person)."
    )
    cro_rate: Rate = Field(0.6, description="Share of persons with a CRO number.")
    noms_rate: Rate = Field(0.5, description="Share of persons with a NOMS number.")
    nino_rate: Rate = Field(0.7, description="Share of persons with a National Insurance number.")
    identifier_held_rate: Rate = Field(
        0.85, description="Chance a source record holds each CRO, NOMS or NINO the person has."
    )
    crn_held_rate: Rate = Field(
        0.6, description="Chance a non-Delius source record holds the person's CRN."
    )

    @field_validator("overlap_weights")
    @classmethod
    def _weights_usable(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(weight < 0 for weight in value) or sum(value) <= 0:
            raise ValueError("overlap weights must be non-negative with a positive sum")
        return value

    @property
    def mean_sources_per_person(self) -> float:
        """Expected number of sources a person is in (before capping)."""
        return sum(k * w for k, w in enumerate(self.overlap_weights, start=1)) / sum(
            self.overlap_weights
        )
