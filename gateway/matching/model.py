"""The Fellegi-Sunter match model: m and u probabilities per comparison level, prior, bands.

A model is data (JSON), so a retrained model is deployed without a code change and every decision
can record the ``version`` that made it. `FIELD_LEVELS` is the contract between a model file and
`gateway.matching.scoring`: a model must give every field exactly these levels.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import validation_problems

__all__ = [
    "DEFAULT_MODEL_PATH",
    "FIELD_LEVELS",
    "TF_FIELDS",
    "Bands",
    "ComparisonModel",
    "CompiledModel",
    "FieldComparison",
    "LevelModel",
    "MatchModel",
    "ModelFileError",
    "TrainingInfo",
    "load_model",
]

DEFAULT_MODEL_PATH: Final = Path(__file__).with_name("default_model.json")

MISSING: Final = "missing"
_TF_CACHE: Final = 1 << 16
_COMPILED: Final = "compiled_weights"

#: Every compared field and its levels, strongest first; "missing" (weight 0) is always last.
FIELD_LEVELS: Final[dict[str, tuple[str, ...]]] = {
    "forename": (
        "exact",
        "nickname",
        "jaro_winkler_0.92",
        "phonetic",
        "jaro_winkler_0.80",
        "initial",
        "different",
        MISSING,
    ),
    "surname": (
        "exact",
        "jaro_winkler_0.92",
        "phonetic",
        "jaro_winkler_0.80",
        "different",
        MISSING,
    ),
    "middle_name": ("exact", "initial", "different", MISSING),
    "date_of_birth": (
        "exact",
        "day_month_transposed",
        "typo",
        "within_month",
        "within_year",
        "different",
        MISSING,
    ),
    "address": (
        "street_postcode",
        "street_area",
        "street",
        "postcode",
        "area",
        "different",
        MISSING,
    ),
    "sex": ("exact", "different", MISSING),
    "crn": ("exact", "different", MISSING),
    "pnc": ("exact", "different", MISSING),
    "cro": ("exact", "different", MISSING),
    "noms": ("exact", "different", MISSING),
    "nino": ("exact", "different", MISSING),
}

#: Fields whose "exact" level is term-frequency adjusted when the model has a table for them.
TF_FIELDS: Final = ("forename", "surname")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LevelModel(_Strict):
    """One comparison level: P(level | match) and P(level | non-match); none for "missing"."""

    label: str
    m: float | None = Field(default=None, gt=0.0, le=1.0)
    u: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _probabilities(self) -> Self:
        if self.label == MISSING:
            if self.m is not None or self.u is not None:
                raise ValueError('the "missing" level has no m or u (it weighs 0)')
        elif self.m is None or self.u is None:
            raise ValueError(f"level {self.label!r} needs both m and u")
        return self

    @property
    def weight(self) -> float:
        """log2(m/u) in bits; 0 for "missing"."""
        if self.m is None or self.u is None:
            return 0.0
        return math.log2(self.m / self.u)


class ComparisonModel(_Strict):
    """The levels of one field; ``tf_minimum_u`` bounds a term-frequency-adjusted u from below."""

    levels: list[LevelModel]
    tf_minimum_u: float | None = Field(default=None, gt=0.0, le=1.0)

    def level(self, label: str) -> LevelModel:
        """The level with this label (KeyError if none)."""
        for level in self.levels:
            if level.label == label:
                return level
        raise KeyError(label)


class Bands(_Strict):
    """Match-weight thresholds in bits: >= link is a link, >= possible goes to review."""

    link: float
    possible: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.link > self.possible:
            raise ValueError("bands.link must be greater than bands.possible")
        return self


class TrainingInfo(_Strict):
    """How a trained model was estimated."""

    trained_at: datetime
    seed: int
    records: int
    random_pairs: int
    candidate_pairs: int
    em_iterations: int
    converged: bool


@dataclass(frozen=True, slots=True)
class FieldComparison:
    """How one field of a pair compared: the level reached and its weight in bits."""

    field: str
    level: str
    weight: float


class CompiledModel:
    """Weights laid out for `score`: per field, comparisons indexed like FIELD_LEVELS."""

    __slots__ = (
        "comparisons",
        "owner",
        "prior_weight",
        "tf_cache",
        "tf_m",
        "tf_minimum_u",
        "tf_tables",
        "tf_unseen_u",
    )

    def __init__(self, model: MatchModel) -> None:
        self.owner = model
        self.prior_weight = math.log2(model.prior / (1.0 - model.prior))
        # Built once: a pair's comparisons are then these shared objects, not new ones per pair.
        self.comparisons: dict[str, tuple[FieldComparison, ...]] = {
            name: tuple(
                FieldComparison(name, label, model.comparisons[name].level(label).weight)
                for label in labels
            )
            for name, labels in FIELD_LEVELS.items()
        }
        self.tf_cache: dict[tuple[str, str], FieldComparison] = {}
        self.tf_tables: dict[str, dict[str, float]] = {}
        self.tf_m: dict[str, float] = {}
        self.tf_minimum_u: dict[str, float] = {}
        self.tf_unseen_u: dict[str, float] = {}
        for name in TF_FIELDS:
            table = model.term_frequencies.get(name)
            if not table:
                continue
            comparison = model.comparisons[name]
            exact = comparison.level("exact")
            # Validated: a level other than "missing" has both.
            assert exact.m is not None  # noqa: S101
            assert exact.u is not None  # noqa: S101
            floor = comparison.tf_minimum_u or 1e-6
            self.tf_tables[name] = table
            self.tf_m[name] = exact.m
            self.tf_minimum_u[name] = floor
            # A value outside the table is at most as common as the rarest value in it.
            self.tf_unseen_u[name] = max(floor, min(exact.u, min(table.values())))

    def exact_tf(self, name: str, value: str) -> FieldComparison:
        """The exact-agreement comparison of ``name`` on ``value``, term-frequency adjusted."""
        key = (name, value)
        found = self.tf_cache.get(key)
        if found is None:
            table = self.tf_tables.get(name)
            if table is None:
                return self.comparisons[name][0]
            u = max(table.get(value, self.tf_unseen_u[name]), self.tf_minimum_u[name])
            found = FieldComparison(name, "exact_tf", math.log2(self.tf_m[name] / u))
            if len(self.tf_cache) >= _TF_CACHE:
                self.tf_cache.clear()
            self.tf_cache[key] = found
        return found


class MatchModel(_Strict):
    """A Fellegi-Sunter match model, in probabilities; weights are log2(m/u) in bits.

    ``prior`` is the probability that two records chosen at random are the same person; its weight
    log2(prior/(1-prior)) starts every pair's match weight. ``bands`` turn a match weight into a
    decision. ``comparisons`` holds each field's levels (see `FIELD_LEVELS`). ``term_frequencies``
    ("surname"/"forename" -> cleaned value -> share of records) lets an exact agreement on a rare
    name weigh more than one on a common name. ``trained`` says how a trained model was made.
    """

    version: str = Field(min_length=1, max_length=64)
    description: str
    prior: float = Field(gt=0.0, lt=1.0)
    bands: Bands
    comparisons: dict[str, ComparisonModel]
    term_frequencies: dict[str, dict[str, float]] = Field(default_factory=dict)
    trained: TrainingInfo | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        expected, given = set(FIELD_LEVELS), set(self.comparisons)
        if expected != given:
            missing, unknown = sorted(expected - given), sorted(given - expected)
            raise ValueError(f"comparisons: missing fields {missing}, unknown fields {unknown}")
        for name, labels in FIELD_LEVELS.items():
            found = [level.label for level in self.comparisons[name].levels]
            if sorted(found) != sorted(labels):
                raise ValueError(f"comparisons.{name}: levels should be {list(labels)}")
        for name, table in self.term_frequencies.items():
            if name not in TF_FIELDS:
                raise ValueError(f"term_frequencies: {name!r} is not one of {list(TF_FIELDS)}")
            if any(not 0.0 < share <= 1.0 for share in table.values()):
                raise ValueError(f"term_frequencies.{name}: shares must be in (0, 1]")
        return self

    @property
    def compiled(self) -> CompiledModel:
        """The weights as `score` reads them (computed once per model)."""
        # Kept in the instance dict like a cached_property, which pydantic leaves out of ==
        # and dumps; model_copy() copies that dict, so a copy checks it is the owner.
        compiled = self.__dict__.get(_COMPILED)
        if not isinstance(compiled, CompiledModel) or compiled.owner is not self:
            compiled = CompiledModel(self)
            self.__dict__[_COMPILED] = compiled
        return compiled

    def dump(self, path: Path) -> None:
        """Write the model as stable, pretty JSON."""
        text = json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")


class ModelFileError(ValueError):
    """A model file is missing or is not a valid match model; the message names the file."""


def load_model(path: Path | None = None) -> MatchModel:
    """Load a model file; None loads the packaged default model."""
    where = DEFAULT_MODEL_PATH if path is None else path
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFileError(f"match model file {where}: no such file") from None
    except OSError as error:
        raise ModelFileError(f"match model file {where}: cannot read: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelFileError(
            f"match model file {where}: not JSON (line {error.lineno} column {error.colno}: "
            f"{error.msg})"
        ) from None
    try:
        return MatchModel.model_validate(document)
    except ValidationError as error:
        problems = validation_problems(error)
        raise ModelFileError(f"match model file {where}: invalid model: {problems}") from None
