"""Identity matching: cleaning, blocking keys and Fellegi-Sunter scoring in match weights (bits).

Pure functions over `MatchView`s (no database, no HTTP, no logging), modelled on HMPPS
person-match and Splink: `view_of` cleans a canonical person, `match_keys` gives the keys its
candidates are looked up by, `score` compares two views under a `MatchModel` and `train`
estimates a model from unlabelled records.
"""

from gateway.matching.keys import (
    BLOCKING_KEY_KINDS,
    IDENTIFIER_KEY_KINDS,
    MAX_KEY_LENGTH,
    key_cap,
    match_keys,
)
from gateway.matching.model import (
    DEFAULT_MODEL_PATH,
    FIELD_LEVELS,
    Bands,
    ComparisonModel,
    FieldComparison,
    LevelModel,
    MatchModel,
    ModelFileError,
    TrainingInfo,
    load_model,
)
from gateway.matching.scoring import Band, PairScore, compare, score
from gateway.matching.training import train
from gateway.matching.views import (
    IDENTIFIER_KINDS,
    STRONG_IDENTIFIER_KINDS,
    MatchView,
    view_of,
)

__all__ = [
    "BLOCKING_KEY_KINDS",
    "DEFAULT_MODEL_PATH",
    "FIELD_LEVELS",
    "IDENTIFIER_KEY_KINDS",
    "IDENTIFIER_KINDS",
    "MAX_KEY_LENGTH",
    "STRONG_IDENTIFIER_KINDS",
    "Band",
    "Bands",
    "ComparisonModel",
    "FieldComparison",
    "LevelModel",
    "MatchModel",
    "MatchView",
    "ModelFileError",
    "PairScore",
    "TrainingInfo",
    "compare",
    "key_cap",
    "load_model",
    "match_keys",
    "score",
    "train",
    "view_of",
]
